"""Verified accuracy: the grader re-measures a submitted model on its own labelled test set.

A student submits a model class (a graded cell) and its trained weights (a state
dict file). The grader does not believe any accuracy the student reports:

    grader   reads the instructor's test set (images AND labels: `read_image_set`),
             puts the images in a secret order (`secret_order`) and writes them, without
             labels, into the child's work folder (`write_images`);
    child    builds the model from the graded cell, loads the weights with
             torch.load(weights_only=True) (nothing is unpickled), times a few images,
             evaluates the images in the file's order until they or the time budget run
             out, and returns its predicted classes (`predictions`, a probe);
    grader   decides how many images count (`images_required`: all that fit the budget
             at the speed the grader's own clock measured, so a child that stops early,
             or is fast only while timed, gains nothing: missing predictions are wrong),
             compares the predictions with the labels it kept (`judge_accuracy`): the
             accuracy, a Wilson 95% interval when only a subset fitted, the rubric's
             thresholds applied with that interval, and the reported accuracy compared.

The order is a permutation drawn from a key the student cannot know (a hash of the
instructor's test set, labels included, and of the submission's files): the same
submission is evaluated on the same subset in every run (the Gradescope bundle's
plan and judge steps agree, and a regrade gives the same result), and a prefix of
the file is a uniformly random subset. The child never sees a label.

Units: seconds of wall time in the child (under the platform's CPU share), images
(32x32), parameters (elements of the state dict's tensors), megabytes (2**20 bytes).
"""
from __future__ import annotations

import hashlib
import io
import math
import pickle
import time
from pathlib import Path

import numpy as np

Z95 = 1.959964  # the two-sided 95% normal quantile of the Wilson interval
ROWS = 3 * 32 * 32  # one CIFAR row: 1024 red, 1024 green, 1024 blue values
SELF_CHECK_IMAGES = 32  # random images the probe uses where no test set is given (the students' self-check)


class TestSetError(ValueError):
    """The instructor's test set is missing or not in a layout the loader reads."""


# --- the grader's side: the labelled test set ----------------------------------------

class _ArraysOnly(pickle.Unpickler):
    """Unpickles CIFAR's python batches (dicts of numbers, byte strings, lists and numpy
    arrays) and refuses every other global, so even the instructor's file cannot run code."""

    ALLOWED = frozenset({("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")})

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"a test-set batch may hold only arrays and lists; it names {module}.{name}")


def _key(d: dict, name: str):
    for k in (name, name.encode()):
        if k in d:
            return d[k]
    raise TestSetError(f"the batch has no {name!r} entry (keys: {', '.join(map(str, list(d)[:8]))})")


