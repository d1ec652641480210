"""HW1 probes: measurements of the student's answers, networks and results files,
made inside the sandbox and returned as plain data. They decide nothing: checks.py
judges what they return, in the grader, against values it computes itself.

Networks are measured with checklib's library: the structure read without the
student's methods, outputs on the grader's seeded inputs, and the forward pass
with the grader's seeded weights in the network's own layers, the order in which
forward calls its layers, and the output once every convolution but the first is
silenced.
"""
from __future__ import annotations

from checklib.forward import call_order, module_parts, own_seeded, silenced
from checklib.probes import ProbeError, each, lookup, measure, need, read_json


# --- Q1 (a), (b): the answers, and output_volumes --------------------------------------

def _volume(value):
    """A student's (height, width, channels) as three numbers, or its text when it is not one."""
    if isinstance(value, (tuple, list)) and len(value) == 3:
        try:
            return [float(v) for v in value]
        except (TypeError, ValueError):
            pass
    return repr(value)[:80]


def _volumes(found, what: str) -> dict:
    if not isinstance(found, dict):
        raise ProbeError(f"{what} is a {type(found).__name__}; expected a dict from layer names to (height, width, channels)")
    return {str(name): _volume(value) for name, value in list(found.items())[:50]}


def answers(ns, names):
    """The answer dicts (e.g. q1a, q1b), each measured on its own."""
    return {name: measure(lambda: _volumes(lookup(ns, name, "answer dict"), f"`{name}`")) for name in names}


def volumes(ns, settings):
    """output_volumes(input, layers) for each setting {"input": (H, W, C), "layers": {name: spec}}."""
    output_volumes = lookup(ns, "output_volumes", "function")

    def call(setting, _):
        layers = {name: tuple(spec) for name, spec in setting["layers"].items()}
        return _volumes(output_volumes(tuple(setting["input"]), layers), "output_volumes(...)")
    return each(settings, volumes=call)


# --- networks -----------------------------------------------------------------------------

def networks(ns, settings, parts, seed):
    """Each setting {"model": class name, "args": {...}, "input": shape, ...} measured
    in each part, every part on a freshly built network (one crash spoils no other):
    the library's "structure" and "forward", and "seeded" (in the network's own
    layers), "trace" and "silenced" (which reads the trace), also from checklib.forward."""
    build = lambda s: lookup(ns, s["model"])(**s["args"])  # noqa: E731
    own = {"seeded": lambda s, _: own_seeded(build(s), s["kinds"], seed, s["input"]),
           "trace": lambda s, _: call_order(build(s), s["input"], seed),
           "silenced": lambda s, earlier: silenced(build(s), need(earlier, "trace"), s["input"], seed)}
    standard = module_parts(build, seed, [p for p in parts if p not in own])
    return each(settings, **{p: standard[p] if p in standard else own[p] for p in parts})


# --- results files ------------------------------------------------------------------------

def results_file(ns, path):
    """A results file written by KFoldCrossValidation, as plain JSON data."""
    return measure(lambda: read_json(path))
