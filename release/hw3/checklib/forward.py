"""Forward probes with grader-chosen inputs AND weights.

The grader never believes a weight or a tensor the student's process reports.
It sends a seed and a specification: the roles of the layers a correct module
holds, in order (`Role("conv1", "Conv2d", [8, 4, 3, 3])`, ...). Inside the
sandbox, `seeded_forward` builds nothing itself: it takes the student's module,
finds for every role a module of that torch kind and weight shape (read with
`checklib.structure`, not the student's methods), loads the values that
`role_values(roles, seed)` draws, and runs forward on `seeded_input(shape, seed)`.
In the grader the SAME two functions regenerate the weights and the input, and
the homework's reference (written with `Weights`) computes what the output must
be. A process that lies about its modules can only pass by computing the
specified function.

Roles of the same kind and shape (conv1 and a projection shortcut, say) can be
matched in several ways; every matching (up to MAX_MATCHINGS, registration
order first) is tried and reported, and the grader accepts any one that gives
the expected output.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

MAX_MATCHINGS = 32


@dataclass(frozen=True)
class Role:
    """A layer the specification requires: its name in messages, its torch kind
    (Conv2d, Linear, BatchNorm2d, ...) and the shape of its weight (for a batch
    norm: [num_features])."""
    name: str
    kind: str
    shape: tuple

    def as_data(self) -> list:
        return [self.name, self.kind, list(self.shape)]

    @classmethod
    def of(cls, data) -> "Role":
        if isinstance(data, Role):
            return data
        name, kind, shape = data
        return cls(name, kind, tuple(shape))


def roles_data(roles) -> list:
    """Roles as plain data for a probe's arguments."""
    return [Role.of(r).as_data() for r in roles]


def _generator(seed: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 1009 + index)


def role_values(roles, seed: int) -> dict[str, dict[str, torch.Tensor]]:
    """The weights a role gets, drawn from `seed` alone (the same in the sandbox and
    the grader). Batch norms get non-default statistics, so skipping one, or using
    batch statistics in eval mode, changes the output."""
    values = {}
    for i, role in enumerate(map(Role.of, roles)):
        g = _generator(seed, i)
        if "BatchNorm" in role.kind:
            (n,) = role.shape
            values[role.name] = {"weight": torch.rand(n, generator=g) + 0.5, "bias": torch.rand(n, generator=g) - 0.5,
                                 "running_mean": torch.randn(n, generator=g) * 0.2,
                                 "running_var": torch.rand(n, generator=g) + 0.5}
        else:
            fan_in = max(1, int(torch.tensor(role.shape[1:]).prod())) if len(role.shape) > 1 else 1
            scale = (2.0 / fan_in) ** 0.5
            values[role.name] = {"weight": torch.randn(*role.shape, generator=g) * scale,
                                 "bias": (torch.rand(role.shape[0], generator=g) - 0.5) * 0.2}
    return values


def seeded_input(shape, seed: int) -> torch.Tensor:
    """The grader's input of `shape`, standard normal, drawn from `seed` alone."""
    return torch.randn(*shape, generator=_generator(seed, 10_007))


# --- in the sandbox --------------------------------------------------------------------

def _weight_shape(module, kind: str):
    from checklib.structure import _slot

    if "BatchNorm" in kind:
        value = _slot(module, "_buffers").get("running_mean")
        if value is None:
            value = _slot(module, "_parameters").get("weight")
    else:
        value = _slot(module, "_parameters").get("weight")
    return tuple(value.shape) if value is not None else None