def _from_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _ArraysOnly(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise TestSetError(f"{path}: not a CIFAR python batch ({err})") from None
    if not isinstance(batch, dict):
        raise TestSetError(f"{path}: a CIFAR python batch is a dict; found a {type(batch).__name__}")
    rows = np.asarray(_key(batch, "data"))
    if rows.ndim != 2 or rows.shape[1] != ROWS:
        raise TestSetError(f"{path}: 'data' must be uint8 rows of {ROWS} values; found shape {rows.shape}")
    images = rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, np.asarray(_key(batch, "labels"))


def read_image_set(path) -> tuple[np.ndarray, np.ndarray]:
    """The instructor's test set as (uint8 images (N, 32, 32, 3) NHWC, int64 labels (N,)).

    `path` may be a CIFAR python batch (`test_batch`), a folder holding one (or
    `cifar-10-batches-py/test_batch`), or a folder in the course's .npy layout
    (`x_test.npy` NHWC uint8, `y_test.npy` labels shaped (N, 1) or (N,))."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "test_batch", path / "cifar-10-batches-py" / "test_batch"):
            if candidate.is_file():
                return read_image_set(candidate)
        if (path / "x_test.npy").is_file() and (path / "y_test.npy").is_file():
            images = np.load(path / "x_test.npy", allow_pickle=False)
            labels = np.load(path / "y_test.npy", allow_pickle=False)
        else:
            raise TestSetError(f"{path}: no test_batch, cifar-10-batches-py/test_batch, or x_test.npy and y_test.npy in it")
    elif path.is_file():
        images, labels = _from_batch(path)
    else:
        raise TestSetError(f"{path}: the instructor's test set is missing (put CIFAR-10's test_batch there)")
    labels = np.asarray(labels).reshape(-1)
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or images.dtype != np.uint8:
        raise TestSetError(f"{path}: images must be uint8 of shape (N, 32, 32, 3); found {images.dtype} {images.shape}")
    if len(labels) != len(images) or len(labels) == 0:
        raise TestSetError(f"{path}: {len(images)} images but {len(labels)} labels")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise TestSetError(f"{path}: labels must be class indices >= 0; found {labels.dtype}")
    return np.ascontiguousarray(images), labels.astype(np.int64)


def secret_order(test_set: Path, submission_files: dict, n: int) -> np.ndarray:
    """The permutation of the n test images for one submission: drawn from a hash of the
    instructor's test set (which the student never has) and of the submitted files, so it
    is the same in every run for the same submission and unknowable to the student."""
    digest = hashlib.sha256()
    paths = sorted(Path(test_set).rglob("*")) if Path(test_set).is_dir() else [Path(test_set)]
    for p in paths:
        if p.is_file():
            digest.update(hashlib.sha256(p.read_bytes()).digest())
    for name in sorted(submission_files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(Path(submission_files[name]).read_bytes()).digest())
    return np.random.default_rng(int.from_bytes(digest.digest()[:8], "little")).permutation(n)


def write_images(images: np.ndarray, path) -> Path:
    """The images alone (no labels), as a .npy file the child reads without pickle."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.ascontiguousarray(images), allow_pickle=False)
    return path


# --- statistics (grader) ------------------------------------------------------------------

def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default): (low, high)."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def images_within(seconds_per_image: float, budget_seconds: float, total: int, batch_size: int) -> int:
    """How many images fit `budget_seconds` at the measured cost: all, or whole batches."""
    if seconds_per_image <= 0:
        return total
    fit = int(budget_seconds / seconds_per_image)
    return total if fit >= total else max(0, fit - fit % batch_size)


def images_required(returned: int, total: int, grader_seconds: float | None, budget: float | None) -> int:
    """How many images (a prefix of the secret order) the grader counts: every image that
    fits `budget` seconds at the speed the grader measured with its own clock, around the
    whole probe (building and loading included, so never faster than the model really
    was), and never fewer than were returned. Predictions missing from that prefix count
    as wrong: stopping early, or being fast only while timed, cannot narrow the sample.
    Without the grader's timing (or its budget) every image counts."""
    if returned >= total or grader_seconds is None or budget is None:
        return total
    fit = int(budget * max(returned, 1) / max(grader_seconds, 1e-9))  # budget / (seconds per image)
    return min(total, max(returned, fit))


def threshold_value(correct: int, n: int, total: int) -> float:
    """The number the rubric's thresholds are applied to: the accuracy when every test
    image was evaluated; with a subset, the upper end of its Wilson 95% interval (a
    threshold is reached unless the subset shows, at 95% confidence, that the model
    misses it: the grader's time limit must not cost the student points)."""
    if n >= total:
        return correct / max(n, 1)
    return wilson(correct, n)[1]


# --- the child's side: a probe ---------------------------------------------------------------

