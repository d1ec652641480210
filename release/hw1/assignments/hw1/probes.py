"""HW1 probes: measurements of the student's answers, networks and results files,
made inside the sandbox and returned as plain data. They decide nothing: checks.py
judges what they return, in the grader, against values it computes itself.

Networks are measured with checklib's library: the structure read without the
student's methods, outputs on the grader's seeded inputs, and the forward pass
with the grader's seeded weights. Two measurements are HW1's own (and generic
enough for the library): the order in which forward calls its layers, and the
output once every convolution but the first is silenced.
"""
from __future__ import annotations

import torch
from torch import nn

from checklib.forward import Role, eval_forward, module_parts, roles_data, seeded_forward, seeded_input
from checklib.probes import ProbeError, each, lookup, measure, need, read_json
from checklib.structure import _slot, kind, set_training, walk

WEIGHTED = ("Conv2d", "Linear", "BatchNorm2d")  # the kinds of layer whose weights the grader chooses


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

def _own_roles(module, kinds):
    """Roles for the module's own weighted layers, in registration order, when their
    kinds are `kinds`: the grader then checks the computation of forward with its
    own weights in them, whatever their sizes (the sizes are another check's)."""
    layers = [(name, m) for name, m in walk(module) if kind(m) in WEIGHTED]
    found = [kind(m) for _, m in layers]
    if found != list(kinds):
        raise ProbeError(f"the layers with weights are {', '.join(found) or 'none'} (in the order they are created); "
                         f"expected {', '.join(kinds)}")
    return [Role(name or "(top)", kind(m), tuple(_slot(m, "_parameters")["weight"].shape)) for name, m in layers]


def own_seeded(module, kinds, seed, input_shape):
    """forward with the grader's seeded weights loaded into the module's own layers (evaluation mode)."""
    roles = _own_roles(module, kinds)
    runs = seeded_forward(module, roles, seed, input_shape, modes=("eval",))
    if isinstance(runs, dict):  # the library's newer form: {"runs": [...], ...} or {"unmatched": why}
        if "unmatched" in runs:
            raise ProbeError(runs["unmatched"])
        runs = runs["runs"]
    return {"roles": roles_data(roles), "runs": [{"bias": r["bias"], "out": r["out"]} for r in runs]}


def trace(module, input_shape, seed):
    """The layers forward calls, in order: [{"name", "kind", "channels"}] (out_channels of a
    convolution, num_features of a batch norm), recorded by hooks set with nn.Module's own method."""
    calls, handles = [], []
    for name, m in walk(module):
        if not _slot(m, "_modules"):
            def hook(mod, args, out, _name=name):
                attrs = object.__getattribute__(mod, "__dict__")
                calls.append({"name": _name, "kind": kind(mod),
                              "channels": attrs.get("out_channels", attrs.get("num_features"))})
            handles.append(nn.Module.register_forward_hook(m, hook))
    set_training(module, False)
    try:
        with torch.no_grad():
            module(seeded_input(input_shape, seed))
    finally:
        for h in handles:
            h.remove()
    if len(calls) > 10_000:
        raise ProbeError("forward called more than 10,000 layers")
    return calls


def silenced(module, calls, input_shape, seed):
    """The outputs on two different inputs once every convolution but the first called
    (and the batch norm right after it) has zero weights and biases, in evaluation mode.
    A network whose blocks are bypassed by skip connections still depends on its input."""
    first_conv = next((i for i, c in enumerate(calls) if c["kind"] == "Conv2d"), None)
    if first_conv is None:
        raise ProbeError("forward called no nn.Conv2d")
    keep = {calls[first_conv]["name"]}
    if first_conv + 1 < len(calls) and calls[first_conv + 1]["kind"] == "BatchNorm2d":
        keep.add(calls[first_conv + 1]["name"])
    with torch.no_grad():
        for name, m in walk(module):
            if kind(m) in ("Conv2d", "BatchNorm2d") and name not in keep:
                for p in _slot(m, "_parameters").values():
                    if p is not None:
                        torch.Tensor.zero_(p)
    set_training(module, False)
    with torch.no_grad():
        first, second = (eval_forward(module, input_shape, s) for s in (seed, seed + 1))
    return {"kept": sorted(keep), "outputs": [first, second]}


def networks(ns, settings, parts, seed):
    """Each setting {"model": class name, "args": {...}, "input": shape, ...} measured
    in each part, every part on a freshly built network (one crash spoils no other):
    the library's "structure" and "forward", and HW1's "seeded" (in the network's own
    layers), "trace" and "silenced" (which reads the trace)."""
    build = lambda s: lookup(ns, s["model"])(**s["args"])  # noqa: E731
    own = {"seeded": lambda s, _: own_seeded(build(s), s["kinds"], seed, s["input"]),
           "trace": lambda s, _: trace(build(s), s["input"], seed),
           "silenced": lambda s, earlier: silenced(build(s), need(earlier, "trace"), s["input"], seed)}
    standard = module_parts(build, seed, [p for p in parts if p not in own])
    return each(settings, **{p: standard[p] if p in standard else own[p] for p in parts})


# --- results files ------------------------------------------------------------------------

def results_file(ns, path):
    """A results file written by KFoldCrossValidation, as plain JSON data."""
    return measure(lambda: read_json(path))