def matchings(module, roles) -> list[dict[str, tuple[str, object]]]:
    """The ways to give every role one of the module's submodules of its kind and
    weight shape: [{role: (module name, module)}], registration order first.
    Raises a ProbeError naming the role that has no candidate."""
    from checklib.probes import ProbeError
    from checklib.structure import kind, walk

    roles = [Role.of(r) for r in roles]
    modules = walk(module)
    groups: dict[tuple, list[Role]] = {}
    for role in roles:
        groups.setdefault((role.kind, role.shape), []).append(role)
    choices = []
    for (k, shape), members in groups.items():
        candidates = [(n, m) for n, m in modules if kind(m) == k and _weight_shape(m, k) == shape]
        if len(candidates) < len(members):
            found = [f"{n or '(top)'} {kind(m)} {_weight_shape(m, kind(m))}" for n, m in modules
                     if _weight_shape(m, kind(m)) is not None]
            raise ProbeError(f"the specification needs {len(members)} {k} layer(s) with weight shape {shape} "
                             f"({', '.join(r.name for r in members)}); the module holds {len(candidates)} "
                             f"(its layers with weights: {', '.join(found[:12]) or 'none'})")
        choices.append([dict(zip((r.name for r in members), pick))
                        for pick in itertools.islice(itertools.permutations(candidates, len(members)), MAX_MATCHINGS)])
    return [dict(kv for part in combo for kv in part.items())
            for combo in itertools.islice(itertools.product(*choices), MAX_MATCHINGS)]


def load(matching: dict, values: dict) -> dict[str, bool]:
    """Copy the role values into the matched modules' own tensors; returns, per role,
    whether its module has a bias (the grader's reference then uses it too)."""
    from checklib.structure import _slot

    has_bias = {}
    with torch.no_grad():
        for role, (_, m) in matching.items():
            params, buffers = _slot(m, "_parameters"), _slot(m, "_buffers")
            for key, value in values[role].items():
                target = params.get(key) if params.get(key) is not None else buffers.get(key)
                if target is not None and tuple(target.shape) == tuple(value.shape):
                    torch.Tensor.copy_(target, value)
            has_bias[role] = params.get("bias") is not None
    return has_bias


def as_tensor(out, what: str = "forward") -> torch.Tensor:
    """`out` read as a plain tensor, or a ProbeError saying what came back instead."""
    from checklib.probes import ProbeError

    if not isinstance(out, torch.Tensor):
        raise ProbeError(f"{what} returned a {type(out).__name__}; expected a tensor")
    return torch.Tensor.as_subclass(out, torch.Tensor).detach().clone()


def seeded_forward(module, roles, seed: int, input_shape, modes=("train", "eval"), capture: str | None = None) -> dict:
    """For each matching of roles to the module's layers: the seeded weights loaded,
    the output on the seeded input in each mode (weights reloaded before each, as
    training mode updates batch statistics), and the matched layers' settings.

    Returns {"runs": [{"names", "bias", "layers", "out": {mode: tensor}}], "extra": [...]}
    or {"unmatched": why} when the module lacks a specified layer even after one
    forward (a layer created in forward is matched then, and judged by the check
    for modules created in forward). "extra" lists layers of the roles' kinds
    that no role took (a structure check's concern). With `capture` (a class name),
    each run also holds "captured": {mode: the input of the first such submodule},
    to judge the layers before it."""
    from checklib.probes import ProbeError
    from checklib.structure import report, set_training

    values, x = role_values(roles, seed), seeded_input(input_shape, seed)
    try:
        found = matchings(module, roles)
    except ProbeError as missing:
        try:  # one forward, for a layer created lazily in it
            set_training(module, False)
            with torch.no_grad():
                module(x.clone())
            found = matchings(module, roles)
        except Exception:
            return {"unmatched": str(missing)}
    rows = {r["name"]: r for r in report(module)}
    taken = {name for name, _ in found[0].values()}
    extra = [f"{n} {r['kind']}" for n, r in rows.items() if n not in taken and (r["params"] or r["buffers"])]
    runs, captured, target = [], {}, None
    if capture:
        from torch import nn

        from checklib.structure import walk
        target = next((m for _, m in walk(module) if type(m).__name__ == capture), None)
        if target is None:
            return {"unmatched": f"the module holds no {capture}"}
    for matching in found:
        outs = {}
        captured.clear()
        for mode in modes:
            has_bias = load(matching, values)
            set_training(module, mode == "train")
            handle = None
            if target is not None:
                handle = nn.Module.register_forward_pre_hook(
                    target, lambda mod, args, _mode=mode: captured.__setitem__(_mode, as_tensor(args[0], "the input")))
            try:
                with torch.no_grad():
                    outs[mode] = as_tensor(module(x.clone()))
            finally:
                if handle is not None:
                    handle.remove()
        runs.append({"names": {r: n for r, (n, _) in matching.items()}, "bias": has_bias,
                     "layers": {r: {k: v for k, v in rows[n].items() if k in ("stride", "padding", "eps")}
                                for r, (n, _) in matching.items()}, "out": outs,
                     **({"captured": dict(captured)} if target is not None else {})})
    return {"runs": runs, "extra": extra}


