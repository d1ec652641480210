"""HW3 probes: measurements of the student's reader, preprocessing, network and
trainer, made inside the sandbox and returned as plain data. They decide nothing:
checks.py (and hidden_checks.py) judge what they return, in the grader, against
values computed there.

Every input is the grader's: the CIFAR-format files the reader must read are
written here from a seed (raw uint8 rows, as CIFAR-10 holds them), the images fed
to the preprocessing are uint8 drawn from a seed, and the networks are measured with
checklib's library (structure read without the student's methods, the layers forward
calls recorded with hooks, the grader's seeded weights mapped by structure).
"""
from __future__ import annotations

import io
import os
import pickle
import shutil
import struct
import tempfile
import types

import numpy as np

from checklib.data import seeded_pixels
from checklib.forward import batchnorm_momentum, eval_forward, layer_calls, seeded_by_calls, seeded_input
from checklib.probes import ProbeError, each, lookup, measure
from checklib.structure import report, set_training

ROW = 3 * 32 * 32  # one CIFAR-10 image: 1024 red, then 1024 green, then 1024 blue values


# --- the data reader ------------------------------------------------------------------------

def _py2_pickle(obj) -> bytes:
    """Pickle `obj` as the real CIFAR batches were (Python 2: every bytes a `str`), so
    readers opening them with encoding='bytes' and with encoding='latin1' both work."""

    class Py2Pickler(pickle._Pickler):
        dispatch = dict(pickle._Pickler.dispatch)

        def save_str2(self, value: bytes):
            header = (pickle.SHORT_BINSTRING + bytes([len(value)]) if len(value) < 256
                      else pickle.BINSTRING + struct.pack("<i", len(value)))
            self.write(header + value)
            self.memoize(value)
        dispatch[bytes] = save_str2

    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def batch_arrays(sizes, seed: int) -> list[tuple[np.ndarray, list[int]]]:
    """The rows and labels of each file (data_batch_1..5, then test_batch): the same
    draw in the sandbox and in the grader."""
    found = []
    for i, n in enumerate(sizes):
        rows = seeded_pixels((n, ROW), seed * 100 + i)
        labels = [int(v) for v in np.random.default_rng(seed * 100 + 50 + i).integers(0, 10, n)]
        found.append((rows, labels))
    return found


def write_batches(folder: str, sizes, seed: int) -> None:
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name, (rows, labels) in zip(names, batch_arrays(sizes, seed)):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(_py2_pickle({b"batch_label": name.encode(), b"labels": labels, b"data": rows,
                                 b"filenames": [f"{name}_{k}.png".encode() for k in range(len(labels))]}))


def _scratch(prefix: str) -> str:
    """A new folder in the working directory: the one place the sandbox lets a probe
    write (its /tmp may be read-only); the caller removes it."""
    return tempfile.mkdtemp(prefix=prefix, dir=os.getcwd())


def _array(value, what: str) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise ProbeError(f"{what} is an array of {array.dtype}; expected numbers")
    return array


def reader(ns, sizes, seed):
    """load_data(folder) on the grader's files: (x_train, y_train, x_test, y_test) as arrays."""
    load_data = lookup(ns, "load_data", "function")
    folder = _scratch("cifar-10-batches-py-")
    try:
        write_batches(folder, sizes, seed)

        def read():
            found = load_data(folder)
            if not isinstance(found, (tuple, list)) or len(found) != 4:
                raise ProbeError(f"load_data returned {type(found).__name__}; expected the tuple (x_train, y_train, x_test, y_test)")
            return [_array(v, name) for v, name in zip(found, ("x_train", "y_train", "x_test", "y_test"))]
        return measure(read)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _split_function(ns):
    """train_valid_split, or the starter's spelling train_vaild_split."""
    for name in ("train_valid_split", "train_vaild_split"):
        if name in ns:
            return ns[name]
    return lookup(ns, "train_valid_split", "function")


