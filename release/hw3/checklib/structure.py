"""The structure report of a module, measured inside the sandbox WITHOUT calling
forward, and read with torch's own machinery, never the student's.

A student's class may override `named_modules`, `parameters`, `state_dict`,
`__getattr__` or `train`, so nothing here calls a method on the student's
module: submodules, parameters and buffers come from the instance dictionaries
that `nn.Module.__setattr__` fills (`_modules`, `_parameters`, `_buffers`),
read with `object.__getattribute__`. What such a report says is still only what
the object holds; checks that can be decided by behaviour (outputs with
grader-chosen weights, gradients after a backward pass) should be, and points
resting on the report alone stay small.

    walk(m)          [(name, module)] depth-first, as named_modules would list them
    kind(m)          the torch.nn class the module is or derives from ("Conv2d", ...)
    report(m)        one plain row per module: name, type, kind, own parameter
                     shapes, and the settings graders look at (kernel, stride, ...)
    parameters(m)    [(qualified name, parameter)], registration order
    inventory(m)     what a module holds, to compare before and after a forward
    without_gradient(m)  parameters that received no gradient (after a backward)
    set_training(m, mode)  train()/eval() without calling the student's train()
"""
from __future__ import annotations

MAX_MODULES = 10_000  # a report larger than this is refused (a student's runaway tree)

# Settings read per kind of module (instance attributes torch's own layers use in forward).
SETTINGS = {
    "Conv": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups"),
    "Linear": ("in_features", "out_features"),
    "BatchNorm": ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    "Pool": ("kernel_size", "stride", "padding", "output_size"),
}


def _dict(obj) -> dict:
    return object.__getattribute__(obj, "__dict__")


def _slot(module, name: str) -> dict:
    value = _dict(module).get(name)
    return value if isinstance(value, dict) else {}


def walk(module) -> list[tuple[str, object]]:
    """Every submodule, depth-first in registration order, each once (as the base
    nn.Module.named_modules lists them), read from the instance dictionaries."""
    from checklib.probes import ProbeError

    found, seen, stack = [], set(), [("", module)]
    while stack:
        name, m = stack.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        found.append((name, m))
        if len(found) > MAX_MODULES:
            raise ProbeError(f"the model holds more than {MAX_MODULES} modules")
        children = [(f"{name}.{k}" if name else k, c) for k, c in _slot(m, "_modules").items() if c is not None]
        stack.extend(reversed(children))
    return found


def kind(module) -> str:
    """The torch.nn class `module` is or derives from ('Conv2d', 'ReLU', ...), or
    'Module' for a class of the student's own that derives from nn.Module only."""
    for cls in type(module).__mro__:
        if cls.__module__.startswith("torch.nn.") and cls.__name__ not in ("Module", "_ConvNd", "_BatchNorm", "_NormBase"):
            return cls.__name__
    return "Module"


def _plain(value):
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def report(module) -> list[dict]:
    """One plain row per module: {name, type, kind, torch (a torch class itself),
    params {name: shape}, buffers {name: shape}, and its settings by kind}."""
    rows = []
    for name, m in walk(module):
        k = kind(m)
        row = {"name": name, "type": type(m).__name__, "kind": k,
               "torch": type(m).__module__.startswith("torch.nn."),
               "params": {p: list(v.shape) for p, v in _slot(m, "_parameters").items() if v is not None},
               "buffers": {b: list(v.shape) for b, v in _slot(m, "_buffers").items() if hasattr(v, "shape")}}
        for family, keys in SETTINGS.items():
            if family in k:
                attrs = _dict(m)
                row.update({key: _plain(attrs[key]) for key in keys if key in attrs})
        rows.append(row)
    return rows


def parameters(module) -> list[tuple[str, object]]:
    """[(qualified name, parameter)] of the whole tree, registration order, each once."""
    found, seen = [], set()
    for name, m in walk(module):
        for p, value in _slot(m, "_parameters").items():
            if value is not None and id(value) not in seen:
                seen.add(id(value))
                found.append((f"{name}.{p}" if name else p, value))
    return found


def inventory(module) -> list[str]:
    """What the module holds, as comparable text: each module with its kind, each
    parameter with its shape. Equal before and after a forward when forward
    creates nothing."""
    rows = report(module)
    return [f"{r['name'] or '(top)'}: {r['kind']}" for r in rows] + [
        f"{r['name']}.{p} {tuple(shape)}".lstrip(".") for r in rows for p, shape in r["params"].items()]


def without_gradient(module) -> list[str]:
    """Names of the parameters whose .grad is still None (call after a backward pass)."""
    import torch

    return [name for name, p in parameters(module) if torch.Tensor.__getattribute__(p, "grad") is None]


def set_training(module, mode: bool) -> None:
    """train(mode) for the whole tree without calling the student's train()."""
    for _, m in walk(module):
        _dict(m)["training"] = bool(mode)
