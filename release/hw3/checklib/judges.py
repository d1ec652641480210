"""Judge factories: how the grader turns a probe's measurements into a Verdict.

Everything here runs in the grader, on plain data decoded from the sandbox. A
probe built with `checklib.probes.each` returns, per setting, one record per
part ({"value"} or {"error"}); each judge reads only the part(s) in its own
scope, so a crash in forward does not fail a check that judges the structure.

Every factory takes `what` (the check's name in messages) and `describe`
(setting -> text for the student), and an `errors` policy:

    "fail"  a setting whose part raised fails the check (the check's own cause)
    "skip"  such a setting is left to the check whose cause it is; the check
            judges the others, and fails only when none could be measured

Messages name the object, what was expected and what was found.
"""
from __future__ import annotations

import ast
import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import torch

from .checks import Verdict, failed, outcomes, passed

ACTIVATIONS = {"ReLU", "ReLU6", "GELU", "Tanh", "Sigmoid", "SiLU", "ELU", "SELU", "CELU", "LeakyReLU", "PReLU",
               "Mish", "Hardswish", "Hardtanh", "Softplus", "Softmax", "LogSoftmax", "Softmax2d"}
POOLINGS = {"MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "LPPool2d"}
RESHAPING = {"Flatten", "Unflatten", "Identity"}  # no parameters, no arithmetic
SKIP = "skip: judged by another check"  # a test's answer for a setting outside its scope


def each_setting(part, test: Callable[[Any, Any], str | None], what: str, describe: Callable = repr,
                 errors: str = "fail") -> Callable[[list], Verdict]:
    """Pass when `test(value, setting)` finds nothing wrong (returns None) for every
    setting; else fail on the first problem it states, naming the setting."""
    if errors not in ("fail", "skip"):
        raise ValueError(f"errors must be 'fail' or 'skip', not {errors!r}")

    def judge(rows: list) -> Verdict:
        found = outcomes(rows, part)
        judged = [o for o in found if o.ok]
        broken = [o for o in found if not o.ok]
        if broken and (errors == "fail" or not judged):
            first = broken[0]
            lead = "" if errors == "fail" else "could not be measured for any setting; "
            return failed(f"{what}: {lead}with {describe(first.setting)}, it raised an error:\n{first.error}")
        counted = 0
        for o in judged:
            problem = test(o.value, o.setting)
            if problem == SKIP:
                continue
            if problem:
                return failed(f"{what}: with {describe(o.setting)}, {problem}")
            counted += 1
        if not counted:
            return failed(f"{what}: could not be checked for any setting, because the structure the check needs "
                          "was not there (see the other checks).")
        left = len(found) - counted
        note = f"; {left} other setting(s) are judged by the checks they concern" if left else ""
        return passed(f"{what}: correct for all {counted} settings judged{note}.")
    return judge


# --- structure (from checklib.structure.report rows) ---------------------------------------

def leaves(rows: list[dict], under: str = "", ignore=RESHAPING) -> list[dict]:
    """The leaf modules (no children) under the module named `under`, in order,
    leaving out the kinds in `ignore`."""
    names = [r["name"] for r in rows]
    inside = [r for r in rows if (not under or r["name"].startswith(under + ".")) and r["name"] and r["kind"] not in ignore]
    return [r for r in inside if not any(n.startswith(r["name"] + ".") for n in names)]


def layer(row: dict) -> tuple:
    """A layer as comparable data: ('Conv2d', in, out), ('Linear', in, out) or (kind,)."""
    if "Conv" in row["kind"]:
        return (row["kind"], row.get("in_channels"), row.get("out_channels"))
    if row["kind"] == "Linear":
        return ("Linear", row.get("in_features"), row.get("out_features"))
    return (row["kind"],)


def feature_size(rows: list[dict], in_size) -> int:
    """C x H x W of what the layers `rows` (report rows, in order) make of one input of
    shape (C, H, W): convolutions and poolings resize by their kernel, stride and
    padding; a convolution sets C. Judge a later layer against the student's OWN
    earlier layers with it, so that one mistake is charged once."""
    def pair(v, default):
        v = default if v is None else v
        return list(v) if isinstance(v, (list, tuple)) else [v, v]
    c, h, w = in_size
    for r in rows:
        k = r["kind"]
        if "Adaptive" in k:
            h, w = pair(r.get("output_size"), 1)
        elif "Conv" in k or "Pool" in k:
            kernel = pair(r.get("kernel_size"), 1)
            stride, padding = pair(r.get("stride"), kernel), r.get("padding", 0)
            if padding != "same":
                padding = pair(padding, 0)
                h, w = ((size + 2 * p - kk) // st + 1 for size, p, kk, st in zip((h, w), padding, kernel, stride))
            c = r.get("out_channels", c) if "Conv" in k else c
    return c * h * w


def show_layers(layers, limit: int = 14) -> str:
    def one(lay):
        return f"{lay[0]}({lay[1]}, {lay[2]})" if len(lay) == 3 else lay[0]
    text = " -> ".join(one(lay) for lay in list(layers)[:limit])
    return (text + (" -> ..." if len(layers) > limit else "")) if layers else "nothing"


def outside(names, types: dict, inside: str | None) -> list[str]:
    """`names` (of modules or parameters) not within a module whose class is `inside`
    (e.g. a network's own level, when other checks judge what lies inside each such part)."""
    if not inside:
        return list(names)
    owners = [n for n, t in types.items() if t == inside]
    return [x for x in names if not any(x == o or x.startswith(o + ".") for o in owners)]


def no_stored_modules(kinds=ACTIVATIONS | POOLINGS, what: str = "Stored modules", describe: Callable = repr,
                      part: str = "structure", advice: str = "call them in forward (e.g. F.relu) instead",
                      errors: str = "skip", inside: str | None = None):
    """No module of the given kinds is held (activations and pooling belong in forward),
    leaving out what lies within modules of class `inside`."""
    def test(rows, setting):
        names = outside([r["name"] for r in rows if r["kind"] in kinds], {r["name"]: r["type"] for r in rows}, inside)
        bad = sorted({f"{r['kind']} (`{r['name']}`)" for r in rows if r["name"] in names})
        return f"the module stores {', '.join(bad)} as module(s); {advice}." if bad else None
    return each_setting(part, test, what, describe, errors)


def all_parameters_used(what: str = "Unused modules", describe: Callable = repr, part: str = "step",
                        errors: str = "skip", inside: str | None = None):
    """Every parameter received a gradient after a backward pass on grader inputs
    (the part's value: forward.training_step's, whose "without_gradient" lists those that did not)."""
    def test(value, setting):
        missing = outside(value["without_gradient"], value["types"], inside)
        if missing:
            return (f"the parameter(s) {', '.join(missing[:8])} received no gradient after a backward pass: their "
                    "module is never used in forward (remove it, or use it).")
        return None
    return each_setting(part, test, what, describe, errors)


def no_modules_created_in_forward(what: str = "Modules created in forward", describe: Callable = repr,
                                  part: str = "step", errors: str = "skip", inside: str | None = None):
    """The inventory (structure.inventory) is the same before and after a forward
    (the part's value: forward.training_step's "before" and "after")."""
    def test(value, setting):
        new = [x for x in value["after"] if x not in value["before"]]
        new = [x for x in new if outside([x.split(":")[0].split(" ")[0]], value["types"], inside)]
        if new:
            return (f"calling forward created {', '.join(new[:6])}; create every module in __init__ (an optimizer "
                    "built before the first forward would never train it).")
        return None
    return each_setting(part, test, what, describe, errors)


# --- outputs -------------------------------------------------------------------------------

def probability_like(out: torch.Tensor) -> str | None:
    """Why `out` (batch, classes) looks like probabilities or log-probabilities, or None."""
    out = out.double()
    ones = torch.ones(len(out), dtype=out.dtype)
    if out.min() >= 0 and out.max() <= 1 and torch.allclose(out.sum(dim=1), ones, atol=1e-4):
        return "every row is non-negative and sums to 1: that is a softmax"
    if out.max() <= 0 and torch.allclose(out.logsumexp(dim=1), 0 * ones, atol=1e-4):
        return "every row is a log-probability distribution: that is a log_softmax"
    return None


def no_softmax(what: str = "Logits", describe: Callable = repr, part: str = "forward",
               get=lambda value: value, errors: str = "skip"):
    """The output (get(value): a (batch, classes) tensor) is raw scores."""
    def test(value, setting):
        problem = probability_like(get(value))
        return f"{problem}. Return the last linear layer's output as it is: nn.CrossEntropyLoss applies the softmax itself." \
            if problem else None
    return each_setting(part, test, what, describe, errors)


def output_shape(expected: Callable[[Any], list], what: str = "Output shape", describe: Callable = repr,
                 part: str = "forward", get=lambda value: value, errors: str = "fail"):
    """get(value).shape equals expected(setting) (measured on the tensor itself)."""
    def test(value, setting):
        out, want = get(value), list(expected(setting))
        if not isinstance(out, torch.Tensor):
            return f"it returned {type(out).__name__}; expected a tensor of shape {tuple(want)}."
        return None if list(out.shape) == want else f"it returned shape {tuple(out.shape)}; expected {tuple(want)}."
    return each_setting(part, test, what, describe, errors)


def other_input_sizes(expected: Callable[[Any], list], what: str, describe: Callable = repr, base: int | None = None,
                      part: str = "forward", advice: str = ""):
    """Works on other input sizes: settings that differ only in their input's last
    dimension (s["input"][-1]) give outputs of shape expected(setting). A setting
    that fails at the `base` size too is not a matter of size (its own checks
    judge it) and is left out; fails when no setting ran at the base size."""
    def judge(rows) -> Verdict:
        groups: dict[str, dict] = {}
        for o in outcomes(rows, part):
            groups.setdefault(describe(o.setting), {})[o.setting["input"][-1]] = o
        judged = 0
        for name, by_size in groups.items():
            if base is not None and not by_size[base].ok:
                continue
            for size, o in by_size.items():
                want, shape = list(expected(o.setting)), tuple(o.setting["input"])
                if not o.ok:
                    return failed(f"{what}: with {name}, an input of shape {shape} raised an error:\n{o.error}\n{advice}".rstrip())
                if list(o.value.shape) != want:
                    return failed(f"{what}: with {name}, an input of shape {shape} gave {tuple(o.value.shape)}; expected {tuple(want)}.")
            judged += 1
        if not judged:
            return failed(f"{what}: the module did not run at the base input size for any setting.")
        sizes = sorted({s for by_size in groups.values() for s in by_size})
        return passed(f"{what}: the expected output shape for input sizes {', '.join(map(str, sizes))}.")
    return judge


def matches_seeded_reference(reference: Callable, roles: Callable[[Any], list], seed: int,
                             input_shape: Callable[[Any], list], what: str, describe: Callable = repr,
                             part: str = "seeded", tolerance: float = 1e-4, explain: str = "", errors: str = "fail",
                             extra_kinds=("Conv", "BatchNorm", "Linear")):
    """The outputs of forward.seeded_forward equal `reference(setting, weights, x, training)`,
    computed here with the same seeded weights (forward.Weights) and input, for at
    least one matching of the roles, in every mode measured. A setting whose module
    lacks a specified layer, or holds an extra one of `extra_kinds` (a layer that
    would change the function), is left to the structure checks (fails when
    every setting is left)."""
    from .forward import Weights, seeded_input

    def test(value, setting):
        if "unmatched" in value or any(k in e.split()[-1] for e in value["extra"] for k in extra_kinds):
            return SKIP  # layers missing, of other shapes, or extra: the structure checks say which
        x = seeded_input(input_shape(setting), seed)
        closest = None
        for run in value["runs"]:
            weights = Weights(roles(setting), seed, run)
            wrong = []
            for mode, out in run["out"].items():
                want = reference(setting, weights, x.clone(), mode == "train")
                if out.shape != want.shape:
                    wrong.append((mode, f"output shape {tuple(out.shape)}, expected {tuple(want.shape)}"))
                elif not torch.allclose(out.double(), want.double(), atol=tolerance, rtol=tolerance):
                    gap = float((out.double() - want.double()).abs().max())
                    wrong.append((mode, f"values differ by up to {gap:.3g}"))
            if not wrong:
                return None
            closest = closest or wrong[0]
        if closest is None:
            return "no layer of the specification could be matched."
        mode, detail = closest
        mode = {"train": "training", "eval": "evaluation"}.get(mode, mode)
        return (f"in {mode} mode, with the grader's weights in your layers, the output is not the specified one "
                f"({detail}). {explain}").rstrip()
    return each_setting(part, test, what, describe, errors)


def tensor_close(expected: Callable[[Any], torch.Tensor], what: str, describe: Callable = repr, part: str = "forward",
                 get=lambda value: value, norm: float = 1e-3, explain: str = "", errors: str = "fail"):
    """get(value) is within `norm` (Euclidean norm of the difference) of expected(setting)."""
    def test(value, setting):
        out, want = get(value).double(), expected(setting).double()
        if out.shape != want.shape:
            return f"it returned shape {tuple(out.shape)}; expected {tuple(want.shape)}."
        distance = torch.linalg.vector_norm(out - want).item()
        if distance < norm:
            return None
        shown = ", ".join(f"{v:.4f}" for v in out.flatten()[:4].tolist())
        hoped = ", ".join(f"{v:.4f}" for v in want.flatten()[:4].tolist())
        return (f"it gave [{shown}, ...]; expected [{hoped}, ...] (norm of the difference {distance:.4g}, must be "
                f"below {norm:g}). {explain}").rstrip()
    return each_setting(part, test, what, describe, errors)


# --- values read from submitted files ----------------------------------------------------------

def literal(value):
    """A cell or field as Python data: Excel keeps lists and dicts as their text."""
    if isinstance(value, str):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return value
    return value


def same(a, b, rel: float = 1e-6) -> bool:
    """Equal as data: numbers within `rel`, lists and dicts element-wise, text exactly."""
    a, b = literal(a), literal(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], rel) for k in a)
    return a == b


def number(value) -> float | None:
    """A finite number, or None (text, NaN, booleans)."""
    value = literal(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def only(select: Callable[[Any], bool], judge: Callable[[list], Verdict]) -> Callable[[list], Verdict]:
    """`judge` applied to the settings `select(setting)` accepts only (the others are other checks')."""
    return lambda rows: judge([r for r in rows if select(r["setting"])])


def keywords(setting) -> str:
    """A `describe` for settings built from keywords: "in_channels=3, expand=2"."""
    return ", ".join(f"{k}={v!r}" for k, v in setting["kwargs"].items())


@lru_cache(maxsize=None)  # read once per grader process
def saved_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Expected tensors an instructor saved with torch.save (one tensor, named "course", or
    a {setting name: tensor} dict), read with weights_only=True."""
    saved = torch.load(path, weights_only=True)
    return saved if isinstance(saved, dict) else {"course": saved}