# --- in the grader: the reference, computed with the same weights -----------------------

class Weights:
    """The seeded role values, for a homework's reference function in the grader.
    `run` (one of seeded_forward's runs) says which roles' modules have a bias and
    the stride and padding of each matched layer: a reference computed with them
    judges how the layers are composed, and the structure checks judge their
    settings, so a wrong stride is charged once."""

    def __init__(self, roles, seed: int, run: dict | None = None):
        run = run or {}
        self.values, self.bias, self.layers = role_values(roles, seed), run.get("bias", {}), run.get("layers", {})

    def _bias(self, role):
        return self.values[role]["bias"] if self.bias.get(role, False) else None

    def conv(self, x, role, stride=None, padding=None):
        layer = self.layers.get(role, {})
        stride = stride if stride is not None else layer.get("stride", 1)
        padding = padding if padding is not None else layer.get("padding", 0)
        return F.conv2d(x, self.values[role]["weight"], self._bias(role), stride=stride, padding=padding)

    def linear(self, x, role):
        return F.linear(x, self.values[role]["weight"], self._bias(role))

    def bn(self, x, role, training: bool, eps: float | None = None):
        eps = eps if eps is not None else self.layers.get(role, {}).get("eps", 1e-5)
        v, affine = self.values[role], self.bias.get(role, True)  # a batch norm's "bias" is its affine flag
        return F.batch_norm(x, v["running_mean"].clone(), v["running_var"].clone(), v["weight"] if affine else None,
                            v["bias"] if affine else None, training=training, eps=eps)


# --- the standard measurements of a module, one part each (see checklib.probes.each) ------

def eval_forward(module, input_shape, seed: int) -> torch.Tensor:
    """The output in evaluation mode, without gradients, on the seeded input."""
    from checklib.structure import set_training

    set_training(module, False)
    with torch.no_grad():
        return as_tensor(module(seeded_input(input_shape, seed)))


def training_step(module, input_shape, seed: int) -> dict:
    """One forward in training mode and a backward of the output's sum: what the
    module held before and after forward, and the parameters left without gradient."""
    from checklib.structure import inventory, set_training, without_gradient

    before = inventory(module)
    set_training(module, True)
    out = module(seeded_input(input_shape, seed))
    after = inventory(module)
    if not isinstance(out, torch.Tensor):
        from checklib.probes import ProbeError
        raise ProbeError(f"forward returned a {type(out).__name__}; expected a tensor")
    torch.Tensor.backward(torch.Tensor.as_subclass(out, torch.Tensor).float().sum())
    from checklib.structure import walk
    return {"before": before, "after": after, "without_gradient": without_gradient(module),
            "types": {name: type(m).__name__ for name, m in walk(module)}}


def probe_modules(ns, name: str, settings: list, seed: int = 0, parts=("structure", "forward", "step", "seeded")):
    """A generic probe: the student's class `name` built as name(**s["kwargs"]) for
    each setting, measured part by part (see module_parts). Import it into a
    homework's probes.py to make it callable by name."""
    from checklib.probes import each, lookup

    cls = lookup(ns, name)
    return each(settings, **module_parts(lambda s: cls(**s["kwargs"]), seed, parts))


