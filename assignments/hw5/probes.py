"""HW5 probes: measurements of the student's model, weights and report files, made
inside the sandbox and returned as plain data; checks.py judges them in the grader.

The verified accuracy is checklib.verified's `predictions` probe: the model built from
the graded cell, model.pt loaded with weights_only=True, and the predicted classes of
the grader's test images (which arrive without labels). This file adds the report's
files: CONFIG as the graded cell defines it, results.yaml, and the curves' PNG.
"""
from __future__ import annotations

import json
import os
import struct

from checklib.probes import ProbeError, lookup, measure, read_yaml
from checklib.verified import batch_outputs, model_weights, predictions  # noqa: F401 (called by name from the checks)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _plain_config(ns):
    config = lookup(ns, "CONFIG", "dict")
    if not isinstance(config, dict):
        raise ProbeError(f"CONFIG is a {type(config).__name__}; expected a dict")
    return json.loads(json.dumps(dict(config), default=str))  # tuples become lists, as in YAML


def _png_size(path):
    """(width, height) of a PNG that decodes whole (a header alone, or a damaged file, is
    not an image of the curves); an error when it is not one."""
    from PIL import Image

    if not os.path.isfile(path):
        raise ProbeError(f"{path} was not found")
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise ProbeError(f"{path} is not a PNG image")
    width, height = struct.unpack(">II", head[16:24])
    if width * height > 40_000_000:
        raise ProbeError(f"{path} claims {width}x{height} pixels: not a plot")
    try:
        with Image.open(path) as image:
            image.load()  # decodes every pixel: a truncated or forged file fails here
    except Exception as err:
        raise ProbeError(f"{path} is not a complete PNG image ({type(err).__name__}: {err})") from None
    return [width, height]


def report_files(ns, results, curves):
    """CONFIG (from the graded cell), the results file as plain data, the PNG's size."""
    return {"config": measure(lambda: _plain_config(ns)),
            "results": measure(lambda: read_yaml(results)),
            "png": measure(lambda: _png_size(curves))}
