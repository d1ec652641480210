"""HW2 checks: how the grader judges what the probes measured.

Everything here runs in the grader's own process, on plain data that came back
from the sandbox. Points are in rubric.yaml; this file says what passes.
Messages speak to the student: the object, what was expected, what was found.
"""
from __future__ import annotations

import math
from functools import lru_cache, partial
from pathlib import Path

import torch
from torch import nn

from checklib.checks import Check, failed, judge_each, passed

ASSETS = Path(__file__).resolve().parent / "assets"
NORM_TOLERANCE = 1e-3   # the course's tolerance on the norm of (output - expected)
STEP_TOLERANCE = 1e-5   # parameters and losses recomputed here from the same inputs
FIT_FIELDS = ("num_epochs", "train_loss", "train_acc", "test_loss", "test_acc")

# --- what the probes are asked to measure ----------------------------------------------

# The course's expected-output test (seed 42; model first, then the image).
COURSE_OUTPUT = dict(name="course", in_size=[3, 100, 100], out_classes=10, filters=[32] * 4, pool_every=2,
                     hidden_dims=[100] * 2)
COURSE_ASSET = "expected_conv_out.pt"

# Structures: one conv with a pool after it; N % P != 0 on a non-square grey image;
# N < P (no pooling) with no hidden layer; odd sizes rounded down by each pooling.
STRUCTURES = [
    dict(in_size=[3, 32, 32], out_classes=10, filters=[32], pool_every=1, hidden_dims=[100]),
    dict(in_size=[1, 28, 20], out_classes=5, filters=[8, 16, 16, 32, 32], pool_every=2, hidden_dims=[50]),
    dict(in_size=[3, 32, 32], out_classes=10, filters=[16, 16, 16], pool_every=4, hidden_dims=[]),
    dict(in_size=[3, 17, 15], out_classes=3, filters=[4, 8], pool_every=1, hidden_dims=[12, 6]),
]

# The course's overfitting sanity test.
OVERFIT = dict(epochs=22, batches=25, batch_size=2, lr=1e-2, momentum=0.9)
OVERFIT_BEST = 95.0      # percent, the best epoch's reported accuracy
OVERFIT_FINAL = 90.0     # percent of the same images the trained model really gets right

STEPS = dict(lr=0.1, momentum=0.9)
FIT_SCENARIOS = [
    dict(name="plain", lr=0.05, num_epochs=3, early_stopping=None, batch_size=10),
    dict(name="constant_stop", lr=0.0, num_epochs=8, early_stopping=2, batch_size=10),
    dict(name="constant_all", lr=0.0, num_epochs=4, early_stopping=None, batch_size=10),
    dict(name="improving", lr=0.05, num_epochs=5, early_stopping=1, batch_size=50),
    dict(name="checkpoint", lr=0.05, num_epochs=3, early_stopping=None, batch_size=50, checkpoints=True),
]

EXPERIMENT_CALL = dict(run_name="probe_run", out_dir="probe_results", seed=7, bs_train=4, bs_test=3, batches=5,
                       epochs=2, early_stopping=1, checkpoints=None, lr=0.01, reg=0.002, filters_per_layer=[8, 16],
                       layers_per_block=2, pool_every=3, hidden_dims=[20])
SCRIPTED_FIT = dict(num_epochs=2, train_loss=[2.0, 1.5], train_acc=[20.0, 35.0], test_loss=[2.1, 1.9], test_acc=[15.0, 25.0])
SAVED_EXPERIMENT = {"config": {"run_name": "exp_probe", "seed": 3, "lr": 0.001, "filters_per_layer": [32],
                               "layers_per_block": 4, "pool_every": 4, "hidden_dims": [100, 100]},
                    "results": dict(num_epochs=3, train_loss=[2.3, 2.0, 1.8], train_acc=[10.0, 25.5, 33.0],
                                    test_loss=[2.2, 2.1, 2.15], test_acc=[12.0, 24.0, 23.5])}