def split(ns, n, split_index, default_n):
    """The four arrays of train_valid_split(x, y, split_index) on rows numbered 0..n-1,
    and their lengths with the default split_index on default_n rows."""
    fn = _split_function(ns)

    def with_index():
        x, y = np.arange(n * 4, dtype=np.int64).reshape(n, 4), np.arange(n, dtype=np.int64)
        found = fn(x, y, split_index)
        if not isinstance(found, (tuple, list)) or len(found) != 4:
            raise ProbeError(f"it returned {type(found).__name__}; expected (x_train_new, y_train_new, x_valid, y_valid)")
        return [_array(v, "an output") for v in found]

    def default():
        x, y = np.zeros((default_n, 2), dtype=np.uint8), np.zeros(default_n, dtype=np.int64)
        return [len(v) for v in fn(x, y)]
    return {"index": measure(with_index), "default": measure(default)}


# --- preprocessing ----------------------------------------------------------------------------

def _image(value, shape, what: str) -> np.ndarray:
    array = _array(value, what)
    if tuple(array.shape) != tuple(shape):
        raise ProbeError(f"{what} has shape {tuple(array.shape)}; expected {tuple(shape)}")
    return np.array(array, dtype=np.float64)


def parse(ns, seed, count):
    """parse_record(row, False) for `count` grader rows, with preprocess_image replaced
    by a stand-in that returns its input unchanged ("passed": what parse_record gave it,
    "out": what parse_record returned), so the layout is judged apart from the
    preprocessing; and the full parse_record output ("full")."""
    parse_record = lookup(ns, "parse_record", "function")
    rows = seeded_pixels((count, ROW), seed)

    def through_stand_in():
        passed, outs, real = [], [], ns.get("preprocess_image")

        def stand_in(image, training):
            passed.append(np.array(image, copy=True))
            return image
        ns["preprocess_image"] = stand_in
        try:
            for row in rows:
                outs.append(_image(parse_record(row.copy(), False), (3, 32, 32), "parse_record's output"))
        finally:
            ns["preprocess_image"] = real
        return {"called": len(passed) == count, "out": np.stack(outs)}

    def full():
        return np.stack([_image(parse_record(row.copy(), False), (3, 32, 32), "parse_record's output") for row in rows])
    return {"stand_in": measure(through_stand_in), "full": measure(full)}


def preprocess(ns, seed, draws, repeats):
    """preprocess_image on uint8 [32, 32, 3] images drawn from `seed`: without training
    (`repeats` calls per image, numpy's random state moved between them), and with
    training (one call per image, `draws` images). Each call gets its own copy."""
    preprocess_image = lookup(ns, "preprocess_image", "function")
    images = seeded_pixels((draws, 32, 32, 3), seed)
    np.random.seed(seed)

    def testing():
        found = []
        for image in images[:4]:
            calls = []
            for r in range(repeats):
                np.random.seed(seed + 1 + r)
                calls.append(_image(preprocess_image(image.copy(), False), (32, 32, 3), "preprocess_image's output"))
            found.append(np.stack(calls))
        return np.stack(found).astype(np.float32)

    def training():
        np.random.seed(seed)
        return np.stack([_image(preprocess_image(image.copy(), True), (32, 32, 3), "preprocess_image's output")
                         for image in images]).astype(np.float32)
    return {"test": measure(testing), "train": measure(training)}


# --- the network ------------------------------------------------------------------------------

def networks(ns, settings, seed, parts):
    """ResNet(version, size, classes, filters) per setting (positional: the course's
    order), each part on a freshly built network: "structure" (no forward), "forward"
    (eval output), "calls" (the layers forward calls and what feeds each), "momentum"
    (each batch norm's measured momentum), "seeded" (outputs with the grader's weights,
    mapped in call order onto the setting's "roles" / "orders")."""
    ResNet = lookup(ns, "ResNet")
    build = lambda s: ResNet(s["version"], s["size"], s["classes"], s["filters"])  # noqa: E731
    table = {"structure": lambda s, _: report(build(s)),
             "forward": lambda s, _: eval_forward(build(s), s["input"], seed),
             "calls": lambda s, _: layer_calls(build(s), s["input"], seed),
             "momentum": lambda s, _: batchnorm_momentum(build(s), s["input"], seed),
             "seeded": lambda s, _: seeded_by_calls(build(s), s["roles"], s["orders"], seed, s["input"])}
    return each(settings, **{p: table[p] for p in parts})