def _state_dict(path: Path, max_mb: float):
    """The submitted weights as {name: tensor}, read with weights_only=True."""
    import torch

    from .probes import ProbeError

    if not path.is_file():
        raise ProbeError(f"{path.name} was not found in your submission")
    size_mb = path.stat().st_size / 2**20
    if size_mb > max_mb:
        raise ProbeError(f"{path.name} is {size_mb:.0f} MB; the limit is {max_mb:g} MB (a model over the parameter budget)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a pickle of arbitrary objects: refused, never run
        if _out_of_memory(err):
            raise ProbeError(f"{path.name} ({size_mb:.0f} MB) could not be loaded within the grader's memory limit") from None
        raise ProbeError(f"{path.name} is not a plain state dict of tensors: torch.load(weights_only=True) refused it "
                         f"({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}). Save the weights "
                         f"with torch.save(model.state_dict(), '{path.name}'), not the model or other objects.") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ProbeError(f"{path.name} holds a {type(state).__name__}, not a state dict (names -> tensors); save it with "
                         f"torch.save(model.state_dict(), '{path.name}')")
    return state


def _load(model, state: dict) -> None:
    """Load `state` into `model` strictly, with the problems named (nn.Module's own methods)."""
    from torch import nn

    from .probes import ProbeError

    own = nn.Module.state_dict(model)
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: {tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in Net()" for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    problems = []
    if missing:
        problems.append(f"missing from the file: {', '.join(missing[:6])}{', ...' if len(missing) > 6 else ''} ({len(missing)})")
    if unexpected:
        problems.append(f"in the file but not in Net(): {', '.join(unexpected[:6])}{', ...' if len(unexpected) > 6 else ''} ({len(unexpected)})")
    if shapes:
        problems.append("shapes differ: " + "; ".join(shapes[:4]) + ("; ..." if len(shapes) > 4 else ""))
    if problems:
        raise ProbeError("the weights do not fit the architecture of your graded cell: " + "; ".join(problems)
                         + ". Submit the state dict of the model the cell defines.")
    nn.Module.load_state_dict(model, state, strict=True)


def _as_inputs(images: np.ndarray):
    """uint8 NHWC -> float NCHW in [0, 1], the input every submitted model takes."""
    import torch

    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)


def _outputs(model, x, classes: int):
    """The model's logits on x, checked: a plain (len(x), classes) tensor, all finite."""
    import torch

    from .probes import ProbeError

    out = model(x)
    if not isinstance(out, torch.Tensor):
        raise ProbeError(f"Net's forward returned a {type(out).__name__}; expected a tensor of logits")
    out = torch.Tensor.as_subclass(out, torch.Tensor).float()
    if tuple(out.shape) != (len(x), classes):
        raise ProbeError(f"Net's output has shape {tuple(out.shape)} for {len(x)} images; expected ({len(x)}, {classes}): "
                         f"one score per class")
    if not torch.isfinite(out).all():
        bad = int((~torch.isfinite(out)).any(dim=1).sum())
        raise ProbeError(f"Net's output holds NaN or infinite values for {bad} of {len(x)} images")
    return out


class _ImageFile:
    """The images of a .npy file, read a slice at a time (no memory map: the child's address
    space is limited, and 10,000 CIFAR images are 30 MB)."""

    def __init__(self, path):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            self.offset = f.tell()
        if fortran or dtype != np.uint8 or len(shape) != 4:
            raise ValueError(f"{self.path.name}: expected C-ordered uint8 images (N, H, W, C); found {dtype} {shape}")
        self.shape = shape
        self.row = int(np.prod(shape[1:]))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, part: slice) -> np.ndarray:
        start, stop, _ = part.indices(len(self))
        with open(self.path, "rb") as f:
            f.seek(self.offset + start * self.row)
            data = f.read(max(0, stop - start) * self.row)
        return np.frombuffer(data, dtype=np.uint8).reshape(-1, *self.shape[1:]).copy()


OUT_OF_MEMORY = ("can't allocate memory", "could not create a primitive")  # torch's and oneDNN's words for it


def _out_of_memory(err: BaseException) -> bool:
    return isinstance(err, MemoryError) or (isinstance(err, RuntimeError) and any(w in str(err) for w in OUT_OF_MEMORY))


def _classify(model, x, classes: int):
    """Predicted classes of x; a batch the memory limit cannot hold is split in halves
    (down to single images), so a model is judged too large only when one image fails."""
    try:
        return _outputs(model, x, classes).argmax(dim=1)
    except Exception as err:
        if not _out_of_memory(err) or len(x) == 1:
            raise
    import torch

    half = len(x) // 2
    return torch.cat([_classify(model, x[:half], classes), _classify(model, x[half:], classes)])