# The runs of experiments 1.1 and 1.2, and the settings every run shares.
EXP1_1 = {f"exp1_1_K{k}_L{l}": (k, l) for k in (32, 64) for l in (2, 4, 8, 16)}
EXP1_2 = {f"exp1_2_L{l}_K{k}": (k, l) for l in (2, 4, 8) for k in (32, 64, 128, 256)}
SHARED_SETTINGS = dict(pool_every=4, hidden_dims=[100, 100])


def _settings(cfg: dict) -> str:
    return (f"ConvClassifier({tuple(cfg['in_size'])}, {cfg['out_classes']}, filters={cfg['filters']}, "
            f"pool_every={cfg['pool_every']}, hidden_dims={cfg['hidden_dims']})")


# --- the structure a correct ConvClassifier has ------------------------------------------

def expected_features(cfg) -> list[tuple]:
    """Leaf layers of feature_extractor: ('Conv2d', in, out) / ('ReLU',) / ('MaxPool2d',)."""
    layers, channels = [], cfg["in_size"][0]
    for i, out in enumerate(cfg["filters"]):
        layers += [("Conv2d", channels, out), ("ReLU",)]
        channels = out
        if (i + 1) % cfg["pool_every"] == 0:
            layers.append(("MaxPool2d",))
    return layers


def feature_size(cfg) -> tuple[int, int, int]:
    """(C, H, W) after the feature extractor: each pooling halves H and W, rounding down."""
    c, h, w = cfg["in_size"]
    pools = len(cfg["filters"]) // cfg["pool_every"]
    return (cfg["filters"][-1] if cfg["filters"] else c), h // 2**pools, w // 2**pools


def expected_classifier(cfg) -> list[tuple]:
    c, h, w = feature_size(cfg)
    widths = [c * h * w, *cfg["hidden_dims"]]
    layers = []
    for a, b in zip(widths, widths[1:]):
        layers += [("Linear", a, b), ("ReLU",)]
    return layers + [("Linear", widths[-1], cfg["out_classes"])]


RESHAPING = {"Flatten", "Unflatten", "Identity"}  # no parameters, no arithmetic: allowed anywhere


def _leaves(modules, prefix):
    """The leaf modules under `prefix` (e.g. 'feature_extractor'), in order, leaving
    out mere reshaping (an nn.Flatten at the start of the classifier is fine)."""
    names = [m["name"] for m in modules]
    inside = [m for m in modules if m["name"].startswith(prefix + ".") and m["type"] not in RESHAPING]
    return [m for m in inside if not any(n.startswith(m["name"] + ".") for n in names)]


def _layer(m) -> tuple:
    if m["type"] == "Conv2d":
        return ("Conv2d", m["in_channels"], m["out_channels"])
    if m["type"] == "Linear":
        return ("Linear", m["in_features"], m["out_features"])
    return (m["type"],)


def _show(layers) -> str:
    def one(layer):
        return f"{layer[0]}({layer[1]}, {layer[2]})" if len(layer) == 3 else layer[0]
    text = " -> ".join(one(layer) for layer in layers[:14])
    return text + (" -> ..." if len(layers) > 14 else "") if layers else "nothing"


# Every structure check judges several settings the same way (the first problem fails it).
_judge_each = partial(judge_each, describe=_settings)


# --- 1. ConvClassifier --------------------------------------------------------------------

def judge_modules(items):
    def test(item):
        for part, kind in item["parts"].items():
            if not item["sequential"][part]:
                found = "there is no such attribute" if kind == "NoneType" else f"it is a {kind}"
                return f"`self.{part}` must be an nn.Sequential; {found}."
        calls = item["forward"].get("calls", [])
        outside = sorted({c["name"] for c in calls if c["type"] not in RESHAPING
                          and not c["name"].startswith(("feature_extractor.", "classifier."))})
        if outside:
            return f"forward() runs {', '.join(outside)}, which is outside feature_extractor and classifier."
        return None
    return _judge_each(items, test, "ConvClassifier's two parts")


