"""Stage 3, probes: what the sandboxed child measures and sends back as plain data.

A probe is a function `probe(ns, **args)` in an assignment's `probes.py`. It runs
inside the child, next to the student's code (`ns` is the namespace the graded
cells ran in), and returns only plain data: dicts, lists, numbers, strings and
tensors, which `encode` turns into JSON. Probes measure; they never decide. The
grader judges what comes back (see `checks.py`), so nothing the student's code
does to `torch.allclose`, `__eq__` or the assert statement can change a score.

This module also holds the measuring helpers probes share (`measure`, `each`,
`need`, the size-capped file readers) and the student-facing lookup of a name;
module structure is read by `structure.py`, forward passes by `forward.py`.
"""
from __future__ import annotations

import base64
from typing import Any

import numpy as np

TENSOR_TAG = "__tensor__"
MAX_ELEMENTS = 1 << 22  # per tensor sent back (16 MiB of float32)


class ProbeError(Exception):
    """A measurement that could not be made; the message is shown to the student."""


# --- plain data over JSON -------------------------------------------------------

def encode(value: Any) -> Any:
    """Plain data with tensors and numpy arrays as tagged base64 records."""
    import torch

    if isinstance(value, torch.Tensor):
        # A student's Tensor subclass could override methods: read it as a plain tensor.
        value = torch.Tensor.as_subclass(value, torch.Tensor).detach().cpu()
        if value.dtype in (torch.bfloat16, torch.float16):
            value = value.float()
        value = value.numpy()
    if isinstance(value, np.ndarray):
        if value.size > MAX_ELEMENTS:
            raise ProbeError(f"a tensor of {value.size} elements is too large to send back")
        value = np.ascontiguousarray(value)
        return {TENSOR_TAG: {"dtype": value.dtype.str, "shape": list(value.shape),
                             "data": base64.b64encode(value.tobytes()).decode("ascii")}}
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, (np.bool_, np.integer, np.floating)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ProbeError(f"cannot send back a {type(value).__name__}")


def decode(value: Any) -> Any:
    """Inverse of `encode`, run by the grader: tensors come back as torch tensors."""
    import torch

    if isinstance(value, dict):
        if set(value) == {TENSOR_TAG}:
            spec = value[TENSOR_TAG]
            dtype = np.dtype(spec["dtype"])
            if dtype.kind not in "biuf":
                raise ValueError(f"unexpected tensor dtype {dtype}")
            array = np.frombuffer(base64.b64decode(spec["data"]), dtype=dtype).reshape(spec["shape"])
            return torch.from_numpy(array.copy())
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


# --- typed measurements: a value, or the error that prevented it ----------------------

def measure(fn) -> dict:
    """{"value": fn()} or {"error": why}: one measurement, isolated from every other.
    A ProbeError keeps the grader's own words; any other error becomes the
    student's traceback, trimmed to their cells. The grader reads it back as a
    `checklib.checks.Outcome`."""
    from checklib.runner import student_traceback

    try:
        return {"value": fn()}
    except ProbeError as err:
        return {"error": str(err)}
    except Exception as err:
        return {"error": student_traceback(err)}


def each(settings, **parts) -> list[dict]:
    """Measure every setting, each part on its own: `parts` maps a part's name to
    fn(setting, earlier) where `earlier` holds the values of the parts measured
    before it for that setting (a part whose input failed is reported as failed).
    Returns [{"setting": s, part: {"value" | "error"}, ...}] in order."""
    rows = []
    for setting in settings:
        row, earlier = {"setting": setting}, {}
        for name, fn in parts.items():
            row[name] = measure(lambda: fn(setting, earlier))
            if "value" in row[name]:
                earlier[name] = row[name]["value"]
        rows.append(row)
    return rows


class Needs(ProbeError):
    """Raised by a part whose input (an earlier part) failed: its own error says which."""


def need(earlier: dict, name: str):
    """The value of the earlier part `name` of this setting, or Needs(...)."""
    if name not in earlier:
        raise Needs(f"not measured, because `{name}` failed for this setting (see the check that judges it)")
    return earlier[name]


# --- submitted files as plain data -----------------------------------------------------

def read_json(path, limit: int = 2**20):
    """A JSON file the student submitted, refusing files over `limit` bytes."""
    import json
    import os

    if not os.path.isfile(path):
        raise ProbeError(f"{path} was not found")
    if os.path.getsize(path) > limit:
        raise ProbeError(f"{path} is larger than {limit // 1024} KiB")
    with open(path) as f:
        try:
            return json.load(f)
        except ValueError as err:
            raise ProbeError(f"{path} is not valid JSON: {err}") from None


def read_yaml(path):
    """A YAML file as plain data (safe_load: no objects), None when it is missing."""
    import json
    import os

    import yaml

    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.loads(json.dumps(yaml.safe_load(f), default=str))
    except yaml.YAMLError as err:
        raise ProbeError(f"{path} is not valid YAML: {err}") from None


def read_table(path) -> dict:
    """An Excel table (first column the index, kept as text) as plain data."""
    import pandas as pd

    try:
        table = pd.read_excel(path, index_col=0, dtype={0: str})
    except Exception as err:
        raise ProbeError(f"{path} could not be read as an Excel table: {type(err).__name__}: {err}") from None
    return {"index_name": table.index.name, "index": [plain(v) for v in table.index],
            "columns": [str(c) for c in table.columns],
            "rows": [[plain(v) for v in row] for row in table.itertuples(index=False)]}


def plain(value):
    """A scalar as JSON data: NaN becomes None, numpy and torch scalars numbers, the rest text."""
    import math

    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return None if isinstance(value, float) and math.isnan(value) else value
    if hasattr(value, "item"):
        return plain(value.item())
    return str(value)


# --- shared measuring helpers -----------------------------------------------------

def attempt(fn) -> Any:
    """fn()'s value, or {"error": why} when it fails, so that one failing setting
    spoils no other. A ProbeError keeps the grader's own words; any other error
    becomes the student's traceback, trimmed to their cells."""
    from checklib.runner import student_traceback

    try:
        return fn()
    except ProbeError as err:
        return {"error": str(err)}
    except Exception as err:
        return {"error": student_traceback(err)}


def lookup(ns: dict, name: str, kind: str = "class"):
    """The student's object called `name`, or a ProbeError saying it is missing."""
    if name not in ns:
        raise ProbeError(f"`{name}` is not defined: the graded cell that should define the {kind} did not run to the end.")
    return ns[name]