def _model_and_weights(ns, weights, model, max_parameters, max_mb):
    """({"model": its size, "weights": loaded}, {"model": the loaded module}), each part
    measured on its own. The size is every tensor the model registers, parameters and
    buffers (read from torch's own dictionaries): weights kept in buffers count too."""
    import torch

    from .probes import ProbeError, lookup, measure
    from .structure import parameters, walk

    def build():
        Net = lookup(ns, model)
        try:
            m = Net()
        except Exception as err:
            raise ProbeError(f"{model}() could not be built ({type(err).__name__}: {err}); it must build with no "
                             "arguments and without downloading anything (pretrained weights are not allowed)") from None
        if not isinstance(m, torch.nn.Module):
            raise ProbeError(f"{model}() is a {type(m).__name__}, not a torch.nn.Module")
        return m

    def count():
        m = build()
        n = sum(p.numel() for _, p in parameters(m))
        seen = set()
        for _, sub in walk(m):
            for value in object.__getattribute__(sub, "__dict__").get("_buffers", {}).values():
                if isinstance(value, torch.Tensor) and id(value) not in seen:
                    seen.add(id(value))
                    n += value.numel()
        if n > max_parameters:
            raise ProbeError(f"{model}() has {n:,} parameters and buffers; the budget is {max_parameters:,}")
        return n

    state: dict = {}

    def weights_fit():
        state["model"] = m = build()
        _load(m, _state_dict(Path(weights), max_mb))
        torch.nn.Module.train(m, False)  # eval mode, set by torch's own method
        return True

    return {"model": measure(count), "weights": measure(weights_fit)}, state


def model_weights(ns, weights, model="Net", max_parameters=25_000_000, max_mb=200.0):
    """Probe: the model's size and whether the weights load, on their own (a model that
    crashes or hangs while evaluating does not take these with it)."""
    return _model_and_weights(ns, weights, model, max_parameters, max_mb)[0]


def predictions(ns, images, weights, model="Net", classes=10, seconds=120.0, batch_size=100,
                timing_images=8, min_images=500, max_parameters=25_000_000, max_mb=200.0, reported=None):
    """Probe: the submitted model's predicted classes on the grader's images (no labels);
    with `images=None` (no test set: the self-check), on seeded random images, so that a
    student sees before submitting whether the weights load and the model is fast enough.

    Measured part by part (each {"value"} or {"error"}), so a verdict names its own cause:
      model       Net() built in eval mode: its parameter count (within `max_parameters`)
      weights     the weights file read with weights_only=True and loaded strictly
      cost        seconds per image: one image (after a warm-up image), then, unless that
                  is over four times the budget's share, a batch of `timing_images`; the
                  outputs' shape and finiteness; how many images fit `seconds` (fewer than
                  `min_images`: too slow for the limits)
      predictions the predicted classes of the file's images, in order, until they or the
                  `seconds` budget run out (uint8), and the seconds it took by the child's
                  clock (shown only; the grader counts images by its own: `images_required`)
      reported    the accuracy the student reported: `reported` = [file, key]
    """
    import torch

    from .probes import ProbeError, measure, read_yaml

    if images is None:  # no test set here (the students' self-check): the same checks on seeded random images
        stored = np.random.default_rng(0).integers(0, 256, (SELF_CHECK_IMAGES, 32, 32, 3), dtype=np.uint8)
    else:
        stored = _ImageFile(images)
    total = len(stored)
    need = min_images if images is None else min(min_images, total)  # images that must fit the budget
    found: dict = {"total": total, "test_set": images is not None}

    parts, state = _model_and_weights(ns, weights, model, max_parameters, max_mb)
    found.update(parts)

    def cost():
        if "model" not in state or not found["weights"].get("value"):
            raise ProbeError("not measured: the weights could not be loaded")
        m = state["model"]
        allowed = seconds / max(1, need)  # the slowest per-image cost that fits
        with torch.inference_mode():
            one = _as_inputs(np.array(stored[:1]))
            _outputs(m, one, classes)  # warm-up (allocations, lazy initialisation)
            start = time.perf_counter()
            _outputs(m, one, classes)
            per_image = time.perf_counter() - start
            if per_image <= 4 * allowed:  # not plainly too slow: time a batch (batching is cheaper per image)
                x = _as_inputs(np.array(stored[:timing_images]))
                _outputs(m, x[:1], classes)
                start = time.perf_counter()
                _classify(m, x, classes)
                per_image = (time.perf_counter() - start) / len(x)
        if per_image > allowed:
            fit = int(seconds / per_image)
            raise ProbeError(f"too slow for the limits: {per_image * 1000:.0f} ms per image on the grader's CPU, so only "
                             f"{fit} of the {need} images required fit the {seconds:g} s evaluation budget")
        n = images_within(per_image, seconds, total, batch_size)
        return {"seconds_per_image": per_image, "n": n}

    found["cost"] = measure(cost)

    def evaluate():
        if "value" not in found["cost"]:
            raise ProbeError("not measured: " + found["cost"].get("error", "no cost"))
        m, predicted, done = state["model"], [], 0
        start = time.perf_counter()
        with torch.inference_mode():  # in the file's order until the images or the budget run out
            while done < total and time.perf_counter() - start < seconds:
                x = _as_inputs(np.array(stored[done:done + batch_size]))
                predicted.append(_classify(m, x, classes).to(torch.uint8))
                done += len(x)
        return {"classes": torch.cat(predicted) if predicted else torch.zeros(0, dtype=torch.uint8),
                "seconds": time.perf_counter() - start}

    found["predictions"] = measure(evaluate)
    state.clear()  # the model's memory goes back before the next probe (the child's address space is limited)
    import gc

    gc.collect()
    if reported:
        def read_reported():
            value = read_yaml(reported[0])
            for key in reported[1:]:
                value = value[key] if isinstance(value, dict) and key in value else None
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
                raise ProbeError(f"{reported[0]} has no accuracy between 0 and 1 at {'.'.join(reported[1:])} "
                                 f"(found {value!r})")
            return float(value)
        found["reported"] = measure(read_reported)
    return found