def module_parts(build, seed: int = 0, parts=("structure", "forward", "step", "seeded")) -> dict:
    """Part functions for `checklib.probes.each`, each on a freshly built module, so
    that one crashing part spoils no other. `build(setting)` makes the student's
    module; a setting is a dict that may hold "input" (the input shape) and
    "roles" (forward.roles_data(...), for the seeded part):

        structure  structure.report(module): no forward at all
        forward    eval_forward: the output on the seeded input
        step       training_step: inventories before/after forward, parameters without gradient
        seeded     seeded_forward: outputs with the seeded weights, train and eval mode
    """
    from checklib.structure import report

    table = {
        "structure": lambda s, _: report(build(s)),
        "forward": lambda s, _: eval_forward(build(s), s["input"], seed),
        "step": lambda s, _: training_step(build(s), s["input"], seed),
        "seeded": lambda s, _: seeded_forward(build(s), s["roles"], seed, s["input"], capture=s.get("capture")),
    }
    return {name: table[name] for name in parts}


# --- a module's own layers, the order forward calls them, and forward with blocks silenced -----

WEIGHTED = ("Conv2d", "Linear", "BatchNorm2d")  # the kinds of layer whose weights the grader chooses


def own_roles(module, kinds) -> list[Role]:
    """Roles for the module's own weighted layers, in registration order, when their
    kinds are `kinds`: the grader then judges forward with its own weights in them,
    whatever their sizes (the sizes are another check's). Raises a ProbeError otherwise."""
    from checklib.probes import ProbeError
    from checklib.structure import _slot, kind, walk

    layers = [(name, m) for name, m in walk(module) if kind(m) in WEIGHTED]
    found = [kind(m) for _, m in layers]
    if found != list(kinds):
        raise ProbeError(f"the layers with weights are {', '.join(found) or 'none'} (in the order they are created); "
                         f"expected {', '.join(kinds)}")
    return [Role(name or "(top)", kind(m), tuple(_slot(m, "_parameters")["weight"].shape)) for name, m in layers]


def own_seeded(module, kinds, seed: int, input_shape) -> dict:
    """forward in evaluation mode with the grader's seeded weights in the module's own
    layers (`own_roles`): {"roles": roles_data, "runs": [{"bias", "out"}]}."""
    from checklib.probes import ProbeError

    roles = own_roles(module, kinds)
    runs = seeded_forward(module, roles, seed, input_shape, modes=("eval",))
    if "unmatched" in runs:
        raise ProbeError(runs["unmatched"])
    return {"roles": roles_data(roles), "runs": [{"bias": r["bias"], "out": r["out"]} for r in runs["runs"]]}


def call_order(module, input_shape, seed: int, limit: int = 10_000) -> list[dict]:
    """The leaf layers forward calls, in order, on the seeded input in evaluation mode:
    [{"name", "kind", "channels"}] (out_channels of a convolution, num_features of a batch
    norm), recorded by hooks set with nn.Module's own register_forward_hook (called unbound)."""
    from checklib.probes import ProbeError
    from checklib.structure import kind

    calls = []

    def hook(mod, args, out, name):
        attrs = object.__getattribute__(mod, "__dict__")
        calls.append({"name": name, "kind": kind(mod), "channels": attrs.get("out_channels", attrs.get("num_features"))})

    _run_with_leaf_hooks(module, hook, input_shape, seed)
    if len(calls) > limit:
        raise ProbeError(f"forward called more than {limit:,} layers")
    return calls


def silenced(module, calls, input_shape, seed: int) -> dict:
    """The outputs on two different seeded inputs once every convolution but the first
    one called (and the batch norm right after it) has zero weights and biases, in
    evaluation mode; `calls` is `call_order`'s record. A network whose blocks are
    bypassed by skip connections still depends on its input; one without them does not."""
    from checklib.probes import ProbeError
    from checklib.structure import _slot, kind, set_training, walk

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


# --- the weighted layers forward calls, what feeds each, batch-norm momentum, and seeded weights by call order ---

