"""HW5 checks: how the grader judges what probes.py measured.

The model, its weights and its accuracy are judged by checklib.verified (the grader
holds the test labels; the child never sees them); the report's files are judged here.
Budgets and the evaluation time are this homework's, stated in the notebook.
"""
from __future__ import annotations

import math

from checklib import verified
from checklib.checks import Check, failed, passed

# The verified evaluation (checklib.verified.predictions), shared by three checks.
EVALUATION = dict(probe="predictions", cells=("model",), files=("model.pt",), test_set=True, args=dict(
    weights="model.pt", model="Net", classes=10,
    seconds=240.0,               # wall seconds of evaluation, on the grader's CPU share
    batch_size=25, timing_images=8,   # small batches: a ResNet-18's activations fit Gradescope's 768 MB
    min_images=1000,             # fewer fit the budget: too slow for the limits
    max_parameters=25_000_000, max_mb=200.0,
    reported=["results.yaml", "test_accuracy"]))
# The model's size and its weights, measured on their own: a model that crashes or hangs while
# evaluating does not lose these points too.
LOADS = dict(probe="model_weights", cells=("model",), files=("model.pt",), args={
    k: EVALUATION["args"][k] for k in ("weights", "model", "max_parameters", "max_mb")})
TOLERANCE = 0.02                 # reported vs verified accuracy, beyond which a TA is told
SUSPICIOUS = 0.99                # a verified accuracy above this is flagged: CIFAR-10 models trained on its
                                 # training set alone stay below it; above, the test labels may have leaked
CURVES = ("train_losses", "test_losses", "train_accs", "test_accs", "lrs")
REPORT = dict(probe="report_files", args={"results": "results.yaml", "curves": "learning_curves.png"},
              cells=("config",), files=("results.yaml", "learning_curves.png"))


def _error(data, part):
    record = data.get(part, {})
    return record.get("error") if "error" in record else None


def judge_curves(data):
    """results.yaml's curves: one finite value per epoch for each of the five lists;
    the PNG is an image wide enough for three panels."""
    if _error(data, "results"):
        return failed(_error(data, "results"))
    results = data["results"]["value"]
    curves = results.get("curves") if isinstance(results, dict) else None
    if not isinstance(curves, dict):
        return failed("results.yaml has no `curves` (save curves=tracker.results(), as the cell of part 5 does).")
    missing = [k for k in CURVES if not isinstance(curves.get(k), list) or not curves[k]]
    if missing:
        return failed(f"results.yaml's curves lack {', '.join(missing)}: the learning rate is recorded by hw_utils.train "
                      "(tracker.lrs); the accuracy and loss per epoch by the tracker.")
    epochs = curves.get("epoch")
    lengths = {k: len(curves[k]) for k in CURVES}
    if len(set(lengths.values())) != 1 or (isinstance(epochs, int) and epochs != lengths["train_losses"]):
        return failed(f"results.yaml's curves do not have one value per epoch ({epochs} epochs; {lengths}).")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for k in CURVES for v in curves[k]):
        return failed("results.yaml's curves hold values that are not finite numbers.")
    if _error(data, "png"):
        return failed(_error(data, "png"))
    width, height = data["png"]["value"]
    if width < 2.5 * height:
        return failed(f"learning_curves.png is {width}x{height} px: not the three panels (loss, accuracy, learning rate) "
                      "that hw_utils.train draws; submit the file it wrote.")
    return passed(f"Loss, accuracy and learning rate for each of {lengths['lrs']} epochs, and the curves' image.")


def judge_config(data):
    """The configuration in results.yaml is CONFIG as the graded cell defines it, and the
    curves cover its number of epochs."""
    for part in ("config", "results"):
        if _error(data, part):
            return failed(_error(data, part))
    config, results = data["config"]["value"], data["results"]["value"]
    reported = results.get("config") if isinstance(results, dict) else None
    if reported != config:
        keys = sorted(set(config) | set(reported or {}))
        differ = [k for k in keys if (reported or {}).get(k) != config.get(k)]
        return failed(f"results.yaml's config differs from CONFIG in {', '.join(differ[:6]) or 'its form'}: report the "
                      "hyperparameters you trained with (run the training and saving cells after your last change to CONFIG).")
    epochs = (results.get("curves") or {}).get("epoch")
    if isinstance(config.get("n_epochs"), int) and epochs != config["n_epochs"]:
        return failed(f"CONFIG trains {config['n_epochs']} epochs, but the curves in results.yaml cover {epochs}.")
    return passed("The reported hyperparameters are the notebook's CONFIG.")


CHECKS = [
    Check("model.loads", judge=verified.judge_loads, **LOADS),
    Check("model.outputs", judge=verified.judge_outputs, **EVALUATION),
    Check("accuracy.verified", judge=verified.judge_accuracy(TOLERANCE, suspicious_above=SUSPICIOUS), **EVALUATION),
    Check("report.curves", judge=judge_curves, **REPORT),
    Check("report.config", judge=judge_config, **REPORT),
]
