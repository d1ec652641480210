"""HW2 probes: measurements of the student's ConvClassifier, TorchTrainer and
experiment functions, made inside the sandbox and returned as plain data.

They decide nothing: `checks.py` judges what they return, in the grader. Where a
check needs a number worked out independently (a step of SGD, say), the probe
sends back the inputs and the states and the grader recomputes it.

The images are the first 50 of scikit-learn's handwritten digits, bundled in
digits50.json (8x8 greyscale, values 0..16), shaped like CIFAR-10 images.
"""
from __future__ import annotations

import json
import math
import os
from collections import namedtuple
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from checklib.probes import ProbeError, attempt, describe_modules, lookup, trace_leaf_calls

DIGITS = Path(__file__).resolve().parent / "digits50.json"
FIT_FIELDS = ("num_epochs", "train_loss", "train_acc", "test_loss", "test_acc")


def digits(size: int = 32, channels: int = 3):
    """The bundled digits as (50, channels, size, size) floats in [-0.5, 0.5], and their labels."""
    saved = json.loads(DIGITS.read_text())
    images = torch.tensor(saved["images"], dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False) - 0.5
    return images.expand(-1, channels, -1, -1).contiguous(), torch.tensor(saved["labels"], dtype=torch.long)


def _number(value):
    """A returned loss or count as plain data, keeping what type it had."""
    kind = type(value).__name__
    try:
        return {"type": kind, "value": float(value)}
    except (TypeError, ValueError, RuntimeError):
        return {"type": kind, "value": None}


def _batch_result(result):
    if not (isinstance(result, tuple) and hasattr(result, "loss") and hasattr(result, "num_correct")):
        raise ProbeError(f"expected a BatchResult(loss, num_correct); got {type(result).__name__}")
    return {"loss": _number(result.loss), "num_correct": _number(result.num_correct)}


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# --- 1. ConvClassifier ----------------------------------------------------------------

def _build(ns, cfg):
    ConvClassifier = lookup(ns, "ConvClassifier")
    return ConvClassifier(tuple(cfg["in_size"]), cfg["out_classes"], filters=list(cfg["filters"]),
                          pool_every=cfg["pool_every"], hidden_dims=list(cfg["hidden_dims"]))


def conv_structures(ns, configs):
    """Per setting: the modules (built, not run), what the two parts are, and a traced
    forward pass on a batch of 2 random images with its output."""
    def one(cfg):
        net = _build(ns, cfg)
        parts = {name: type(getattr(net, name, None)).__name__ for name in ("feature_extractor", "classifier")}
        sequential = {name: isinstance(getattr(net, name, None), nn.Sequential) for name in parts}
        forward = attempt(lambda: dict(zip(("out", "calls"), trace_leaf_calls(net, torch.randn(2, *cfg["in_size"])))))
        if "out" in forward:
            forward["out"] = forward["out"].detach()
        return {"modules": describe_modules(net), "parts": parts, "sequential": sequential, "forward": forward}
    return [{"cfg": cfg, **attempt(lambda: one(cfg))} for cfg in configs]


def seeded_outputs(ns, configs, seed=42):
    """The course's procedure: seed, build the model, then draw the integer-valued
    test image(s); returns each model's output on them."""
    def one(cfg):
        torch.manual_seed(seed)
        net = _build(ns, cfg)
        image = torch.randint(low=0, high=256, size=tuple(cfg["in_size"]), dtype=torch.float)
        with torch.no_grad():
            return {"out": net(image.unsqueeze(0)).detach()}
    return [{"cfg": cfg, **attempt(lambda: one(cfg))} for cfg in configs]


# --- 2. TorchTrainer ------------------------------------------------------------------

def _trainer(ns, model, lr, momentum=0.0):
    TorchTrainer = lookup(ns, "TorchTrainer")
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    return TorchTrainer(model, nn.CrossEntropyLoss(), optimizer, "cpu")