def judge_convolutions(items):
    def test(item):
        leaves = _leaves(item["modules"], "feature_extractor")
        found = [_layer(m) for m in leaves if m["type"] != "MaxPool2d"]
        want = [layer for layer in expected_features(item["cfg"]) if layer[0] != "MaxPool2d"]
        if found != want:
            return (f"feature_extractor holds (poolings left out) {_show(found)}; expected {_show(want)}: "
                    f"one Conv2d per entry of filters, each followed by a ReLU.")
        for m in leaves:
            if m["type"] == "Conv2d" and (m["kernel_size"], m["stride"], m["padding"]) != ([3, 3], [1, 1], [1, 1]):
                return (f"`{m['name']}` has kernel_size={tuple(m['kernel_size'])}, stride={tuple(m['stride'])}, "
                        f"padding={m['padding']}; every convolution must be 3x3 with stride 1 and padding 1.")
        return None
    return _judge_each(items, test, "Convolutions")


def _pool_positions(layers) -> list[int]:
    """After how many convolutions each pooling comes."""
    positions, convs = [], 0
    for layer in layers:
        if layer[0] == "Conv2d":
            convs += 1
        elif layer[0] in ("MaxPool2d", "AvgPool2d", "AdaptiveMaxPool2d", "AdaptiveAvgPool2d"):
            positions.append(convs)
    return positions


def judge_pooling(items):
    def test(item):
        cfg = item["cfg"]
        leaves = _leaves(item["modules"], "feature_extractor")
        found = _pool_positions([_layer(m) for m in leaves])
        want = _pool_positions(expected_features(cfg))
        if found != want:
            where = (f"after convolution{'s' if len(want) > 1 else ''} {', '.join(map(str, want))}" if want
                     else "none at all (fewer convolutions than pool_every)")
            got = f"after convolution(s) {', '.join(map(str, found))}" if found else "none"
            return (f"the poolings come {got}; expected {len(want)} MaxPool2d ({len(cfg['filters'])} // "
                    f"{cfg['pool_every']}), {where}.")
        for m in leaves:
            if m["type"] != "MaxPool2d" and "Pool" in m["type"]:
                return f"`{m['name']}` is a {m['type']}; the pattern uses nn.MaxPool2d(kernel_size=2)."
            if m["type"] == "MaxPool2d" and (m["kernel_size"], m["stride"]) != ([2, 2], [2, 2]):
                return (f"`{m['name']}` has kernel_size={tuple(m['kernel_size'])} and stride={tuple(m['stride'])}; "
                        "expected nn.MaxPool2d(kernel_size=2), which halves the height and width.")
        return None
    return _judge_each(items, test, "Pooling")


def judge_classifier(items):
    def test(item):
        cfg = item["cfg"]
        found = [_layer(m) for m in _leaves(item["modules"], "classifier")]
        want = expected_classifier(cfg)
        if [layer[0] for layer in found] != [layer[0] for layer in want]:
            return (f"classifier holds {_show(found)}; expected {_show(want)}: "
                    f"a Linear and a ReLU per hidden width, then one Linear to out_classes.")
        if found != want:
            c, h, w = feature_size(cfg)
            return (f"classifier holds {_show(found)}; expected {_show(want)}. The first in_features is "
                    f"C x H x W of the features: {c} x {h} x {w} = {c * h * w} for in_size={tuple(cfg['in_size'])} "
                    f"after {len(cfg['filters']) // cfg['pool_every']} pooling(s), each halving H and W (rounding down).")
        return None
    return _judge_each(items, test, "Classifier")


def judge_other_sizes(items):
    def test(item):
        forward = item["forward"]
        if "error" in forward:
            return f"forward() on a batch of shape {(2, *item['cfg']['in_size'])} raised an error:\n{forward['error']}"
        want = [2, item["cfg"]["out_classes"]]
        if list(forward["out"].shape) != want:
            return f"forward() on a batch of shape {(2, *item['cfg']['in_size'])} returned shape {tuple(forward['out'].shape)}; expected {tuple(want)}."
        return None
    return _judge_each(items, test, "Output shape")


def _probability_like(out: torch.Tensor) -> str | None:
    out = out.double()
    if out.min() >= 0 and out.max() <= 1 and torch.allclose(out.sum(dim=1), torch.ones(len(out), dtype=out.dtype), atol=1e-4):
        return "every row is non-negative and sums to 1: the output went through a softmax"
    if out.max() <= 0 and torch.allclose(out.logsumexp(dim=1), torch.zeros(len(out), dtype=out.dtype), atol=1e-4):
        return "every row is a log-probability distribution: the output went through a log_softmax"
    return None


