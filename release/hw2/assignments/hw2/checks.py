"""HW2 checks: how the grader judges what the probes measured (see docs/checks.md).
Points are in rubric.yaml; messages speak to the student."""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from checklib import data, judges, training
from checklib.checks import Check, failed, outcomes, passed

ASSETS = Path(__file__).resolve().parent / "assets"
TOLERANCE = 1e-5   # parameters and losses recomputed here from the same inputs
FIT_FIELDS = ("num_epochs", "train_loss", "train_acc", "test_loss", "test_acc")


def conv(in_size, out_classes, filters, pool_every, hidden_dims, **extra):
    kw = dict(in_size=in_size, out_classes=out_classes, filters=filters, pool_every=pool_every, hidden_dims=hidden_dims)
    return dict(kwargs=kw, input=[2, *in_size], **extra)


def describe(s):
    kw = s["kwargs"]
    return (f"ConvClassifier({tuple(kw['in_size'])}, {kw['out_classes']}, filters={kw['filters']}, "
            f"pool_every={kw['pool_every']}, hidden_dims={kw['hidden_dims']})")


# The course's expected-output test (seed 42; model first, then the image).
COURSE_OUTPUT, COURSE_ASSET = conv([3, 100, 100], 10, [32] * 4, 2, [100] * 2, name="course"), "expected_conv_out.pt"
# One conv then a pool; N % P != 0 on a non-square grey image; N < P with no hidden layer; odd sizes.
STRUCTURES = [conv([3, 32, 32], 10, [32], 1, [100]), conv([1, 28, 20], 5, [8, 16, 16, 32, 32], 2, [50]),
              conv([3, 32, 32], 10, [16, 16, 16], 4, []), conv([3, 17, 15], 3, [4, 8], 1, [12, 6])]
OVERFIT = dict(epochs=22, batches=25, batch_size=2, lr=1e-2, momentum=0.9)
STEPS = dict(lr=0.1, momentum=0.9)
ALL, TRAIN, TEST = (0, 50), (0, 40), (40, 50)
FIT_SCENARIOS = [  # name, lr, epochs, early_stopping, batch size, train and test images
    dict(name="plain", lr=0.05, num_epochs=3, early_stopping=None, batch_size=10, train=ALL, test=ALL),
    dict(name="measured", lr=0.0, num_epochs=2, early_stopping=None, batch_size=10, train=TRAIN, test=TEST),
    dict(name="constant_stop", lr=0.0, num_epochs=8, early_stopping=2, batch_size=10, train=ALL, test=ALL),
    dict(name="constant_all", lr=0.0, num_epochs=4, early_stopping=None, batch_size=10, train=ALL, test=ALL),
    dict(name="improving", lr=0.05, num_epochs=5, early_stopping=1, batch_size=50, train=ALL, test=ALL),
    dict(name="diverging", lr=0.5, num_epochs=6, early_stopping=2, batch_size=10, train=TRAIN, test=TRAIN, shift=1,
         note="here the training loss falls while the test loss rises"),
    dict(name="checkpoint", lr=0.05, num_epochs=3, early_stopping=None, batch_size=50, checkpoints=True, train=ALL, test=ALL),
]
STOPPING = ("constant_stop", "constant_all", "improving", "diverging")
EXPERIMENT_CALL = dict(run_name="probe_run", out_dir="probe_results", seed=7, bs_train=4, bs_test=3, batches=5,
                       epochs=2, early_stopping=1, checkpoints=None, lr=0.01, reg=0.002, filters_per_layer=[8, 16],
                       layers_per_block=2, pool_every=3, hidden_dims=[20])
SCRIPTED_FIT = dict(num_epochs=2, train_loss=[2.0, 1.5], train_acc=[20.0, 35.0], test_loss=[2.1, 1.9], test_acc=[15.0, 25.0])
SAVED_EXPERIMENT = {"config": {"run_name": "exp_probe", "seed": 3, "lr": 0.001, "filters_per_layer": [32],
                               "layers_per_block": 4, "pool_every": 4, "hidden_dims": [100, 100]},
                    "results": dict(num_epochs=3, train_loss=[2.3, 2.0, 1.8], train_acc=[10.0, 25.5, 33.0],
                                    test_loss=[2.2, 2.1, 2.15], test_acc=[12.0, 24.0, 23.5])}