def linear_model(seed=0):
    """The small model the step checks train: flatten 8x8 digits, one linear layer.
    checks.py rebuilds the same architecture to recompute the steps."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


def trainer_steps(ns, lr, momentum):
    """Two train_batch calls on one batch; separately, a test_batch on another batch
    with a fresh model. Returns the states and results (the grader redoes the steps)."""
    images, labels = digits(size=8, channels=1)
    train, test = (images[:8], labels[:8]), (images[8:14], labels[8:14])
    model = linear_model()
    initial = _state(model)
    trainer = _trainer(ns, model, lr, momentum)
    steps = []
    for _ in range(2):
        result = attempt(lambda: _batch_result(trainer.train_batch(train)))
        steps.append({"result": result, "state": _state(model)})
        if "error" in result:
            break

    model = linear_model()
    trainer = _trainer(ns, model, lr, momentum)
    grad_modes = []
    hook = model.register_forward_hook(lambda *args: grad_modes.append(torch.is_grad_enabled()))
    result = attempt(lambda: _batch_result(trainer.test_batch(test)))
    hook.remove()
    after = _state(model)
    tested = {"result": result, "changed": [k for k in initial if not torch.equal(initial[k], after[k])],
              "grads": [k for k, p in model.named_parameters() if p.grad is not None],
              "grad_enabled": any(grad_modes), "state": after}
    return {"initial": initial, "train": {"x": train[0], "y": train[1]}, "test": {"x": test[0], "y": test[1]},
            "steps": steps, "tested": tested}


def overfit(ns, epochs, batches, batch_size, lr, momentum, seed=42):
    """The course's sanity test: train_epoch on the same 25 batches of 2 images, 22 times,
    with the one-convolution network of the notebook's overfitting cell."""
    images, labels = digits(size=32, channels=3)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 32, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(32 * 16 * 16, 100), nn.ReLU(), nn.Linear(100, 10))
    trainer = _trainer(ns, model, lr, momentum)
    loader = DataLoader(TensorDataset(images, labels), batch_size=batch_size, shuffle=False)
    accuracies = []
    for _ in range(epochs):
        result = trainer.train_epoch(loader, max_batches=batches, verbose=False)
        accuracies.append(_number(result.accuracy)["value"])
    model.eval()
    with torch.no_grad():
        logits = model(images[: batches * batch_size])
    return {"accuracies": accuracies, "logits": logits, "labels": labels[: batches * batch_size]}


def _fit_result(result):
    if not isinstance(result, tuple) or not all(hasattr(result, f) for f in FIT_FIELDS):
        raise ProbeError(f"fit returned a {type(result).__name__}; expected a FitResult{FIT_FIELDS}")
    plain, shown = {}, {}
    for name in FIT_FIELDS:
        value = getattr(result, name)
        text = repr(value)  # for messages: what the student's fit really returned
        shown[name] = text if len(text) <= 120 else text[:120] + " ..."
        if name == "num_epochs":
            count = _number(value)["value"]
            plain[name] = int(count) if count is not None and math.isfinite(count) and count == int(count) else count
        else:
            plain[name] = [_number(v)["value"] for v in value] if isinstance(value, (list, tuple)) else shown[name]
    return {**plain, "shown": shown}


def fit_runs(ns, scenarios):
    """fit() under several scenarios on the bundled digits (a linear model: fast and
    convex). Each scenario gives lr, num_epochs, early_stopping, batch_size and
    whether to pass a checkpoints name; test data are the training images."""
    images, labels = digits(size=8, channels=1)
    data = TensorDataset(images, labels)

    def one(s):
        model = linear_model()
        trainer = _trainer(ns, model, s["lr"])
        loader = DataLoader(data, batch_size=s["batch_size"], shuffle=False)
        name = f"probe_checkpoint_{s['name']}"
        result = trainer.fit(loader, loader, s["num_epochs"], checkpoints=name if s.get("checkpoints") else None,
                             early_stopping=s["early_stopping"], print_every=s["num_epochs"])
        out = {"result": _fit_result(result), "files": sorted(os.listdir("."))}
        if s.get("checkpoints"):
            out["checkpoint"] = attempt(lambda: _checkpoint(name + ".pt", model))
        return out
    return [{"scenario": s, **attempt(lambda: one(s))} for s in scenarios]


def _checkpoint(path, model):
    if not os.path.isfile(path):
        raise ProbeError(f"no file {path} was written")
    saved = torch.load(path, weights_only=True)
    if not isinstance(saved, dict):
        return {"type": type(saved).__name__}
    current = model.state_dict()
    return {"type": "dict", "keys": sorted(saved), "expected_keys": sorted(current),
            "max_difference": max((float((saved[k].float() - current[k].float()).abs().max())
                                   for k in current if k in saved and saved[k].shape == current[k].shape), default=None)}


# --- 3. Experiments -------------------------------------------------------------------

