"""Measuring a student's training code: what it returned, read as plain data in the
sandbox, and the numbers it should have produced, recomputed in the grader.

In the sandbox:
    scalar(v)                 {"type", "value", "graph"}: a returned loss or count, and whether it holds a graph
    fields(result, names)     a NamedTuple's fields: scalars, or lists of scalar values (None where not numeric)
    state(module)             a copy of its state_dict
    read_checkpoint(path, m)  what a saved checkpoint holds, compared with m's current state
    judge_checkpoint(measured, name)        (grader) it holds the model's final state_dict
In the grader:
    replay_sgd(model, x, y, steps, **sgd)   [(loss, correct, state)] after each plain SGD step
    evaluate(model, x, y)                   (mean cross-entropy, accuracy in percent), without gradients
    stop_epoch(losses, patience, limit)     epochs an early-stopping rule runs, given the test losses
    batch_problem(measured, loss, correct, method)   what is wrong with a returned (loss, num_correct)
    epochs_problem(result, names, kind)         what is wrong with a fit result's per-epoch lists
    judge_early_stopping(runs, field)       each run stopped where its OWN per-epoch values say
"""
from __future__ import annotations

import math
import os

import torch
from torch import nn


def scalar(value) -> dict:
    try:
        number = float(value)
    except (TypeError, ValueError, RuntimeError):
        number = None
    return {"type": type(value).__name__, "value": number, "graph": bool(getattr(value, "requires_grad", False))}


def fields(result, names, kind: str) -> dict:
    """The named fields of `result` (a NamedTuple the student returns): each a scalar's
    value, or a list of values; "shown" keeps each field's repr for messages."""
    from .probes import ProbeError

    if not isinstance(result, tuple) or not all(hasattr(result, n) for n in names):
        raise ProbeError(f"expected a {kind}{tuple(names)}; got a {type(result).__name__}")
    out = {"shown": {n: repr(getattr(result, n))[:120] for n in names}}
    for n in names:
        value = getattr(result, n)
        out[n] = [scalar(v)["value"] for v in value] if isinstance(value, (list, tuple)) else scalar(value)
    return out