EXP1_1 = {f"exp1_1_K{k}_L{l}": (k, l) for k in (32, 64) for l in (2, 4, 8, 16)}
EXP1_2 = {f"exp1_2_L{l}_K{k}": (k, l) for l in (2, 4, 8) for k in (32, 64, 128, 256)}


# --- 1. ConvClassifier: the structure, judged on the student's own parts --------------------

def _part(rows, name):
    return [judges.layer(r) for r in judges.leaves(rows, name)]


def _modules(rows, s):
    kinds = {r["name"]: r["kind"] for r in rows}
    for part in ("feature_extractor", "classifier"):
        if kinds.get(part) != "Sequential":
            return f"`self.{part}` must be an nn.Sequential; " + (f"it is a {kinds[part]}." if part in kinds else "there is none.")
    outside = [r["name"] for r in judges.leaves(rows) if not r["name"].startswith(("feature_extractor.", "classifier."))]
    return f"it holds {', '.join(outside)} outside feature_extractor and classifier." if outside else None


def _spec_features(kw):
    layers, channels = [], kw["in_size"][0]
    for i, out in enumerate(kw["filters"]):
        layers += [("Conv2d", channels, out), ("ReLU",)] + ([("MaxPool2d",)] if (i + 1) % kw["pool_every"] == 0 else [])
        channels = out
    return layers


def _convolutions(rows, s):
    found = [x for x in _part(rows, "feature_extractor") if "Pool" not in x[0]]
    want = [x for x in _spec_features(s["kwargs"]) if "Pool" not in x[0]]
    if found != want:
        return (f"feature_extractor holds (poolings left out) {judges.show_layers(found)}; expected "
                f"{judges.show_layers(want)}: one Conv2d per entry of filters, each followed by a ReLU.")
    bad = next((r for r in judges.leaves(rows, "feature_extractor") if r["kind"] == "Conv2d"
                and (r["kernel_size"], r["stride"], r["padding"]) != ([3, 3], [1, 1], [1, 1])), None)
    return None if bad is None else (f"`{bad['name']}` has kernel_size={tuple(bad['kernel_size'])}, stride={tuple(bad['stride'])}, "
                                     f"padding={bad['padding']}; every convolution must be 3x3 with stride 1 and padding 1.")


def _positions(layers):
    """After how many convolutions each pooling comes."""
    convs, found = 0, []
    for x in layers:
        convs += x[0] == "Conv2d"
        found += [convs] if "Pool" in x[0] else []
    return found


def _pooling(rows, s):
    kw = s["kwargs"]
    found, want = _positions(_part(rows, "feature_extractor")), _positions(_spec_features(kw))
    if found != want:
        return (f"the poolings come after convolution(s) {found or 'none'}; expected {len(want)} MaxPool2d "
                f"({len(kw['filters'])} // {kw['pool_every']}), after convolution(s) {want or 'none'}.")
    bad = next((r for r in judges.leaves(rows, "feature_extractor") if "Pool" in r["kind"]
                and (r["kind"], r.get("kernel_size"), r.get("stride")) not in (("MaxPool2d", 2, 2), ("MaxPool2d", [2, 2], [2, 2]))), None)
    return None if bad is None else f"`{bad['name']}` is a {bad['kind']}({bad.get('kernel_size')}); the pattern uses nn.MaxPool2d(kernel_size=2)."