class _RecordingClassifier(nn.Module):
    """Stands in for the student's ConvClassifier while run_experiment is checked, so
    that only run_experiment is graded: records how it was built."""

    def __init__(self, record, in_size, out_classes, filters, pool_every, hidden_dims):
        super().__init__()
        record.append({"in_size": [int(s) for s in in_size], "out_classes": int(out_classes),
                       "filters": [int(f) for f in filters], "pool_every": int(pool_every),
                       "hidden_dims": [int(h) for h in hidden_dims], "initial_seed": torch.initial_seed()})
        self.linear = nn.Linear(math.prod(int(s) for s in in_size), int(out_classes))

    def forward(self, x):
        return self.linear(x.flatten(1))


def _recording_trainer(record, fit_result_type, scripted):
    """A TorchTrainer stand-in that records its arguments and returns `scripted` from fit."""

    class RecordingTrainer:
        def __init__(self, model, loss_fn, optimizer, device=None):
            group = optimizer.param_groups[0] if getattr(optimizer, "param_groups", None) else {}
            model_params = {id(p) for p in model.parameters()}
            record.append({"event": "trainer", "loss_fn": type(loss_fn).__name__,
                           "optimizer": type(optimizer).__name__, "lr": group.get("lr"),
                           "weight_decay": group.get("weight_decay"),
                           "optimizes_model": bool(model_params) and {id(p) for p in group.get("params", [])} == model_params})

        def fit(self, dl_train, dl_test, num_epochs, checkpoints=None, early_stopping=None, print_every=1, **kw):
            record.append({"event": "fit", "num_epochs": num_epochs, "checkpoints": checkpoints,
                           "early_stopping": early_stopping, "kw": {k: v for k, v in kw.items() if isinstance(v, (int, float, str, type(None)))},
                           "bs_train": getattr(dl_train, "batch_size", None), "bs_test": getattr(dl_test, "batch_size", None),
                           "shuffle_train": type(getattr(dl_train, "sampler", None)).__name__ == "RandomSampler",
                           "train_size": len(getattr(dl_train, "dataset", [])), "test_size": len(getattr(dl_test, "dataset", []))})
            return fit_result_type(**scripted)

    return RecordingTrainer


def run_experiment_probe(ns, call, scripted):
    """Call the student's run_experiment(**call) on small digits, with stand-ins for
    ConvClassifier and TorchTrainer; return what they recorded and the written files."""
    run_experiment = lookup(ns, "run_experiment", "function")
    images, labels = digits(size=16, channels=3)
    ds_train, ds_test = TensorDataset(images[:30], labels[:30]), TensorDataset(images[30:], labels[30:])
    fit_type = ns.get("FitResult") or namedtuple("FitResult", FIT_FIELDS)
    built, events = [], []
    saved = {name: ns.get(name) for name in ("ConvClassifier", "TorchTrainer")}
    ns["ConvClassifier"] = lambda *a, **k: _RecordingClassifier(built, *a, **k)
    ns["TorchTrainer"] = _recording_trainer(events, fit_type, scripted)
    try:
        torch.manual_seed(0)
        run_experiment(**call, ds_train=ds_train, ds_test=ds_test)
    finally:
        ns.update(saved)
    out_dir = call["out_dir"]
    files = sorted(os.listdir(out_dir)) if os.path.isdir(out_dir) else None
    path = os.path.join(out_dir, f"{call['run_name']}.json")
    written = attempt(lambda: _read_json(path)) if os.path.isfile(path) else None
    return {"built": built, "events": events, "files": files, "written": written}


def _read_json(path, limit=2**20):
    if os.path.getsize(path) > limit:
        raise ProbeError(f"{path} is larger than {limit // 1024} KiB")
    with open(path) as f:
        return json.load(f)


def load_experiment_probe(ns, content):
    """Write a result file in the documented format and read it back with the
    student's load_experiment."""
    load_experiment = lookup(ns, "load_experiment", "function")
    os.makedirs("probe_saved", exist_ok=True)
    path = os.path.join("probe_saved", "exp_probe.json")
    with open(path, "w") as f:
        json.dump(content, f)
    loaded = load_experiment(path)
    if not isinstance(loaded, tuple) or len(loaded) != 2:
        raise ProbeError(f"load_experiment returned a {type(loaded).__name__}; expected a (config, FitResult) pair")
    config, result = loaded
    return {"config": json.loads(json.dumps(config, default=str)) if isinstance(config, dict) else repr(config)[:200],
            "config_type": type(config).__name__, "result": _fit_result(result), "result_type": type(result).__name__}


def submitted_runs(ns, names):
    """The config and results of each submitted result file results/<name>.json."""
    runs = {}
    for name in names:
        path = os.path.join("results", f"{name}.json")
        runs[name] = attempt(lambda: _read_json(path))
    return runs