def batch_outputs(ns, weights, model="Net", classes=10, seed=0, count=12, groups=(1,), max_mb=200.0):
    """Probe: the model's eval-mode logits for `count` seeded random images in [0, 1], once
    as one batch and once in batches of each size in `groups`, as {"whole", "split": {size:
    logits}}. The grader compares them: an image's logits must not depend on the others in
    its batch (else the accuracy would depend on how the grader batches the images)."""
    import torch

    from .probes import lookup, measure

    def run():
        m = lookup(ns, model)()
        _load(m, _state_dict(Path(weights), max_mb))
        torch.nn.Module.train(m, False)
        x = torch.rand(count, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
        with torch.inference_mode():
            whole = _outputs(m, x, classes)
            split = {str(size): torch.cat([_outputs(m, part, classes) for part in x.split(size)]) for size in groups}
        return {"whole": whole, "split": split}
    return measure(run)


# --- the grader's side: judges -------------------------------------------------------------------

def _error(record: dict) -> str | None:
    return record.get("error") if isinstance(record, dict) else "not measured"


def judge_loads(data: dict, labels=None, seconds: float | None = None, args: dict | None = None):
    """The model builds within the parameter budget and the weights fit it (data from
    `model_weights`, or the same parts of `predictions`)."""
    from .checks import failed, passed

    for part in ("model", "weights"):
        if _error(data.get(part, {})):
            return failed(_error(data[part]))
    return passed(f"Net() has {data['model']['value']:,} parameters and buffers, and your weights load into it.",
                  figures=(("parameters", float(data["model"]["value"])),))


def judge_outputs(data: dict, labels=None, seconds: float | None = None, args: dict | None = None):
    """Logits of the right shape, finite, fast enough for the limits. The time per image
    (a leaderboard figure) is the grader's: `seconds`, its own clock around the whole probe,
    over the images evaluated; the child's timing only where there is no grader (self-check)."""
    from .checks import failed, passed

    if _error(data.get("weights", {})):
        return failed("Not measured: " + _error(data["weights"]))
    for part in ("cost", "predictions"):
        if _error(data.get(part, {})):
            return failed(_error(data[part]))
    returned = len(data["predictions"]["value"]["classes"])
    if seconds is not None and returned:
        per_image, clock = seconds / returned, "by the grader's clock, building and loading included"
    else:
        per_image, clock = float(data["cost"]["value"]["seconds_per_image"]), "on this machine's CPU"
    return passed(f"Logits of shape (N, classes), finite; {per_image * 1000:.1f} ms per image ({clock}).",
                  figures=(("cpu_ms_per_image", round(per_image * 1000, 3)),))


def judge_accuracy(tolerance: float = 0.02, budget: float | None = None, suspicious_above: float | None = None):
    """A judge(data, labels, seconds, args): the verified accuracy over the images the grader
    counts (`images_required`, from the probe's budget in seconds, `budget` or else the
    probe's own `args["seconds"]`, and the grader's timing `seconds`; missing predictions
    are wrong), thresholds by `threshold_value`, the
    reported accuracy compared (a difference beyond `tolerance` and the interval is flagged),
    and an accuracy above `suspicious_above` flagged (the test labels may have leaked)."""
    from .checks import failed, passed

    def judge(data: dict, labels=None, seconds: float | None = None, args: dict | None = None):
        limit = budget if budget is not None else (args or {}).get("seconds")
        if not data.get("test_set"):
            return failed("Measured by the autograder only, on the instructor's test set (which is not available "
                          "here); the checks above ran your model on random images instead.")
        for part in ("weights", "cost", "predictions"):
            if _error(data.get(part, {})):
                return failed("The accuracy could not be verified: " + _error(data[part]))
        raw = np.asarray(data["predictions"]["value"]["classes"])
        n_classes = int((args or {}).get("classes", 10))
        if raw.ndim != 1 or (raw.size and (not np.issubdtype(raw.dtype, np.integer) or raw.min() < 0 or raw.max() >= n_classes)):
            return failed(f"The accuracy could not be verified: the predictions that came back are not one class index "
                          f"(0 to {n_classes - 1}) per image (found {raw.dtype} of shape {raw.shape}).")
        predicted = raw.astype(np.int64)
        total, returned = int(data["total"]), len(predicted)
        if labels is None or len(labels) != total or returned > total:
            return failed("The accuracy could not be verified: the grader's labels do not match the images it wrote.")
        n = images_required(returned, total, seconds, limit)
        correct = int((predicted[:n] == np.asarray(labels)[:min(returned, n)]).sum())
        accuracy = correct / max(n, 1)
        low, high = wilson(correct, n)
        if n >= total:
            message = f"Verified accuracy {accuracy:.2%} on all {total:,} of the instructor's test images."
            margin = 0.0
        else:
            message = (f"Verified accuracy {accuracy:.2%} on a random subset of {n:,} of the {total:,} test images "
                       f"(what fits the time limit at your model's speed; the subset is the grader's secret). "
                       f"Wilson 95% interval: {low:.2%} to {high:.2%}; points follow the interval's upper end, "
                       f"{high:.2%} (a threshold counts as reached unless the interval lies below it).")
            margin = (high - low) / 2
        if returned < n:
            timing = f" in {seconds:.0f} s by the grader's clock" if seconds is not None else ""
            message += (f" Your model returned predictions for {returned:,} images{timing}; at that speed {n:,} fit "
                        f"the evaluation budget, so the {n - returned:,} it did not return count as wrong.")
        flags = []
        reported = data.get("reported", {})
        if isinstance(reported, dict) and "value" in reported:
            claim = reported["value"]
            message += f" You reported {claim:.2%}."
            if abs(claim - accuracy) > tolerance + margin:
                flags.append(f"reported accuracy {claim:.2%} differs from the verified {accuracy:.2%} by more than "
                             f"{tolerance:.1%}{' plus the interval' if margin else ''}")
                message += " That differs from the verified accuracy by more than the tolerance: flagged for a TA (the score uses the verified accuracy only)."
        elif isinstance(reported, dict) and "error" in reported:
            message += f" Your reported accuracy could not be read: {reported['error']}."
            flags.append(f"no reported accuracy to compare with the verified {accuracy:.2%} ({reported['error'][:120]})")
        if suspicious_above is not None and accuracy > suspicious_above:
            flags.append(f"verified accuracy {accuracy:.2%} is above {suspicious_above:.0%}, more than models trained "
                         "on the training set reach here: check for leaked test labels (a memorised test set)")
        return passed(message, threshold_value(correct, n, total),
                      figures=(("accuracy", round(accuracy, 4)),), flag="; ".join(flags))

    return judge