def _same(a, b) -> bool:
    """Equal shape and values (read as plain tensors, never through a student's subclass)."""
    a, b = torch.Tensor.as_subclass(a, torch.Tensor), torch.Tensor.as_subclass(b, torch.Tensor)
    return tuple(a.shape) == tuple(b.shape) and bool((a.double() - b.double()).abs().max() <= 1e-6) if a.numel() else False


def layer_calls(module, input_shape, seed: int, limit: int = 2_000) -> list[dict]:
    """Every call forward makes to a leaf layer, in order, on the seeded input in
    evaluation mode: {"name", "kind", "shape" (weight shape or None), "stride",
    "kernel_size", "in_size" / "out_size" (the spatial size of the input and output
    tensors), "fed_by", "relu"}. `fed_by` names the latest earlier call whose output
    IS this call's input, or whose output through a ReLU is ("relu": True), or None:
    what feeds each layer, measured on the tensors themselves (a pre-activation block
    feeds each convolution from a batch norm's ReLU). Hooks are set with nn.Module's
    own register_forward_hook, called unbound, as `call_order` does."""
    from checklib.probes import ProbeError
    from checklib.structure import _slot, kind

    calls, outputs = [], []

    def hook(mod, args, out, _name):
            if len(calls) >= limit:
                raise ProbeError(f"forward called more than {limit:,} layers")
            attrs = object.__getattribute__(mod, "__dict__")
            x = args[0] if args and isinstance(args[0], torch.Tensor) else None
            y = out if isinstance(out, torch.Tensor) else None
            fed_by, relu = None, False
            if x is not None:
                for earlier, value in reversed(outputs):
                    if _same(value, x):
                        fed_by = earlier
                        break
                    if _same(value.clamp(min=0), x):
                        fed_by, relu = earlier, True
                        break
            weight = _slot(mod, "_parameters").get("weight")
            plain = lambda v: list(v) if isinstance(v, (tuple, list)) else v  # noqa: E731
            calls.append({"name": _name, "kind": kind(mod), "shape": list(weight.shape) if weight is not None else None,
                          "stride": plain(attrs.get("stride")), "kernel_size": plain(attrs.get("kernel_size")),
                          "in_size": list(x.shape[2:]) if x is not None else None,
                          "out_size": list(y.shape[2:]) if y is not None else None, "fed_by": fed_by, "relu": relu})
            if y is not None:
                outputs.append((_name, torch.Tensor.as_subclass(y, torch.Tensor).detach().clone()))

    _run_with_leaf_hooks(module, hook, input_shape, seed)
    return calls


def _run_with_leaf_hooks(module, hook, input_shape, seed: int) -> None:
    """Run forward once on the seeded input in evaluation mode with `hook(mod, args, out,
    name)` on every leaf layer, set with nn.Module's own register_forward_hook (called
    unbound, so a student's override cannot hide a layer), and removed afterwards."""
    from torch import nn

    from checklib.structure import _slot, set_training, walk

    handles = [nn.Module.register_forward_hook(m, lambda mod, args, out, _name=name: hook(mod, args, out, _name))
               for name, m in walk(module) if not _slot(m, "_modules")]
    set_training(module, False)
    try:
        with torch.no_grad():
            module(seeded_input(input_shape, seed))
    finally:
        for h in handles:
            h.remove()


