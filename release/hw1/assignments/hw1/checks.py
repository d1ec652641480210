"""HW1 checks: how the grader judges what the probes measured.

Everything here runs in the grader's own process, on plain data that came back
from the sandbox; expected values (output volumes, the forward pass with the
grader's weights, means and standard deviations) are computed here. Points and
thresholds are in rubric.yaml. Messages speak to the student.
"""
from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F

from checklib import judges
from checklib.checks import Check, Outcome, failed, outcomes, passed
from checklib.forward import role_values, seeded_input

SEED = 11
MNIST = [1, 32, 32]  # one padded MNIST image: (channels, height, width)

# --- Q1 (a), (b): the networks of the questions, and the formulas -------------------------

LAYERS_A = {"conv1": ("conv", 3, 2, 2, 0), "conv2": ("conv", 5, 3, 1, 1), "conv3": ("conv", 7, 3, 1, 1),
            "pool": ("pool", 2, 2)}
LAYERS_B = {"conv1": ("conv", 3, 2, 2, 0), "conv2": ("conv", 5, 3, 1, 0), "conv3": ("conv", 7, 3, 1, 0),
            "pool": ("pool", 2, 2)}
IMAGE = (32, 32, 1)  # (height, width, channels) of the questions' input


def expected_volumes(input_shape, layers) -> dict[str, tuple[int, int, int]]:
    """(H, W, C) after each layer: (W - K + 2P) // S + 1 for a convolution, (W - F) // S + 1 for a pooling."""
    h, w, c = input_shape
    out = {}
    for name, layer in layers.items():
        if layer[0] == "conv":
            _, filters, k, s, p = layer
            h, w, c = (h - k + 2 * p) // s + 1, (w - k + 2 * p) // s + 1, filters
        else:
            _, f, s = layer
            h, w = (h - f) // s + 1, (w - f) // s + 1
        out[name] = (h, w, c)
    return out


def _describe_layer(layer) -> str:
    if layer[0] == "conv":
        return f"{layer[1]} filters of {layer[2]}x{layer[2]}, stride {layer[3]}, padding {layer[4]}"
    return f"max-pooling of extent {layer[1]}, stride {layer[2]}"


def _shown(value) -> str:
    return f"({', '.join(f'{v:g}' for v in value)})" if isinstance(value, list) else str(value)


def _first_wrong(found: dict, input_shape, layers) -> tuple[int, str | None]:
    """How many layers are answered right, and a message about the first wrong one."""
    right, message = 0, None
    for name, want in expected_volumes(input_shape, layers).items():
        got = found.get(name)
        if got == list(want):
            right += 1
        elif message is None:
            given = "no answer" if got is None else _shown(got)
            message = (f"`{name}` ({_describe_layer(layers[name])}) gives {given}; expected (height, width, channels) "
                       f"= {want}. Work each size out from the one before it.")
    return right, message


def answers_judge(name: str, layers: dict, question: str):
    """Partial credit: the verdict's value is the share of layers answered right."""
    def judge(data):
        o = Outcome.of(data[name])
        if not o.ok:
            return failed(f"{question}: {o.error}", value=0.0)
        right, message = _first_wrong(o.value, IMAGE, layers)
        share = right / len(layers)
        if message is None:
            return passed(f"{question}: all {len(layers)} output volumes are right.", value=share)
        return passed(f"{question}: {right} of {len(layers)} output volumes are right. The first wrong one: {message}",
                      value=share)
    return judge


def volume_settings(networks) -> list[dict]:
    return [{"input": list(shape), "layers": {k: list(v) for k, v in layers.items()}} for shape, layers in networks]


def _describe_network(setting) -> str:
    h, w, c = setting["input"]
    layers = ", ".join(f"{name}: {_describe_layer(spec)}" for name, spec in setting["layers"].items())
    return f"an input of {h} x {w} x {c} and the layers {{{layers}}}"


def _volumes_test(found, setting):
    layers = {name: tuple(spec) for name, spec in setting["layers"].items()}
    _, message = _first_wrong(found, tuple(setting["input"]), layers)
    return message


def volumes_judge(what: str):
    return judges.each_setting("volumes", _volumes_test, what, _describe_network)


# --- networks -----------------------------------------------------------------------------

def network(model: str, batch: int = 2, **extra) -> dict:
    """One setting for probes.networks: the class, its arguments, the input shape."""
    return {"model": model, "args": extra.pop("args", {}), "input": [batch, *MNIST], **extra}


def describe(setting) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in setting["args"].items())
    return f"{setting['model']}({args}) on a batch of shape {tuple(setting['input'])}"


def only(models, judge):
    """The judge applied to the settings of the given classes only."""
    return judges.only(lambda setting: setting["model"] in models, judge)