def _classifier(rows, s):
    """(Linear -> ReLU) * M -> Linear, whose in_features is C x H x W of the student's OWN
    features (an extra pooling is charged once, to the pooling check) or of the specification's."""
    kw, found = s["kwargs"], _part(rows, "classifier")
    c, h, w = kw["in_size"]
    pools = len(kw["filters"]) // kw["pool_every"]
    features = [judges.feature_size(judges.leaves(rows, "feature_extractor"), kw["in_size"]),
                (kw["filters"][-1] if kw["filters"] else c) * (h // 2**pools) * (w // 2**pools)]
    for flat in dict.fromkeys(features):
        widths = [flat, *kw["hidden_dims"]]
        want = [y for a, b in zip(widths, widths[1:]) for y in (("Linear", a, b), ("ReLU",))] + [("Linear", widths[-1], kw["out_classes"])]
        if found == want:
            return None
    return (f"classifier holds {judges.show_layers(found)}; expected {judges.show_layers(want)}: a Linear and a ReLU per hidden "
            f"width, then one Linear to out_classes; the first in_features is C x H x W of the features, {features[0]} "
            "for your feature extractor.")


def seeded_judge(asset: str):
    return judges.tensor_close(lambda s: judges.saved_tensors(ASSETS / asset)[s["name"]],
                               "Expected output (built after torch.manual_seed(42))", describe,
                               explain="Common causes: layers created in another order (every convolution first, then "
                               "the linear layers), a missing or extra layer, or a softmax at the end.")


# --- 2. TorchTrainer: every number recomputed here ----------------------------------------------

def _linear():
    torch.manual_seed(0)  # probes.linear_model's architecture and initial weights
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


@lru_cache(maxsize=None)
def _digits():
    return data.json_images(ASSETS.parent / "digits50.json", 8, 1)


def judge_train_batch(data):
    (x, y), initial = _digits(), _linear().state_dict()
    for n, (step, (loss, correct, want)) in enumerate(zip(data["steps"], training.replay_sgd(_linear(), x[:8], y[:8], 2, **STEPS)), 1):
        gap = max(float((step["state"][k] - v).abs().max()) for k, v in want.items())
        if "error" not in step["result"] and gap > TOLERANCE:
            if n == 1 and all(torch.equal(step["state"][k], v) for k, v in initial.items()):
                return failed("train_batch did not change the model's parameters: call loss.backward() and then self.optimizer.step().")
            return failed(f"After train_batch call {n} the parameters are not those of one optimizer step on this batch (they "
                          f"differ by up to {gap:.3g}): " + ("clear the old gradients with self.optimizer.zero_grad() before "
                                                            "backward()." if n == 2 else "compute the loss with self.loss_fn, "
                                                            "call backward() and step()."))
        problem = training.batch_problem(step["result"], loss, correct, f"train_batch (call {n})", TOLERANCE)
        if problem:
            return failed(problem)
    return passed("train_batch: two calls made exactly two optimizer steps and returned the right loss and count.")


def judge_test_batch(data):
    tested, (x, y) = data["tested"], _digits()
    if "value" in tested["result"] and tested["changed"]:
        return failed(f"test_batch changed the model ({', '.join(tested['changed'])}); it must only evaluate it.")
    if "value" in tested["result"] and (tested["grads"] or tested["grad_enabled"]):
        return failed("test_batch ran the model with gradients enabled: run it under torch.no_grad() (evaluation needs "
                      "no gradients, and they cost memory).")
    loss, accuracy = training.evaluate(_linear(), x[8:14], y[8:14])
    problem = training.batch_problem(tested["result"], loss, round(accuracy * 6 / 100), "test_batch", TOLERANCE)
    if problem:
        return failed(problem)
    tensor = tested["result"]["value"]["loss"]["type"] == "Tensor"
    return passed("test_batch: the right loss and count, without gradients or changes." + (
        " (Your loss is a 0-d tensor computed without gradients: accepted, as in the course; loss.item() is the usual form.)"
        if tensor else ""))


def judge_overfit(data):
    accuracies = [a for a in data["accuracies"] if a is not None]
    best, real = max(accuracies, default=0.0), 100.0 * float((data["logits"].argmax(1) == data["labels"]).double().mean())
    setting = f"train_epoch on 25 batches of 2 images, 22 times (SGD, lr {OVERFIT['lr']:g}, momentum {OVERFIT['momentum']:g})"
    if best < 95:
        return failed(f"Overfitting: {setting} reached at best {best:.1f}% accuracy; at least 95% was expected. "
                      f"Accuracy per epoch: {', '.join(f'{a:.0f}' for a in accuracies)}.", value=best)
    if real < 90:
        return failed(f"Overfitting: the epochs reported up to {best:.1f}% accuracy, but the trained model classifies only "
                      f"{real:.0f}% of those images correctly: num_correct must count correct predictions.", value=best)
    return passed(f"Overfitting: {setting} reached {best:.1f}%.", value=best)


def _fits(data):
    return {o.setting["name"]: o for o in outcomes(data, "fit")}


def judge_fit(data):
    fits = _fits(data)
    for o in (fits["plain"], fits["measured"]):
        problem = training.epochs_problem(o.value["result"], FIT_FIELDS, "FitResult") if o.ok else f"fit raised an error:\n{o.error}"
        if problem:
            return failed(f"fit: {problem}")
    (x, y), result = _digits(), fits["measured"].value["result"]
    for part, (lo, hi) in (("train", TRAIN), ("test", TEST)):  # lr=0: the model never changes, nor do its numbers
        loss, acc = training.evaluate(_linear(), x[lo:hi], y[lo:hi])
        for field, want in ((f"{part}_loss", loss), (f"{part}_acc", acc)):
            if any(not math.isclose(v, want, rel_tol=1e-4, abs_tol=1e-4) for v in result[field]):
                return failed(f"fit with lr=0 (the model never changes) on different train and test data returned "
                              f"{field}={result[field]}; the {part} data's {'mean loss' if 'loss' in field else 'accuracy in percent'} "
                              f"is {want:.4f} every epoch.")
    return passed("fit: one loss and one accuracy per epoch, for training and testing, each measured on its own data.")


def judge_early_stopping(data):
    """Scenarios where the test loss stays flat, falls, or rises while the training loss
    falls (a rule that watches the training loss runs on there)."""
    return training.judge_early_stopping(o for o in outcomes(data, "fit") if o.setting["name"] in STOPPING)


def judge_checkpoints(data):
    o = _fits(data)["checkpoint"]
    return training.judge_checkpoint(o.value["checkpoint"], "probe_checkpoint_checkpoint.pt") if o.ok else \
        failed(f"fit(checkpoints=...) raised an error:\n{o.error}")


# --- 3. Experiments -------------------------------------------------------------------------------

def judge_run_experiment(data):
    call, built, events = EXPERIMENT_CALL, data["built"], data["events"]
    what = "run_experiment(" + ", ".join(f"{k}={v!r}" for k, v in call.items()) + ") on small data"
    filters = [k for k in call["filters_per_layer"] for _ in range(call["layers_per_block"])]
    want = dict(in_size=[3, 16, 16], out_classes=10, filters=filters, pool_every=call["pool_every"], hidden_dims=call["hidden_dims"])
    if len(built) != 1:
        return failed(f"{what} built {len(built)} ConvClassifier(s); expected exactly one.")
    wrong = next((k for k, v in want.items() if built[0].get(k) != v), None)
    if wrong:
        note = {"filters": " (each entry of filters_per_layer repeated layers_per_block times)", "in_size": " (one image's shape)"}
        return failed(f"{what} built ConvClassifier with {wrong}={built[0].get(wrong)}; expected {want[wrong]}{note.get(wrong, '')}.")
    trainers, fits = ([e for e in events if e["event"] == kind] for kind in ("trainer", "fit"))
    if built[0]["initial_seed"] != call["seed"] or len(trainers) != 1 or len(fits) != 1:
        return failed(f"{what} must seed (torch.manual_seed(seed)) before building the model, then create one TorchTrainer "
                      f"and call fit once; it created {len(trainers)} trainer(s) and called fit {len(fits)} time(s).")
    trainer, fit = trainers[0], fits[0]
    for ok, message in [
        (trainer["loss_fn"] == "CrossEntropyLoss", f"the loss function is a {trainer['loss_fn']}; use nn.CrossEntropyLoss()"),
        (judges.same(trainer["lr"], call["lr"]), f"the optimizer's learning rate is {trainer['lr']}; expected lr={call['lr']}"),
        (judges.same(trainer["weight_decay"], call["reg"]), f"the optimizer's weight_decay is {trainer['weight_decay']}; expected reg={call['reg']}"),
        (trainer["optimizes_model"], "the optimizer does not hold exactly the model's parameters"),
        *[(fit.get(k) == call[c], f"fit got {k}={fit.get(k)!r}; expected {c}={call[c]!r}") for k, c in (
            ("num_epochs", "epochs"), ("early_stopping", "early_stopping"), ("checkpoints", "checkpoints"), ("max_batches", "batches"))],
        *[(loader["batch_size"] == call[c], f"the {c[3:]} DataLoader has batch_size={loader['batch_size']}; expected {c}={call[c]}")
          for loader, c in zip(fit["loaders"], ("bs_train", "bs_test"))],
        (fit["loaders"][0]["shuffle"], "the training DataLoader does not shuffle; pass shuffle=True"),
        ([d["size"] for d in fit["loaders"]] == [30, 20], "the DataLoaders do not read the ds_train and ds_test given to run_experiment")]:
        if not ok:
            return failed(f"{what}: {message}.")
    path, written = f"{call['out_dir']}/{call['run_name']}.json", data["written"]
    if "error" in written:
        return failed(f"{what} did not write a readable {path} ({written['error']}; files in {call['out_dir']}/: {data['files']}).")
    written = written["value"]
    if not isinstance(written, dict) or set(written) != {"config", "results"}:
        return failed(f"{path} must hold a dictionary with the keys 'config' and 'results'; found "
                      f"{sorted(written) if isinstance(written, dict) else type(written).__name__}.")
    config = written["config"] if isinstance(written["config"], dict) else {}
    wrong = next((k for k, v in call.items() if not judges.same(config.get(k), v)), None)
    if wrong:
        return failed(f"{path}: config['{wrong}'] is {config.get(wrong)!r}; expected {call[wrong]!r} (the config holds "
                      "every argument of the run except the datasets).")
    if not judges.same({k: written["results"].get(k) for k in SCRIPTED_FIT} if isinstance(written["results"], dict) else None, SCRIPTED_FIT):
        return failed(f"{path}: 'results' must hold the five FitResult fields by name, as fit returned them ({SCRIPTED_FIT}).")
    note = "" if trainer["optimizer"] == "Adam" else f" (The course accepted your {trainer['optimizer']}; the notebook suggests Adam.)"
    return passed(f"run_experiment: built, trained and wrote {path} as specified.{note}")


def judge_load_experiment(data):
    saved = SAVED_EXPERIMENT
    if data["config"] != saved["config"]:
        return failed(f"load_experiment returned the config {str(data['config'])[:300]}; the file holds {saved['config']}.")
    if data["result_type"] != "FitResult":
        return failed(f"load_experiment returned a {data['result_type']} as its second value; expected a FitResult.")
    got = {f: data["result"][f]["value"] if isinstance(data["result"][f], dict) else data["result"][f] for f in FIT_FIELDS}
    wrong = next((f for f in FIT_FIELDS if not judges.same(got[f], saved["results"][f])), None)
    if wrong:
        return failed(f"load_experiment's FitResult has {wrong}={got[wrong]}; the file holds {saved['results'][wrong]}.")
    return passed("load_experiment: returns the file's config and a FitResult with its values.")


def runs_judge(runs: dict, part: str):
    def judge(data):
        for name, (k, l) in runs.items():
            path, run = f"results/{name}.json", data[name]
            if "error" in run:
                return failed(f"{part}: {path} could not be read: {run['error']}")
            run = run["value"]
            if not isinstance(run, dict) or not isinstance(run.get("config"), dict) or not isinstance(run.get("results"), dict):
                return failed(f"{part}: {path} must hold {{'config': ..., 'results': ...}} as run_experiment writes it.")
            want = dict(run_name=name, filters_per_layer=[k], layers_per_block=l, pool_every=4, hidden_dims=[100, 100])
            course = name.replace("K256", "K258")  # the course's notebook asks for K=[258] once: accepted, as it was
            if run["config"].get("run_name") == course != name and run["config"].get("filters_per_layer") in ([256], [258]):
                want.update(run_name=course, filters_per_layer=run["config"]["filters_per_layer"])
            wrong = next((key for key, v in want.items() if not judges.same(run["config"].get(key), v)), None)
            if wrong:
                return failed(f"{part}: {path} was run with {wrong}={run['config'].get(wrong)!r}; the run named {name} "
                              f"must use {wrong}={want[wrong]!r}.")
            n = run["results"].get("num_epochs")
            if not isinstance(n, int) or n < 1 or any(not isinstance(run["results"].get(f), list) or len(run["results"][f]) != n
                                                      for f in FIT_FIELDS[1:]):
                return failed(f"{part}: {path} holds no complete fit result (num_epochs={n!r} and one value per epoch "
                              "in train_loss, train_acc, test_loss and test_acc).")
        return passed(f"{part}: all {len(runs)} result files are there, each run with its name's settings.")
    return judge


# --- the public checks, in rubric order (hidden ones: hidden_checks.py) ------------------------------

STRUCTURE = dict(probe="probe_modules", args={"name": "ConvClassifier", "settings": STRUCTURES, "parts": ["structure", "forward"]},
                 cells=("conv_classifier",))
_fit = dict(probe="fit_runs", args={"scenarios": FIT_SCENARIOS}, cells=("trainer",))
_steps = dict(probe="trainer_steps", args=STEPS, cells=("trainer",))
_structure = lambda test, what, errors="skip": judges.each_setting("structure", test, what, describe, errors)

CHECKS = [
    Check("conv.modules", judge=_structure(_modules, "ConvClassifier's two parts"), **STRUCTURE),
    Check("conv.convolutions", judge=_structure(_convolutions, "Convolutions"), **STRUCTURE),
    Check("conv.pooling", judge=_structure(_pooling, "Pooling"), **STRUCTURE),
    Check("conv.classifier", judge=_structure(_classifier, "Classifier", errors="fail"), **STRUCTURE),
    Check("conv.expected_output", "seeded_outputs", seeded_judge(COURSE_ASSET), {"configs": [COURSE_OUTPUT]},
          cells=("conv_classifier",)),
    Check("conv.other_sizes", judge=judges.output_shape(lambda s: [2, s["kwargs"]["out_classes"]], "Output shape", describe), **STRUCTURE),
    Check("conv.logits", judge=judges.no_softmax("Logits", describe), **STRUCTURE),
    Check("trainer.train_batch", judge=judge_train_batch, **_steps),
    Check("trainer.test_batch", judge=judge_test_batch, **_steps),
    Check("trainer.overfit", "overfit", judge_overfit, OVERFIT, cells=("trainer",)),
    Check("trainer.fit", judge=judge_fit, **_fit),
    Check("trainer.early_stopping", judge=judge_early_stopping, **_fit),
    Check("trainer.checkpoints", judge=judge_checkpoints, **_fit),
    Check("experiments.run_experiment", "run_experiment_probe", judge_run_experiment,
          {"call": EXPERIMENT_CALL, "scripted": SCRIPTED_FIT}, cells=("experiments",)),
    Check("experiments.load_experiment", "load_experiment_probe", judge_load_experiment, {"content": SAVED_EXPERIMENT},
          cells=("experiments",)),
    Check("experiments.exp1_1", "submitted_runs", runs_judge(EXP1_1, "Experiment 1.1"), {"names": list(EXP1_1)},
          files=tuple(f"results/{n}.json" for n in EXP1_1)),
    Check("experiments.exp1_2", "submitted_runs", runs_judge(EXP1_2, "Experiment 1.2"), {"names": list(EXP1_2)},
          files=tuple(f"results/{n}.json" for n in EXP1_2)),
]