def batchnorm_momentum(module, input_shape, seed: int) -> list[dict]:
    """The momentum each batch norm actually uses, measured: running means set to 0,
    one training-mode forward on the seeded input, then running_mean / batch mean
    (PyTorch's momentum is the weight of the NEW batch statistic). [{"name", "momentum"}]
    in the order forward calls them; momentum None when the layer keeps no running mean."""
    from torch import nn

    from checklib.structure import _slot, kind, set_training, walk

    norms = [(name, m) for name, m in walk(module) if "BatchNorm" in kind(m)]
    seen, handles = {}, []
    with torch.no_grad():
        for name, m in norms:
            mean = _slot(m, "_buffers").get("running_mean")
            if mean is not None:
                torch.Tensor.zero_(mean)

            def pre(mod, args, _name=name):
                if _name not in seen and args and isinstance(args[0], torch.Tensor):
                    x = torch.Tensor.as_subclass(args[0], torch.Tensor).detach()
                    seen[_name] = x.double().mean(dim=[d for d in range(x.dim()) if d != 1]).clone()
            handles.append(nn.Module.register_forward_pre_hook(m, pre))
    set_training(module, True)
    try:
        with torch.no_grad():
            module(seeded_input(input_shape, seed))
    finally:
        for h in handles:
            h.remove()
    found = []
    for name, m in norms:
        if name not in seen:
            continue
        mean = _slot(m, "_buffers").get("running_mean")
        batch = seen[name]
        usable = batch.abs() > 1e-3
        if mean is None or not bool(usable.any()):
            found.append({"name": name, "momentum": None})
            continue
        ratio = (mean.double()[usable] / batch[usable])
        found.append({"name": name, "momentum": float(ratio.median())})
    order = {n: i for i, n in enumerate(seen)}
    return sorted(found, key=lambda r: order[r["name"]])


def seeded_by_calls(module, roles, orders, seed: int, input_shape, modes=("train", "eval")) -> dict:
    """Forward with the grader's seeded weights, mapped by STRUCTURE in the order
    forward calls the layers, not by the student's names or registration order.
    `roles` are the reference's weighted layers (their values are `role_values(roles,
    seed)`); each entry of `orders` lists the role names in an order the reference
    may call them (e.g. a projection shortcut before or after its block's main path).
    The k-th layer forward calls of a given kind and weight shape gets the k-th role
    of that kind and shape in the order. Returns {"runs": [{"order", "names", "bias",
    "layers", "out": {mode: tensor}}]} for every order that maps, or {"unmatched": why}
    naming the first kind and shape whose counts differ, or the layer called twice."""
    from checklib.structure import report, set_training, walk

    roles = {r.name: r for r in map(Role.of, roles)}
    values, x = role_values(list(roles.values()), seed), seeded_input(input_shape, seed)
    modules = dict(walk(module))
    calls = [c for c in layer_calls(module, input_shape, seed) if c["kind"] in WEIGHTED]
    names = [c["name"] for c in calls]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        return {"unmatched": f"forward calls {', '.join(f'`{n}`' for n in twice[:4])} more than once, so one layer "
                             "would need two sets of weights (each layer of the specification is its own module)"}
    called = [(c["name"], c["kind"], tuple(_weight_shape(modules[c["name"]], c["kind"]) or ())) for c in calls]
    rows = {r["name"]: r for r in report(module)}
    runs, why = [], None
    for index, order in enumerate(orders):
        groups: dict[tuple, list[str]] = {}
        for role in order:
            groups.setdefault((roles[role].kind, tuple(roles[role].shape)), []).append(role)
        found: dict[tuple, list[str]] = {}
        for name, k, shape in called:
            found.setdefault((k, shape), []).append(name)
        wrong = next((key for key in list(groups) + list(found) if len(groups.get(key, [])) != len(found.get(key, []))), None)
        if wrong is not None:
            why = why or (f"the reference calls {len(groups.get(wrong, []))} {wrong[0]} layer(s) with weight shape "
                          f"{tuple(wrong[1])}; forward calls {len(found.get(wrong, []))}")
            continue
        matching = {role: (name, modules[name]) for key, members in groups.items() for role, name in zip(members, found[key])}
        outs = {}
        for mode in modes:
            has_bias = load(matching, values)
            set_training(module, mode == "train")
            with torch.no_grad():
                outs[mode] = as_tensor(module(x.clone()))
        runs.append({"order": index, "names": {r: n for r, (n, _) in matching.items()}, "bias": has_bias,
                     "layers": {r: {k: v for k, v in rows[n].items() if k in ("stride", "padding", "eps")}
                                for r, (n, _) in matching.items()}, "out": outs})
    return {"runs": runs} if runs else {"unmatched": why}