def weighted(rows) -> list[dict]:
    """The layers with weights, in the order they are created (no forward needed)."""
    return [r for r in rows if r["kind"] in ("Conv2d", "Linear", "BatchNorm2d")]


def show(row) -> str:
    if row["kind"] == "Conv2d":
        return (f"Conv2d({row['in_channels']}, {row['out_channels']}, kernel_size={tuple(row['kernel_size'])}, "
                f"stride={tuple(row['stride'])}, padding={row['padding'] if isinstance(row['padding'], str) else tuple(row['padding'])})")
    if row["kind"] == "Linear":
        return f"Linear({row['in_features']}, {row['out_features']})"
    return f"{row['kind']}({row.get('num_features', '')})"


def _conv(cin, cout, k, stride=1, padding=0) -> str:
    return f"Conv2d({cin}, {cout}, kernel_size={(k, k)}, stride={(stride, stride)}, padding={(padding, padding)})"


# Q1 (c): ShallowCNN.
SHALLOW_LAYERS = [_conv(1, 3, 5, 1, 2), "Linear(3072, 120)", "Linear(120, 10)"]
SHALLOW_KINDS = ["Conv2d", "Linear", "Linear"]
SHALLOW = dict(probe="networks", args={"settings": [network("ShallowCNN", 3, kinds=SHALLOW_KINDS)],
                                       "parts": ["structure", "forward", "seeded"], "seed": SEED}, cells=("shallow_cnn",))


def _layers_test(rows, setting):
    found = [show(r) for r in weighted(rows)]
    if found != SHALLOW_LAYERS:
        return (f"its layers with weights are {' -> '.join(found) or 'none'}; expected {' -> '.join(SHALLOW_LAYERS)} "
                "(3 * 32 * 32 = 3072 features after the convolution, which keeps the 32x32 size).")
    return None


def shallow_reference(x, roles, bias: dict, conv_row):
    """conv -> ReLU -> flatten -> Linear -> ReLU -> Linear with the seeded weights of
    `roles` (the student's own layers), and the student's own stride and padding."""
    values = role_values(roles, SEED)
    conv, hidden, out = (
        (values[r[0]]["weight"], values[r[0]]["bias"] if bias.get(r[0]) else None) for r in roles)
    h = F.relu(F.conv2d(x, *conv, stride=conv_row["stride"], padding=conv_row["padding"]))
    return F.linear(F.relu(F.linear(h.flatten(1), *hidden)), *out)


def judge_shallow_forward(rows):
    """forward with the grader's weights in the student's own layers equals the
    specified computation done here (a softmax at the end is left to the logits check)."""
    what = "ShallowCNN forward"
    o = outcomes(rows, ("structure", "seeded"))[0]
    if not o.ok:
        return failed(f"{what}: with {describe(o.setting)}, it could not be measured:\n{o.error}")
    structure, seeded = o.value
    conv_row = next(r for r in structure if r["name"] == seeded["roles"][0][0])  # the convolution the probe loaded
    x = seeded_input(o.setting["input"], SEED)
    run = seeded["runs"][0]
    out = run["out"]["eval"]
    try:
        want = shallow_reference(x, seeded["roles"], run["bias"], conv_row)
    except RuntimeError as err:  # the layers' sizes do not chain (the layers check names them)
        return failed(f"{what}: conv -> ReLU -> flatten -> Linear -> ReLU -> Linear cannot run with your layers' "
                      f"sizes ({str(err).splitlines()[0]}), yet your forward returned an output: it does not apply "
                      "them in this order.")
    if out.shape == want.shape:
        for candidate, note in ((want, ""), (want.softmax(1), " (apart from the softmax at the end: see Logits)"),
                                (want.log_softmax(1), " (apart from the log_softmax at the end: see Logits)")):
            if torch.allclose(out.double(), candidate.double(), atol=1e-4, rtol=1e-4):
                return passed(f"{what}: with the grader's weights in your layers, the output is "
                              f"conv -> ReLU -> flatten -> Linear -> ReLU -> Linear{note}.")
        detail = f"values differ by up to {float((out.double() - want.double()).abs().max()):.3g}"
    else:
        detail = f"output shape {tuple(out.shape)}, expected {tuple(want.shape)}"
    return failed(f"{what}: with the grader's weights in your layers and a batch of shape {tuple(x.shape)}, the output "
                  f"is not conv -> ReLU -> flatten -> Linear -> ReLU -> Linear ({detail}). Check that forward applies "
                  "every layer once, in this order, with both ReLUs, and nothing else.")


