"""HW2 probes: what the sandbox measures of the student's ConvClassifier,
TorchTrainer and experiment functions. They decide nothing: checks.py judges it in
the grader, recomputing every number it needs (an SGD step, a loss) itself.

The images are the first 50 of scikit-learn's handwritten digits, bundled in
digits50.json (8x8 greyscale, values 0..16), shaped like CIFAR-10 images.
"""
from __future__ import annotations

import json
import os
from collections import namedtuple
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from checklib.data import json_images
from checklib.forward import as_tensor, probe_modules  # noqa: F401 (probe_modules is called by name)
from checklib.probes import ProbeError, lookup, measure, read_json
from checklib.training import fields, read_checkpoint, recording_model, recording_trainer, scalar, state

DIGITS = Path(__file__).resolve().parent / "digits50.json"
FIT_FIELDS = ("num_epochs", "train_loss", "train_acc", "test_loss", "test_acc")


def digits(size: int = 32, channels: int = 3):
    """The bundled digits as (50, channels, size, size) floats in [-0.5, 0.5], and their labels."""
    return json_images(DIGITS, size, channels)


def linear_model(seed=0):
    """The small model the trainer checks use (checks.py rebuilds it from the same seed)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


def seeded_outputs(ns, configs, seed=42):
    """The course's test: seed, build the model, then draw the integer-valued image."""
    def one(cfg):
        torch.manual_seed(seed)
        net = lookup(ns, "ConvClassifier")(**cfg["kwargs"])
        image = torch.randint(low=0, high=256, size=tuple(cfg["kwargs"]["in_size"]), dtype=torch.float)
        with torch.no_grad():
            return as_tensor(net(image.unsqueeze(0)))
    return [{"setting": cfg, "forward": measure(lambda: one(cfg))} for cfg in configs]


# --- TorchTrainer ----------------------------------------------------------------------

def _trainer(ns, model, lr, momentum=0.0):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    return lookup(ns, "TorchTrainer")(model, nn.CrossEntropyLoss(), optimizer, "cpu")


def _batch(result):
    return fields(result, ("loss", "num_correct"), "BatchResult")


def trainer_steps(ns, lr, momentum):
    """Two train_batch calls on one batch; then a test_batch with a fresh model."""
    images, labels = digits(size=8, channels=1)
    model = linear_model()
    trainer, steps = _trainer(ns, model, lr, momentum), []
    for _ in range(2):
        steps.append({"result": measure(lambda: _batch(trainer.train_batch((images[:8], labels[:8])))), "state": state(model)})
    model = linear_model()
    trainer, initial, grad_modes = _trainer(ns, model, lr, momentum), state(model), []
    hook = model.register_forward_hook(lambda *args: grad_modes.append(torch.is_grad_enabled()))
    result = measure(lambda: _batch(trainer.test_batch((images[8:14], labels[8:14]))))
    hook.remove()
    after = state(model)
    return {"steps": steps, "tested": {"result": result, "changed": [k for k in initial if not torch.equal(initial[k], after[k])],
                                       "grads": [k for k, p in model.named_parameters() if p.grad is not None],
                                       "grad_enabled": any(grad_modes)}}


def overfit(ns, epochs, batches, batch_size, lr, momentum, seed=42):
    """The course's sanity test: train_epoch on the same 25 batches of 2 images, 22 times."""
    images, labels = digits(size=32, channels=3)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 32, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(32 * 16 * 16, 100), nn.ReLU(), nn.Linear(100, 10))
    trainer = _trainer(ns, model, lr, momentum)
    loader = DataLoader(TensorDataset(images, labels), batch_size=batch_size, shuffle=False)
    accuracies = [scalar(trainer.train_epoch(loader, max_batches=batches, verbose=False).accuracy)["value"]
                  for _ in range(epochs)]
    model.eval()
    with torch.no_grad():
        logits = model(images[: batches * batch_size])
    return {"accuracies": accuracies, "logits": logits, "labels": labels[: batches * batch_size]}


def fit_runs(ns, scenarios):
    """fit() in several scenarios on the bundled digits with the linear model. A
    scenario names the train and test images (index ranges) and, with "shift", gives
    the test images wrong labels, so that training makes the test loss rise."""
    images, labels = digits(size=8, channels=1)

    def one(s):
        model = linear_model()
        train = TensorDataset(images[slice(*s["train"])], labels[slice(*s["train"])])
        test = TensorDataset(images[slice(*s["test"])], (labels[slice(*s["test"])] + s.get("shift", 0)) % 10)
        loaders = [DataLoader(d, batch_size=s["batch_size"], shuffle=False) for d in (train, test)]
        name = f"probe_checkpoint_{s['name']}"
        result = _trainer(ns, model, s["lr"]).fit(*loaders, s["num_epochs"], checkpoints=name if s.get("checkpoints") else None,
                                                  early_stopping=s["early_stopping"], print_every=s["num_epochs"])
        out = {"result": fields(result, FIT_FIELDS, "FitResult")}
        if s.get("checkpoints"):
            out["checkpoint"] = measure(lambda: read_checkpoint(name + ".pt", model))
        return out
    return [{"setting": s, "fit": measure(lambda: one(s))} for s in scenarios]


# --- experiments -----------------------------------------------------------------------

def run_experiment_probe(ns, call, scripted):
    """run_experiment(**call) on small digits, with stand-ins for ConvClassifier and
    TorchTrainer; what they recorded and the file written."""
    run_experiment = lookup(ns, "run_experiment", "function")
    images, labels = digits(size=16, channels=3)
    built, events = [], []
    saved = {name: ns.get(name) for name in ("ConvClassifier", "TorchTrainer")}
    ns["ConvClassifier"] = recording_model(built, ("in_size", "out_classes", "filters", "pool_every", "hidden_dims"))
    fit_result = (ns.get("FitResult") or namedtuple("FitResult", FIT_FIELDS))(**scripted)
    ns["TorchTrainer"] = recording_trainer(events, ("num_epochs", "checkpoints", "early_stopping", "print_every"), fit_result)
    try:
        torch.manual_seed(0)
        run_experiment(**call, ds_train=TensorDataset(images[:30], labels[:30]), ds_test=TensorDataset(images[30:], labels[30:]))
    finally:
        ns.update(saved)
    path = os.path.join(call["out_dir"], f"{call['run_name']}.json")
    files = sorted(os.listdir(call["out_dir"])) if os.path.isdir(call["out_dir"]) else None
    return {"built": built, "events": events, "files": files, "written": measure(lambda: read_json(path))}


def load_experiment_probe(ns, content):
    """Write a result file in the documented format; read it back with load_experiment."""
    load_experiment = lookup(ns, "load_experiment", "function")
    os.makedirs("probe_saved", exist_ok=True)
    with open("probe_saved/exp_probe.json", "w") as f:
        json.dump(content, f)
    loaded = load_experiment("probe_saved/exp_probe.json")
    if not isinstance(loaded, tuple) or len(loaded) != 2:
        raise ProbeError(f"load_experiment returned a {type(loaded).__name__}; expected a (config, FitResult) pair")
    config, result = loaded
    return {"config": json.loads(json.dumps(config, default=str)) if isinstance(config, dict) else repr(config)[:200],
            "result": fields(result, FIT_FIELDS, "FitResult"), "result_type": type(result).__name__}


def submitted_runs(ns, names):
    """The config and results of each submitted result file results/<name>.json."""
    return {name: measure(lambda: read_json(os.path.join("results", f"{name}.json"))) for name in names}