def judge_logits(items):
    ran = [i for i in items if "error" not in i and "out" in i.get("forward", {})]
    if not ran:
        return failed("Logits: forward() did not run for any setting tried, so the output could not be examined.")
    for item in ran:
        problem = _probability_like(item["forward"]["out"])
        if problem:
            return failed(f"Logits: with {_settings(item['cfg'])}, {problem}. Return the last Linear layer's "
                          "output as it is: nn.CrossEntropyLoss applies the softmax itself.")
    return passed(f"Logits: raw scores for all {len(ran)} settings that ran.")


@lru_cache(maxsize=None)  # read once per grader process, not once per submission
def load_expected(asset: str) -> dict[str, torch.Tensor]:
    """Expected outputs by setting name (read-only). The course's asset holds one
    tensor; the hidden asset holds a dictionary of them."""
    saved = torch.load(ASSETS / asset, weights_only=True)
    return saved if isinstance(saved, dict) else {COURSE_OUTPUT["name"]: saved}


def seeded_judge(asset: str):
    def judge(items):
        expected = load_expected(asset)
        for item in items:
            cfg = item["cfg"]
            call = f"{_settings(cfg)} built after torch.manual_seed(42)"
            if "error" in item:
                return failed(f"Expected output: {call} raised an error:\n{item['error']}")
            out, want = item["out"].double(), expected[cfg["name"]].double()
            if out.shape != want.shape:
                return failed(f"Expected output: {call} returned shape {tuple(out.shape)} on one image; expected {tuple(want.shape)}.")
            distance = torch.linalg.vector_norm(out - want).item()
            if not distance < NORM_TOLERANCE:
                shown = ", ".join(f"{v:.4f}" for v in out.flatten()[:4].tolist())
                hoped = ", ".join(f"{v:.4f}" for v in want.flatten()[:4].tolist())
                return failed(f"Expected output: {call} gave [{shown}, ...] on the seeded test image; expected "
                              f"[{hoped}, ...] (norm of the difference {distance:.4g}, must be below {NORM_TOLERANCE:g}). "
                              "Common causes: layers created in another order (every convolution first, then the "
                              "linear layers), a missing or extra layer, other initialization, or a softmax at the end.")
        return passed(f"Expected output: matches for {len(items)} setting(s), within a norm of {NORM_TOLERANCE:g}.")
    return judge


# --- 2. TorchTrainer --------------------------------------------------------------------------