# Q1 (d): DeepCNN, the student's design.
PARAMETER_BUDGET = 500_000
DEEP = dict(probe="networks", args={"settings": [network("DeepCNN", 1), network("DeepCNN", 5)],
                                    "parts": ["structure", "forward"], "seed": SEED}, cells=("deep_cnn",))


def _budget_test(rows, setting):
    count = sum(int(torch.tensor(shape).prod()) if shape else 1 for r in rows for shape in r["params"].values())
    convs = sum(r["kind"] == "Conv2d" for r in rows)
    if convs < 2:
        return f"it holds {convs} convolution(s); a deeper network has at least two nn.Conv2d."
    if count > PARAMETER_BUDGET:
        return f"it has {count:,} parameters; at most {PARAMETER_BUDGET:,} are allowed (the linear layers are usually the largest)."
    return None


# Q2: the ablation.
ABLATION_MODELS = ("PlainCNN", "BatchNormCNN", "SkipCNN")
ABLATION = dict(probe="networks", args={"settings": [network(m, 2, args={"depth": d}) for m in ABLATION_MODELS
                                                     for d in (1, 2, 3)],
                                        "parts": ["structure", "forward", "trace", "silenced"], "seed": SEED}, cells=("ablation",))


def _plain_test(rows, setting):
    depth = setting["args"]["depth"]
    want = [_conv(1, 16, 3, 1, 1)] + [_conv(16, 16, 3, 1, 1)] * (2 * depth)
    found = [show(r) for r in rows if r["kind"] == "Conv2d"]
    if found != want:
        return (f"its convolutions are {', '.join(found) or 'none'}; expected the stem's {want[0]} and "
                f"{2 * depth} x {want[1]} (two per block).")
    norms = sorted({r["kind"] for r in rows if "Norm" in r["kind"]})
    if norms:
        return f"it holds {', '.join(norms)}: the plain network has no normalization."
    return None


def _batchnorm_test(calls, setting):
    convs = [i for i, c in enumerate(calls) if c["kind"] == "Conv2d"]
    if not convs:
        return "forward called no nn.Conv2d."
    for i in convs:
        conv, after = calls[i], calls[i + 1] if i + 1 < len(calls) else None
        if after is None or after["kind"] != "BatchNorm2d":
            then = f"`{after['name']}` ({after['kind']})" if after else "nothing"
            return (f"forward calls `{conv['name']}` (a Conv2d) and then {then}; every convolution must be followed "
                    "directly by its BatchNorm2d.")
        if after["channels"] != conv["channels"]:
            return (f"`{after['name']}` normalizes {after['channels']} channels after `{conv['name']}`, which has "
                    f"{conv['channels']}; expected BatchNorm2d({conv['channels']}).")
    return None


def _differs(value) -> float:
    first, second = value["outputs"]
    return float((first.double() - second.double()).abs().max()) if first.shape == second.shape else float("inf")


def _skip_test(value, setting):
    if _differs(value) <= 1e-6:
        return ("with every convolution of the blocks silenced (weights and biases zero), the output no longer "
                "depends on the input: nothing goes around the blocks. Add each block's input to the output of its "
                "second batch norm, before the last ReLU.")
    return None


def _no_skip_test(value, setting):
    if _differs(value) > 1e-6:
        return ("with every convolution of the blocks silenced (weights and biases zero), the output still depends on "
                "the input: something goes around the blocks. Only SkipCNN adds the block's input back.")
    return None


# --- results files --------------------------------------------------------------------------

K = 3  # folds the notebook asks for


def _accuracies(data, key) -> list | None:
    folds = data.get("folds") if isinstance(data, dict) else None
    if not isinstance(folds, list) or not folds:
        return None
    values = [judges.number(f.get(key)) if isinstance(f, dict) else None for f in folds]
    return values if all(v is not None and 0 <= v <= 1 for v in values) else None


def kfold_judge(path: str, model: str):
    what = f"{path}"

    def judge(record):
        o = Outcome.of(record)
        if not o.ok:
            return failed(f"{what}: {o.error}")
        data = o.value
        if not isinstance(data, dict) or data.get("model") != model:
            found = data.get("model") if isinstance(data, dict) else type(data).__name__
            return failed(f"{what} holds the results of {found!r}; expected those of {model} "
                          f"(KFoldCrossValidation({model}, {K}, ..., results_file='{path}')).")
        folds = data.get("folds")
        if not isinstance(folds, list) or len(folds) != K or data.get("k") != K:
            n = len(folds) if isinstance(folds, list) else 0
            return failed(f"{what} holds {n} fold(s) with k={data.get('k')!r}; expected all {K} folds of a {K}-fold "
                          "cross-validation (run it without early_break).")
        for key in ("train_acc", "test_acc"):
            values = _accuracies(data, key)
            if values is None:
                return failed(f"{what}: every fold needs a {key} between 0 and 1 (a fraction, as evaluate returns it).")
            reported = data.get(key) if isinstance(data.get(key), dict) else {}
            mean, std = statistics.fmean(values), statistics.pstdev(values)
            for name, want in (("mean", mean), ("std", std)):
                got = judges.number(reported.get(name))
                if got is None or abs(got - want) > 1e-6:
                    return failed(f"{what}: {key}['{name}'] is {reported.get(name)!r}, but the folds' {key} values "
                                  f"{[round(v, 4) for v in values]} give {want:.6f}. The file must hold the mean "
                                  "and the standard deviation of its own folds.")
        return passed(f"{what}: {K} folds, test accuracy {data['test_acc']['mean']:.4f} +/- {data['test_acc']['std']:.4f}.")
    return judge