def state(module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def read_checkpoint(path, model) -> dict:
    from .probes import ProbeError

    if not os.path.isfile(path):
        raise ProbeError(f"no file {path} was written")
    saved, current = torch.load(path, weights_only=True), model.state_dict()
    if not isinstance(saved, dict):
        return {"type": type(saved).__name__}
    return {"type": "dict", "keys": sorted(saved), "expected_keys": sorted(current),
            "max_difference": max((float((saved[k].float() - current[k].float()).abs().max())
                                   for k in current if k in saved and saved[k].shape == current[k].shape), default=None)}


def judge_checkpoint(measured, name: str):
    """The verdict on read_checkpoint's measurement of `name`, where the model saved
    last is the best one (so the file must hold the final weights)."""
    from .checks import failed, passed

    if "error" in measured:
        return failed(f"Nothing readable was saved as {name}: {measured['error']}")
    saved = measured["value"]
    if saved["type"] != "dict" or saved["keys"] != saved["expected_keys"]:
        return failed(f"{name} must hold the model's state_dict() (keys {saved.get('expected_keys')}); "
                      f"found a {saved['type']} with keys {saved.get('keys')}.")
    if saved["max_difference"] is None or saved["max_difference"] > 1e-6:
        return failed(f"{name} does not hold the best model: every epoch improved, so the last epoch's weights should "
                      f"have been saved (they differ by up to {saved['max_difference']}).")
    return passed(f"Checkpoints: the best model's state_dict is saved to {name}.")


def replay_sgd(model, x, y, steps: int, **sgd) -> list[tuple[float, int, dict]]:
    optimizer = torch.optim.SGD(model.parameters(), **sgd)
    replay = []
    for _ in range(steps):
        optimizer.zero_grad()
        scores = model(x)
        loss = nn.functional.cross_entropy(scores, y)
        loss.backward()
        optimizer.step()
        replay.append((loss.item(), int((scores.argmax(1) == y).sum()), {k: v.clone() for k, v in model.state_dict().items()}))
    return replay


def evaluate(model, x, y) -> tuple[float, float]:
    with torch.no_grad():
        scores = model(x)
        return nn.functional.cross_entropy(scores, y).item(), 100.0 * float((scores.argmax(1) == y).double().mean())


def stop_epoch(losses, patience, limit: int) -> int:
    """Stop after `patience` epochs in a row without a loss lower than every earlier one."""
    best, waited = math.inf, 0
    for epoch, loss in enumerate(losses, start=1):
        best, waited = (loss, 0) if loss < best else (best, waited + 1)
        if patience is not None and waited >= patience:
            return epoch
    return limit


def batch_problem(measured, loss: float, correct: int, method: str, tolerance: float = 1e-5) -> str | None:
    """What is wrong with a measured `{"loss": scalar, "num_correct": scalar}` that `method`
    returned for one batch, given the loss and count recomputed here; None if nothing."""
    if "error" in measured:
        return f"{method} raised an error:\n{measured['error']}"
    got, count = measured["value"]["loss"], measured["value"]["num_correct"]
    if got["graph"]:
        return (f"{method} returned the loss as a tensor that still holds its computation graph; return loss.item() "
                "(a float), or the graph of every batch stays in memory until the epoch ends.")
    if got["value"] is None or not math.isclose(got["value"], loss, rel_tol=tolerance, abs_tol=tolerance):
        return f"{method} returned loss={got['value']}; the loss of this batch is {loss:.6f}."
    if count["value"] != correct:
        return f"{method} returned num_correct={count['value']}; {correct} samples are classified correctly."
    return None


def epochs_problem(result: dict, names, kind: str) -> str | None:
    """What is wrong with a `fields()` measurement of a `kind` (a fit result) whose first field
    (`names[0]`) counts the epochs and whose others hold one finite number per epoch
    (losses: the mean of the batch losses; the rest: accuracies in percent)."""
    n = result[names[0]]["value"]
    for field in names[1:]:
        values = result[field]
        if not isinstance(values, list) or any(v is None or not math.isfinite(v) for v in values):
            return (f"{kind}.{field} is {result['shown'][field]}; expected a list with one number per epoch "
                    f"({'the mean of the batch losses' if 'loss' in field else 'the accuracy in percent'}).")
    lengths = {f: len(result[f]) for f in names[1:]}
    if any(length != n for length in lengths.values()):
        return f"{kind}.{names[0]} is {n}, but the lists have lengths {lengths}; both must count the epochs run."
    return None


def judge_early_stopping(runs, field: str = "test_loss"):
    """Early stopping, judged on the student's OWN per-epoch `field` values (whether they
    are right is another check's concern). `runs`: Outcomes of fit whose value holds a
    `fields()` "result" and whose setting gives num_epochs, early_stopping (the patience)
    and optionally a `note` for the message (what makes that scenario telling)."""
    from .checks import failed, passed

    for o in runs:
        s = o.setting
        if not o.ok:
            return failed(f"Early stopping: fit raised an error:\n{o.error}")
        values = o.value["result"][field]
        if not isinstance(values, list) or not values or any(v is None for v in values):
            return failed(f"Early stopping: fit returned {field}={o.value['result']['shown'][field]}; expected one number per epoch.")
        want = stop_epoch(values, s["early_stopping"], s["num_epochs"])
        if len(values) != want:
            return failed(f"Early stopping: fit(num_epochs={s['num_epochs']}, early_stopping={s['early_stopping']}) ran "
                          f"{len(values)} epochs with {field} {[round(v, 4) for v in values]}; by those values it must run "
                          f"{want}. An epoch improves when its {field} is lower than every earlier one"
                          + (f" ({s['note']})." if s.get("note") else "."))
    return passed(f"Early stopping: stops after exactly early_stopping epochs without a {field} improvement, and only then.")


# --- stand-ins that record how the student's code uses them (in the sandbox) -----------------------

def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return int(value) if hasattr(value, "__index__") else str(value)


def recording_model(record: list, params: tuple):
    """A stand-in for the student's model class: records its arguments (positional ones
    named by `params`) and torch.initial_seed(); holds one parameter, returns its input."""
    class RecordingModel(nn.Module):
        def __init__(self, *args, **kwargs):
            super().__init__()
            record.append({**dict(zip(params, map(_plain, args))), **{k: _plain(v) for k, v in kwargs.items()},
                           "initial_seed": torch.initial_seed()})
            self.scale = nn.Parameter(torch.ones(1))

        def forward(self, x):
            return x * self.scale
    return RecordingModel


def recording_trainer(record: list, fit_params: tuple, returns):
    """A stand-in for a trainer class Trainer(model, loss_fn, optimizer, device) whose
    fit(dl_train, dl_test, ...) records its arguments (positional ones named by
    `fit_params`) and its data loaders, and returns `returns`."""
    class RecordingTrainer:
        def __init__(self, model, loss_fn, optimizer, device=None):
            group = optimizer.param_groups[0] if getattr(optimizer, "param_groups", None) else {}
            params = {id(p) for p in model.parameters()}
            record.append({"event": "trainer", "loss_fn": type(loss_fn).__name__, "optimizer": type(optimizer).__name__,
                           "lr": group.get("lr"), "weight_decay": group.get("weight_decay"),
                           "optimizes_model": bool(params) and {id(p) for p in group.get("params", [])} == params})

        def fit(self, dl_train, dl_test, *args, **kwargs):
            loaders = [{"batch_size": getattr(dl, "batch_size", None), "size": len(getattr(dl, "dataset", [])),
                        "shuffle": type(getattr(dl, "sampler", None)).__name__ == "RandomSampler"} for dl in (dl_train, dl_test)]
            record.append({"event": "fit", **dict(zip(fit_params, map(_plain, args))),
                           **{k: _plain(v) for k, v in kwargs.items()}, "loaders": loaders})
            return returns
    return RecordingTrainer