# --- the model: training with checkpoints, and test_or_validate -------------------------------------

def checkpoints(ns, config, rows, epochs, restore, seed):
    """The student's model class `Cifar(config)` trained `epochs` epochs on `rows`
    grader images (uint8), checkpoints in a folder of its own; then the checkpoint of
    epoch `restore` read here (weights only) into a fresh ResNet, its outputs and its
    predictions on the grader's images compared with what the model gives after
    test_or_validate(x, y, [restore]), and the accuracies test_or_validate returns."""
    folder = _scratch("checkpoints-")
    try:
        return _checkpoints(ns, config, rows, epochs, restore, seed, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _checkpoints(ns, config, rows, epochs, restore, seed, folder):
    import torch

    Cifar, ResNet, parse_record = lookup(ns, "Cifar"), lookup(ns, "ResNet"), lookup(ns, "parse_record", "function")
    cfg = types.SimpleNamespace(**config, modeldir=folder)
    x = seeded_pixels((rows, ROW), seed)
    y = np.random.default_rng(seed).integers(0, 10, rows)
    result = {}

    def train():
        model = Cifar(cfg)
        model.train(x.copy(), y.copy(), epochs)
        result["model"] = model
        return sorted(os.listdir(folder))
    result["files"] = measure(train)

    def restored():
        path = os.path.join(folder, f"model-{restore}.ckpt")
        if not os.path.isfile(path):
            raise ProbeError(f"no checkpoint {os.path.basename(path)} in config.modeldir after {epochs} epochs "
                             f"with save_interval={config['save_interval']}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ProbeError(f"{os.path.basename(path)} could not be read as a state dict of tensors "
                             f"(torch.load(..., weights_only=True)): {type(err).__name__}: {str(err)[:200]}") from None
        if not isinstance(state, dict):
            raise ProbeError(f"{os.path.basename(path)} holds a {type(state).__name__}; expected the network's state_dict()")
        network = ResNet(config["resnet_version"], config["resnet_size"], config["num_classes"], config["first_num_filters"])
        try:
            torch.nn.Module.load_state_dict(network, state)
        except Exception as err:
            raise ProbeError(f"{os.path.basename(path)} does not load into ResNet(...) as its state_dict: "
                             f"{str(err).splitlines()[0][:300]}") from None
        images = torch.tensor(np.stack([parse_record(r.copy(), False) for r in x]), dtype=torch.float32)
        set_training(network, False)
        with torch.no_grad():
            out = torch.Tensor.as_subclass(network(seeded_input([2, 3, 32, 32], seed)), torch.Tensor).clone()
            predictions = torch.Tensor.as_subclass(network(images), torch.Tensor).argmax(1)
        return {"out": out, "predictions": predictions}
    result["restored"] = measure(restored)

    def tested():
        model = result.get("model")
        if model is None:
            raise ProbeError("not measured, because training failed (see the training check)")
        accuracies = model.test_or_validate(x.copy(), y.copy(), [restore])
        network = model.network
        set_training(network, False)
        with torch.no_grad():
            out = torch.Tensor.as_subclass(network(seeded_input([2, 3, 32, 32], seed).to(
                next(iter(torch.nn.Module.parameters(network))).device)), torch.Tensor).cpu().clone()
        return {"accuracies": [float(a) for a in np.asarray(accuracies, dtype=np.float64).ravel()], "out": out}
    result["tested"] = measure(tested)
    result.pop("model", None)
    return result


def results_file(ns, path):
    """The submitted results file (JSON), as plain data."""
    from checklib.probes import read_json
    return measure(lambda: read_json(path))