def accuracy_judge(path: str, model: str):
    """The value is the mean of the folds' test accuracies, computed here; the rubric's thresholds give the points."""
    def judge(record):
        o = Outcome.of(record)
        if not o.ok:
            return failed(f"{model} accuracy: {o.error}")
        values = _accuracies(o.value, "test_acc")
        if values is None:
            return failed(f"{model} accuracy: {path} holds no fold test accuracies (fractions between 0 and 1).")
        mean = statistics.fmean(values)
        return passed(f"{model} accuracy: mean test accuracy {mean:.4f} over {len(values)} fold(s).", value=mean)
    return judge


def _file(path):
    return dict(probe="results_file", args={"path": path}, files=(path,))


SHALLOW_FILE, DEEP_FILE = "results/shallow_cnn.json", "results/deep_cnn.json"

# --- the public checks, in rubric order (hidden ones: hidden_checks.py) ---------------------

_answers = dict(probe="answers", args={"names": ["q1a", "q1b"]}, cells=("q1_answers",))
_volumes = dict(probe="volumes", args={"settings": volume_settings([(IMAGE, LAYERS_A), (IMAGE, LAYERS_B)])},
                cells=("q1_volumes",))

CHECKS = [
    Check("q1.a", judge=answers_judge("q1a", LAYERS_A, "(a)"), **_answers),
    Check("q1.b", judge=answers_judge("q1b", LAYERS_B, "(b)"), **_answers),
    Check("q1.volumes", judge=volumes_judge("output_volumes"), **_volumes),
    Check("shallow.layers", judge=judges.each_setting("structure", _layers_test, "ShallowCNN layers", describe), **SHALLOW),
    Check("shallow.forward", judge=judge_shallow_forward, **SHALLOW),
    Check("shallow.logits", judge=judges.no_softmax("ShallowCNN logits", describe), **SHALLOW),
    Check("shallow.kfold", judge=kfold_judge(SHALLOW_FILE, "ShallowCNN"), **_file(SHALLOW_FILE)),
    Check("shallow.accuracy", judge=accuracy_judge(SHALLOW_FILE, "ShallowCNN"), **_file(SHALLOW_FILE)),
    Check("deep.output", judge=judges.output_shape(lambda s: [s["input"][0], 10], "DeepCNN output", describe), **DEEP),
    Check("deep.budget", judge=judges.each_setting("structure", _budget_test, "DeepCNN size", describe), **DEEP),
    Check("deep.logits", judge=judges.no_softmax("DeepCNN logits", describe), **DEEP),
    Check("deep.kfold", judge=kfold_judge(DEEP_FILE, "DeepCNN"), **_file(DEEP_FILE)),
    Check("deep.accuracy", judge=accuracy_judge(DEEP_FILE, "DeepCNN"), **_file(DEEP_FILE)),
    Check("ablation.shapes", judge=judges.output_shape(lambda s: [s["input"][0], 10], "Output shape", describe), **ABLATION),
    Check("ablation.plain", judge=only({"PlainCNN"}, judges.each_setting(
        "structure", _plain_test, "PlainCNN convolutions", describe)), **ABLATION),
    Check("ablation.batchnorm", judge=only({"BatchNormCNN"}, judges.each_setting(
        "trace", _batchnorm_test, "BatchNormCNN batch norms", describe, errors="skip")), **ABLATION),
    Check("ablation.skip", judge=only({"SkipCNN"}, judges.each_setting(
        "silenced", _skip_test, "SkipCNN skip connections", describe, errors="skip")), **ABLATION),
    Check("ablation.no_skip", judge=only({"PlainCNN", "BatchNormCNN"}, judges.each_setting(
        "silenced", _no_skip_test, "No skip connections", describe, errors="skip")), **ABLATION),
    Check("ablation.logits", judge=judges.no_softmax("Logits", describe), **ABLATION),
]