def _replay_steps(data, lr, momentum):
    """Two SGD steps on the probe's batch, done here: (loss, correct, state) after each."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))  # probes.linear_model's architecture
    model.load_state_dict(data["initial"])
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    x, y = data["train"]["x"], data["train"]["y"]
    replay = []
    for _ in range(2):
        optimizer.zero_grad()
        scores = model(x)
        loss = nn.functional.cross_entropy(scores, y)
        loss.backward()
        optimizer.step()
        replay.append((loss.item(), int((scores.argmax(1) == y).sum()), {k: v.clone() for k, v in model.state_dict().items()}))
    return replay


def _largest_difference(a: dict, b: dict) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in b)


def _result_problem(result, loss, correct, batch_size, method) -> str | None:
    if result["loss"]["type"] == "Tensor":
        return (f"{method} returned the loss as a Tensor; return a Python float (loss.item()), or the whole "
                "computation graph of every batch stays in memory until the epoch ends.")
    if result["loss"]["value"] is None or not math.isclose(result["loss"]["value"], loss, rel_tol=STEP_TOLERANCE, abs_tol=STEP_TOLERANCE):
        return f"{method} returned loss={result['loss']['value']}; the loss of this batch is {loss:.6f}."
    if result["num_correct"]["value"] != correct:
        return (f"{method} returned num_correct={result['num_correct']['value']}; {correct} of the batch's "
                f"{batch_size} samples are classified correctly (argmax of the scores).")
    return None


def judge_train_batch(data):
    steps, replay = data["steps"], _replay_steps(data, **STEPS)
    for n, (step, (loss, correct, state)) in enumerate(zip(steps, replay), start=1):
        if "error" in step["result"]:
            return failed(f"train_batch raised an error on call {n}:\n{step['result']['error']}")
        difference = _largest_difference(step["state"], state)
        if difference > STEP_TOLERANCE:
            if n == 1 and _largest_difference(step["state"], data["initial"]) == 0:
                return failed("train_batch did not change the model's parameters: call loss.backward() and then "
                              "self.optimizer.step().")
            if n == 2:
                return failed("The first train_batch call was right, but the second one was not a plain SGD step on "
                              f"its batch (parameters differ by up to {difference:.3g}): clear the old gradients "
                              "with self.optimizer.zero_grad() before backward().")
            return failed(f"After one train_batch the parameters are not those of one optimizer step on this batch "
                          f"(they differ by up to {difference:.3g}): compute the loss of the batch with self.loss_fn, "
                          "call backward() on it and then self.optimizer.step().")
        problem = _result_problem(step["result"], loss, correct, len(data["train"]["y"]), "train_batch")
        if problem:
            return failed(problem)
    return passed("train_batch: two calls made exactly two optimizer steps and returned the right loss and count.")


def judge_test_batch(data):
    tested = data["tested"]
    if "error" in tested["result"]:
        return failed(f"test_batch raised an error:\n{tested['result']['error']}")
    if tested["changed"]:
        return failed(f"test_batch changed the model ({', '.join(tested['changed'])}); it must only evaluate it.")
    if tested["grads"] or tested["grad_enabled"]:
        return failed("test_batch ran the model with gradients enabled"
                      + (" and computed gradients" if tested["grads"] else "")
                      + ": run it under torch.no_grad() (evaluation needs no gradients, and they cost memory).")
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    model.load_state_dict(tested["state"])
    with torch.no_grad():
        scores = model(data["test"]["x"])
        loss = nn.functional.cross_entropy(scores, data["test"]["y"]).item()
    y = data["test"]["y"]
    problem = _result_problem(tested["result"], loss, int((scores.argmax(1) == y).sum()), len(y), "test_batch")
    return failed(problem) if problem else passed("test_batch: the right loss and count, without gradients or changes.")


def judge_overfit(data):
    accuracies = [a for a in data["accuracies"] if a is not None]
    best = max(accuracies, default=0.0)
    real = 100.0 * float((data["logits"].argmax(1) == data["labels"]).double().mean())
    setting = (f"train_epoch on 25 batches of 2 images, {OVERFIT['epochs']} times (SGD, lr {OVERFIT['lr']:g}, "
               f"momentum {OVERFIT['momentum']:g})")
    if best < OVERFIT_BEST:
        shown = ", ".join(f"{a:.0f}" for a in accuracies)
        return failed(f"Overfitting: {setting} reached at best {best:.1f}% accuracy; at least {OVERFIT_BEST:g}% was "
                      f"expected. Accuracy per epoch: {shown}.", value=best)
    if real < OVERFIT_FINAL:
        return failed(f"Overfitting: the epochs reported up to {best:.1f}% accuracy, but the trained model classifies "
                      f"only {real:.0f}% of those images correctly: check that num_correct counts correct "
                      "predictions and that the model really learns.", value=best)
    return passed(f"Overfitting: {setting} reached {best:.1f}%.", value=best)


def _scenario(data, name):
    return next(d for d in data if d["scenario"]["name"] == name)


def _fit_problem(run) -> str | None:
    """Whether a fit() result is well formed; None when it is."""
    if "error" in run:
        return f"fit raised an error:\n{run['error']}"
    result = run["result"]
    n = result["num_epochs"]
    lists = {f: result[f] for f in FIT_FIELDS[1:]}
    bad = [f for f, v in lists.items() if not isinstance(v, list)]
    if bad:
        return f"FitResult.{bad[0]} is {lists[bad[0]]}; expected a list with one value per epoch."
    lengths = {f: len(v) for f, v in lists.items()}
    if n is None or any(length != n for length in lengths.values()):
        return (f"FitResult.num_epochs is {n}, but the lists have lengths {lengths}; every list must hold one "
                "value per epoch run, and num_epochs must count those epochs.")
    for field, values in lists.items():
        if any(v is None or not math.isfinite(v) for v in values):
            what = "the mean loss of its batches" if "loss" in field else "its accuracy in percent"
            return (f"FitResult.{field} is {result['shown'][field]}; expected one finite number per epoch "
                    f"({what}).")
    return None


def judge_fit(data):
    run = _scenario(data, "plain")
    problem = _fit_problem(run)
    if problem:
        return failed(f"fit(num_epochs=3): {problem}")
    result = run["result"]
    if result["num_epochs"] != 3:
        return failed(f"fit(num_epochs=3) without early stopping ran {result['num_epochs']:g} epochs; expected 3.")
    accuracies = result["train_acc"] + result["test_acc"]
    if any(not 0 <= a <= 100 for a in accuracies) or max(accuracies) <= 1:
        return failed(f"fit's accuracies {accuracies} must be percentages between 0 and 100.")
    if any(loss <= 0 for loss in result["train_loss"] + result["test_loss"]):
        return failed("fit's losses must be the mean cross-entropy losses of the epochs (positive numbers).")
    return passed("fit: a FitResult with one loss and one accuracy per epoch, for training and testing.")


def judge_early_stopping(data):
    cases = [("constant_stop", 3, "the test loss never improves after epoch 1, so with early_stopping=2 training "
                                  "must stop after epoch 3"),
             ("constant_all", 4, "with early_stopping=None, fit must run all 4 epochs even when nothing improves"),
             ("improving", 5, "the test loss improves every epoch, so with early_stopping=1 all 5 epochs must run")]
    for name, epochs, why in cases:
        run = _scenario(data, name)
        if "error" in run:
            return failed(f"Early stopping: fit raised an error:\n{run['error']}")
        ran = run["result"]["num_epochs"]  # only the epoch count matters here (trainer.fit checks the rest)
        if ran != epochs:
            return failed(f"Early stopping: fit ran {ran} epochs (FitResult.num_epochs); {why}. An epoch improves when its test loss is "
                          "lower than every earlier one.")
    return passed("Early stopping: stops after exactly early_stopping epochs without improvement, and only then.")


def judge_checkpoints(data):
    run = _scenario(data, "checkpoint")
    if "error" in run:
        return failed(f"fit(checkpoints=...) raised an error:\n{run['error']}")
    saved = run["checkpoint"]
    name = "probe_checkpoint_checkpoint"
    if "error" in saved:
        return failed(f"fit(..., checkpoints='{name}') saved nothing readable as {name}.pt: {saved['error']}")
    if saved["type"] != "dict" or saved["keys"] != saved["expected_keys"]:
        return failed(f"{name}.pt must hold the model's state_dict() (keys {saved.get('expected_keys')}); "
                      f"found a {saved['type']} with keys {saved.get('keys')}.")
    if saved["max_difference"] is None or saved["max_difference"] > 1e-6:
        return failed(f"{name}.pt does not hold the best model: every epoch improved, so the last epoch's weights "
                      f"should have been saved (they differ by up to {saved['max_difference']}).")
    return passed("Checkpoints: the best model's state_dict is saved to <checkpoints>.pt.")


# --- 3. Experiments -------------------------------------------------------------------------------

def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def judge_run_experiment(data):
    call = EXPERIMENT_CALL
    built, events = data["built"], data["events"]
    trainers = [e for e in events if e["event"] == "trainer"]
    fits = [e for e in events if e["event"] == "fit"]
    what = "run_experiment(" + ", ".join(f"{k}={v!r}" for k, v in call.items()) + ") on small data"
    filters = [k for k in call["filters_per_layer"] for _ in range(call["layers_per_block"])]
    if len(built) != 1:
        return failed(f"{what} built {len(built)} ConvClassifier(s); expected exactly one.")
    model = built[0]
    want_model = dict(in_size=[3, 16, 16], out_classes=10, filters=filters, pool_every=call["pool_every"],
                      hidden_dims=call["hidden_dims"])
    for key, value in want_model.items():
        if model[key] != value:
            note = " (each entry of filters_per_layer repeated layers_per_block times)" if key == "filters" else ""
            note = " (the shape of one training image)" if key == "in_size" else note
            return failed(f"{what} built ConvClassifier with {key}={model[key]}; expected {value}{note}.")
    if model["initial_seed"] != call["seed"]:
        return failed(f"{what} built the model without seeding: call torch.manual_seed(seed) first.")
    if len(trainers) != 1 or len(fits) != 1:
        return failed(f"{what} created {len(trainers)} TorchTrainer(s) and called fit {len(fits)} time(s); expected one each.")
    trainer, fit = trainers[0], fits[0]
    expectations = [
        (trainer["loss_fn"] == "CrossEntropyLoss", f"the loss function is a {trainer['loss_fn']}; use nn.CrossEntropyLoss()"),
        (trainer["optimizer"] == "Adam", f"the optimizer is a {trainer['optimizer']}; use torch.optim.Adam"),
        (_same(trainer["lr"], call["lr"]), f"the optimizer's learning rate is {trainer['lr']}; expected lr={call['lr']}"),
        (_same(trainer["weight_decay"], call["reg"]), f"the optimizer's weight_decay is {trainer['weight_decay']}; expected reg={call['reg']}"),
        (trainer["optimizes_model"], "the optimizer does not hold exactly the model's parameters"),
        (fit["num_epochs"] == call["epochs"], f"fit got num_epochs={fit['num_epochs']}; expected epochs={call['epochs']}"),
        (fit["early_stopping"] == call["early_stopping"], f"fit got early_stopping={fit['early_stopping']}; expected {call['early_stopping']}"),
        (fit["checkpoints"] == call["checkpoints"], f"fit got checkpoints={fit['checkpoints']!r}; expected {call['checkpoints']!r}"),
        (fit["kw"].get("max_batches") == call["batches"], f"fit got max_batches={fit['kw'].get('max_batches')}; expected batches={call['batches']}"),
        (fit["bs_train"] == call["bs_train"], f"the training DataLoader has batch_size={fit['bs_train']}; expected bs_train={call['bs_train']}"),
        (fit["bs_test"] == call["bs_test"], f"the test DataLoader has batch_size={fit['bs_test']}; expected bs_test={call['bs_test']}"),
        (fit["shuffle_train"], "the training DataLoader does not shuffle; pass shuffle=True"),
        (fit["train_size"] == 30 and fit["test_size"] == 20, "the DataLoaders do not read the ds_train and ds_test given to run_experiment"),
    ]
    for ok, message in expectations:
        if not ok:
            return failed(f"{what}: {message}.")
    path = f"{call['out_dir']}/{call['run_name']}.json"
    written = data["written"]
    if written is None:
        return failed(f"{what} did not write {path} (files in {call['out_dir']}/: {data['files']}); "
                      "the file is named after the run.")
    if isinstance(written, dict) and "error" in written and len(written) == 1:
        return failed(f"{path} is not valid JSON: {written['error']}")
    if not isinstance(written, dict) or set(written) != {"config", "results"}:
        keys = sorted(written) if isinstance(written, dict) else type(written).__name__
        return failed(f"{path} must hold a dictionary with the keys 'config' and 'results'; found {keys}.")
    config = written["config"]
    wrong = [k for k, v in call.items() if not (isinstance(config, dict) and _same(config.get(k), v))]
    if wrong:
        found = config.get(wrong[0]) if isinstance(config, dict) else config
        return failed(f"{path}: config['{wrong[0]}'] is {found!r}; expected {call[wrong[0]]!r} (the config dictionary "
                      "holds every argument of the run except the datasets).")
    results = written["results"]
    if not isinstance(results, dict) or any(not _same(results.get(k), v) for k, v in SCRIPTED_FIT.items()):
        return failed(f"{path}: 'results' must hold the five FitResult fields by name, as fit returned them "
                      f"({SCRIPTED_FIT}); found {str(results)[:300]}.")
    return passed(f"run_experiment: built, trained and wrote {path} as specified.")


def judge_load_experiment(data):
    saved = SAVED_EXPERIMENT
    if data["config"] != saved["config"]:
        return failed(f"load_experiment returned the config {str(data['config'])[:300]}; the file holds {saved['config']}.")
    if data["result_type"] != "FitResult":
        return failed(f"load_experiment returned a {data['result_type']} as its second value; expected a FitResult.")
    problem = next((f for f in FIT_FIELDS if not _same(data["result"][f], saved["results"][f])), None)
    if problem:
        return failed(f"load_experiment's FitResult has {problem}={data['result'][problem]}; the file holds "
                      f"{saved['results'][problem]}.")
    return passed("load_experiment: returns the file's config and a FitResult with its values.")


def runs_judge(runs: dict[str, tuple[int, int]], part: str):
    def judge(data):
        for name, (k, l) in runs.items():
            path = f"results/{name}.json"
            run = data[name]
            if isinstance(run, dict) and set(run) == {"error"}:
                return failed(f"{part}: {path} could not be read: {run['error']}")
            if not isinstance(run, dict) or not isinstance(run.get("config"), dict) or not isinstance(run.get("results"), dict):
                return failed(f"{part}: {path} must hold {{'config': ..., 'results': ...}} as run_experiment writes it.")
            config, results = run["config"], run["results"]
            want = dict(run_name=name, filters_per_layer=[k], layers_per_block=l, **SHARED_SETTINGS)
            for key, value in want.items():
                if not _same(config.get(key), value):
                    return failed(f"{part}: {path} was run with {key}={config.get(key)!r}; the run named {name} "
                                  f"must use {key}={value!r}.")
            n = results.get("num_epochs")
            lists = [results.get(f) for f in FIT_FIELDS[1:]]
            if not isinstance(n, int) or n < 1 or any(not isinstance(v, list) or len(v) != n for v in lists):
                return failed(f"{part}: {path} holds no complete fit result (num_epochs={n!r} and one value per "
                              "epoch in train_loss, train_acc, test_loss and test_acc).")
        return passed(f"{part}: all {len(runs)} result files are there, each run with its name's settings.")
    return judge


# --- the public checks, in rubric order (hidden ones: hidden_checks.py) ------------------------------

STRUCTURE = dict(probe="conv_structures", args={"configs": STRUCTURES}, cells=("conv_classifier",))
_fit = dict(probe="fit_runs", args={"scenarios": FIT_SCENARIOS}, cells=("trainer",))
_steps = dict(probe="trainer_steps", args=STEPS, cells=("trainer",))


def _files(runs):
    return tuple(f"results/{name}.json" for name in runs)


CHECKS = [
    Check("conv.modules", judge=judge_modules, **STRUCTURE),
    Check("conv.convolutions", judge=judge_convolutions, **STRUCTURE),
    Check("conv.pooling", judge=judge_pooling, **STRUCTURE),
    Check("conv.classifier", judge=judge_classifier, **STRUCTURE),
    Check("conv.expected_output", "seeded_outputs", seeded_judge(COURSE_ASSET), {"configs": [COURSE_OUTPUT]},
          cells=("conv_classifier",)),
    Check("conv.other_sizes", judge=judge_other_sizes, **STRUCTURE),
    Check("conv.logits", judge=judge_logits, **STRUCTURE),
    Check("trainer.train_batch", judge=judge_train_batch, **_steps),
    Check("trainer.test_batch", judge=judge_test_batch, **_steps),
    Check("trainer.overfit", "overfit", judge_overfit, OVERFIT, cells=("trainer",)),
    Check("trainer.fit", judge=judge_fit, **_fit),
    Check("trainer.early_stopping", judge=judge_early_stopping, **_fit),
    Check("trainer.checkpoints", judge=judge_checkpoints, **_fit),
    Check("experiments.run_experiment", "run_experiment_probe", judge_run_experiment,
          {"call": EXPERIMENT_CALL, "scripted": SCRIPTED_FIT}, cells=("experiments",)),
    Check("experiments.load_experiment", "load_experiment_probe", judge_load_experiment,
          {"content": SAVED_EXPERIMENT}, cells=("experiments",)),
    Check("experiments.exp1_1", "submitted_runs", runs_judge(EXP1_1, "Experiment 1.1"), {"names": list(EXP1_1)},
          files=_files(EXP1_1)),
    Check("experiments.exp1_2", "submitted_runs", runs_judge(EXP1_2, "Experiment 1.2"), {"names": list(EXP1_2)},
          files=_files(EXP1_2)),
]
