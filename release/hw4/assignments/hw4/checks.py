"""HW4 checks: how the grader judges what the probes measured.

Everything here runs in the grader's own process, on plain data that came back
from the sandbox. Points are in rubric.yaml; this file says what passes.
Messages speak to the student: the object, what was expected, what was found.
"""
from __future__ import annotations

import ast
import itertools
import math
import re
from functools import partial

import torch
import torch.nn.functional as F

from checklib.checks import Check, failed, judge_each, passed

ACTIVATION_MODULES = {"ReLU", "ReLU6", "GELU", "Tanh", "Sigmoid", "SiLU", "ELU", "SELU", "CELU", "LeakyReLU", "PReLU",
                      "Mish", "Hardswish", "Hardtanh", "Softplus", "Softmax", "LogSoftmax", "Softmax2d",
                      "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "LPPool2d"}
RANDOM_TRANSFORMS = {"RandomCrop", "RandomResizedCrop", "RandomHorizontalFlip", "RandomVerticalFlip", "ColorJitter",
                     "RandomRotation", "RandomAffine", "RandomPerspective", "RandomErasing", "RandomGrayscale",
                     "RandomInvert", "RandomPosterize", "RandomSolarize", "RandomAdjustSharpness", "RandomAutocontrast",
                     "RandomEqualize", "RandAugment", "AutoAugment", "TrivialAugmentWide", "AugMix", "ElasticTransform",
                     "GaussianBlur", "GaussianNoise", "RandomPhotometricDistort", "RandomChannelPermutation",
                     "RandomZoomOut", "RandomApply", "RandomChoice", "RandomOrder", "ScaleJitter", "RandomResize",
                     "JPEG", "CutMix", "MixUp"}
METRICS = ("train_loss", "test_loss", "train_acc", "test_acc")
TOLERANCE = 1e-4

# --- what the probes are asked to measure ----------------------------------------------

SHAPE_GRID = [dict(in_channels=c, expand=e, activation=a, batchnorm=bn, residual=r, size=s)
              for c in (3, 8) for e in (1, 2, 4) for a in ("relu", "gelu", "tanh")
              for bn in (False, True) for r in (False, True) for s in (8, 16)]
DETAIL_CONFIGS = [dict(in_channels=4, expand=e, activation=a, batchnorm=bn, residual=r, size=8)
                  for e in (1, 2) for bn in (False, True) for r in (False, True)
                  for a in (("relu", "tanh") if (e, bn, r) == (2, True, True) else ("relu",))] + [
                 dict(in_channels=4, expand=2, activation="gelu", batchnorm=False, residual=True, size=8),
                 dict(in_channels=4, expand=1, activation="silu", batchnorm=True, residual=True, size=8)]
MODEL_CONFIGS = [dict(base_channels=8, expands=[1, 2, 2], activation="relu", batchnorm=True, residual=True),
                 dict(base_channels=4, expands=[2, 2], activation="tanh", batchnorm=False, residual=False)]
MODEL_SIZES = [32, 64, 40]


def _settings(cfg: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in cfg.items() if k != "size")


def _expected_convs(cfg):
    """The (in, out) channels of the convolutions a correct block holds."""
    c, e = cfg["in_channels"], cfg["expand"]
    convs = [(c, c * e), (c * e, c * e)]
    if cfg["residual"] and e > 1:
        convs.append((c, c * e))
    return sorted(convs)


def _expected_bns(cfg):
    return len(_expected_convs(cfg)) if cfg["batchnorm"] else 0


def _convs(modules):
    return [m for m in modules if m["type"] == "Conv2d"]


def _bns(modules):
    return [m for m in modules if m["type"].startswith("BatchNorm")]


# Every Block/Model check judges several settings the same way (the first problem fails it).
_judge_each = partial(judge_each, describe=_settings)


# --- Block -----------------------------------------------------------------------------

def judge_block_shapes(items):
    def test(item):
        cfg = item["cfg"]
        c, e, s = cfg["in_channels"], cfg["expand"], cfg["size"]
        want, out = [2, c * e, s // e, s // e], item["out"]
        if list(out.shape) != want:
            return f"an input of shape {(2, c, s, s)} gave an output of shape {tuple(out.shape)}; expected {tuple(want)}."
        low, high = float(out.min()), float(out.max())
        if cfg["activation"] == "tanh" and not (-1 <= low and high <= 1):
            return f"the output ranges over [{low:.3f}, {high:.3f}], but a block that ends with tanh must stay in [-1, 1]."
        return None
    return _judge_each(items, test, "Block output shape")


def judge_block_strides(items):
    def test(item):
        c, e = item["cfg"]["in_channels"], item["cfg"]["expand"]
        for conv in _convs(item["modules"]):
            want = e if conv["in_channels"] == c else 1
            if conv["stride"] != [want, want]:
                if want > 1:
                    return (f"the convolution `{conv['name']}` reads the block's input but has stride {tuple(conv['stride'])}; "
                            f"conv1 (and a projection shortcut) must use stride {e}.")
                return f"the convolution `{conv['name']}` has stride {tuple(conv['stride'])}; expected 1 (only conv1 and the shortcut shrink the image)."
        return None
    return _judge_each(items, test, "Block strides")


def judge_block_kernels(items):
    def test(item):
        for conv in _convs(item["modules"]):
            if conv["kernel_size"] != [3, 3]:
                return f"the convolution `{conv['name']}` has kernel size {tuple(conv['kernel_size'])}; every nn.Conv2d must use kernel_size=3."
        return None
    return _judge_each(items, test, "Block kernel sizes")


def judge_block_batchnorm(items):
    def test(item):
        cfg, found = item["cfg"], len(_bns(item["modules"]))
        want = _expected_bns(cfg)
        if found != want:
            where = "none at all when batchnorm=False" if not cfg["batchnorm"] else \
                f"one after each of its {want} convolutions (the shortcut's included)"
            return f"the block holds {found} batch-norm module(s); expected {want}: {where}."
        return None
    return _judge_each(items, test, "Block batch-norm modules")


def judge_block_shortcut(items):
    def test(item):
        cfg, convs = item["cfg"], _convs(item["modules"])
        c, e = cfg["in_channels"], cfg["expand"]
        from_input = [m for m in convs if m["in_channels"] == c]
        if not cfg["residual"] and len(convs) != 2:
            return f"the block holds {len(convs)} convolutions; with residual=False there is no shortcut, so only conv1 and conv2."
        if cfg["residual"] and e == 1 and len(convs) != 2:
            return f"the block holds {len(convs)} convolutions; with expand=1 the shortcut is the identity (no convolution)."
        if cfg["residual"] and e > 1 and (len(convs) != 3 or len(from_input) != 2):
            return f"the block holds {len(convs)} convolutions ({len(from_input)} reading the input); with expand={e} the shortcut needs its own convolution from the input."
        return None
    return _judge_each(items, test, "Block shortcut")


def judge_block_functional_modules(items):
    def test(item):
        bad = sorted({m["type"] for m in item["modules"] if m["type"] in ACTIVATION_MODULES})
        if bad:
            return f"the block stores {', '.join(bad)} as module(s); call activations and pooling in forward (e.g. F.{item['cfg']['activation']}) instead."
        return None
    return _judge_each(items, test, "Block activations")


def judge_block_gradients(items):
    def test(item):
        if item["no_grad"]:
            return f"the parameter(s) {', '.join(item['no_grad'])} received no gradient after a backward pass: their module is never used in forward (remove it, or use it)."
        return None
    return _judge_each(items, test, "Block unused modules")


def judge_block_no_new_params(items):
    def test(item):
        new = sorted(set(item["params_after"]) - set(item["params_before"]))
        if new:
            return f"calling forward created the parameter(s) {', '.join(new)}; create every module in __init__."
        return None
    return _judge_each(items, test, "Block parameters")


def _conv(x, state, module):
    weight = state[module["name"] + ".weight"]
    bias = state.get(module["name"] + ".bias")
    return F.conv2d(x, weight, bias, stride=module["stride"], padding=module["padding"])


def _bn(x, state, module, training):
    key = module["name"]
    return F.batch_norm(x, state[key + ".running_mean"].clone(), state[key + ".running_var"].clone(),
                        state.get(key + ".weight"), state.get(key + ".bias"), training=training, eps=module["eps"])


def reference_block(x, state, cfg, convs, bns, training):
    """The block as specified, computed with the student's weights (convs: conv1,
    conv2[, shortcut]; bns: bn1, bn2[, shortcut bn] or empty)."""
    act = getattr(F, cfg["activation"])
    bn = (lambda t, i: _bn(t, state, bns[i], training)) if bns else (lambda t, i: t)
    out = act(bn(_conv(x, state, convs[0]), 0))
    out = bn(_conv(out, state, convs[1]), 1)
    if cfg["residual"]:
        skip = x if len(convs) == 2 else act(bn(_conv(x, state, convs[2]), 2))
        out = out + skip
    return act(out)


def _matches_reference(item, training):
    cfg = item["cfg"]
    c, e = cfg["in_channels"], cfg["expand"]
    convs, bns = _convs(item["modules"]), _bns(item["modules"])
    out = item["out_train" if training else "out_eval"]
    state = item["state_train" if training else "state_eval"]
    for order in itertools.permutations(convs):
        if [(m["in_channels"], m["out_channels"]) for m in order[:2]] != [(c, c * e), (c * e, c * e)]:
            continue
        for bn_order in (itertools.permutations(bns) if bns else [()]):
            try:
                ref = reference_block(item["x"], state, cfg, list(order), list(bn_order), training)
            except (RuntimeError, KeyError):
                continue
            if ref.shape == out.shape and torch.allclose(ref, out, atol=TOLERANCE, rtol=TOLERANCE):
                return True
    return False


def judge_block_reference(items):
    """The block's outputs equal the specified computation with its own weights."""
    checked = 0
    for item in items:
        if "error" in item:
            return failed(f"Block computation: with {_settings(item['cfg'])}, it raised an error:\n{item['error']}")
        cfg = item["cfg"]
        inventory_ok = (sorted((m["in_channels"], m["out_channels"]) for m in _convs(item["modules"])) == _expected_convs(cfg)
                        and len(_bns(item["modules"])) == _expected_bns(cfg)
                        and list(item["out_train"].shape) == [2, cfg["in_channels"] * cfg["expand"], cfg["size"] // cfg["expand"], cfg["size"] // cfg["expand"]])
        if not inventory_ok:
            continue  # wrong modules or shapes: the structure checks report that
        checked += 1
        for training in (True, False):
            if not _matches_reference(item, training):
                mode = "training" if training else "evaluation"
                return failed(
                    f"Block computation: with {_settings(cfg)}, in {mode} mode the output differs from "
                    "conv1 -> [bn1] -> activation -> conv2 -> [bn2] -> (+ shortcut) -> activation computed with your "
                    "own weights. Check the order of the steps, that every batch-norm is applied, that the activation "
                    "given as `activation` is used everywhere (a projection shortcut ends with it too), and that no "
                    "softmax or other extra step is applied.")
    if not checked:
        return failed("Block computation: could not be checked, because no setting had the expected convolutions, "
                      "batch-norms and output shape (see the other Block checks).")
    return passed(f"Block computation: matches the specification in training and evaluation mode ({checked} settings).")


# --- Model -----------------------------------------------------------------------------

def judge_model_layer0(items):
    def test(item):
        convs = [c for c in item["calls"] if c["type"] == "Conv2d"]
        if not convs:
            return "the model ran no convolution."
        first = convs[0]
        if first["out_shape"][1] != item["cfg"]["base_channels"] or first["out_shape"][2:] != [32, 32]:
            return (f"its first convolution (layer0) turned a (4, 3, 32, 32) input into {tuple(first['out_shape'])}; "
                    f"expected (4, {item['cfg']['base_channels']}, 32, 32): base_channels maps and the same height and width.")
        return None
    return _judge_each(items, test, "Model layer0")


def judge_model_blocks(items):
    def test(item):
        cfg = item["cfg"]
        if len(item["blocks"]) != len(cfg["expands"]):
            return f"the model holds {len(item['blocks'])} Block(s); expected one per entry of expands ({len(cfg['expands'])})."
        channels = cfg["base_channels"]
        for i, (block, e) in enumerate(zip(item["blocks"], cfg["expands"])):
            if (block["in"], block["out"]) != (channels, channels * e):
                return f"Block {i} maps {block['in']} to {block['out']} channels; expected {channels} to {channels * e}."
            channels *= e
        return None
    return _judge_each(items, test, "Model blocks")


def judge_model_sizes(items):
    def test(item):
        for size, got in item["shapes"].items():
            if "error" in got:
                return f"an input of shape (2, 3, {size}, {size}) raised an error:\n{got['error']}\nGlobal average pooling must work for any image size."
            if list(got["out"].shape) != [2, 10]:
                return f"an input of shape (2, 3, {size}, {size}) gave {tuple(got['out'].shape)}; expected (2, 10)."
        return None
    return _judge_each(items, test, f"Model output for {', '.join(f'{s}x{s}' for s in MODEL_SIZES)} images")


def judge_model_logits(items):
    def test(item):
        out = item["out"]
        if "Softmax" in item["modules"] or "LogSoftmax" in item["modules"]:
            return "the model holds a softmax module; nn.CrossEntropyLoss expects raw scores (logits)."
        if (out >= 0).all() and torch.allclose(out.sum(1), torch.ones(len(out)), atol=1e-4):
            return "every output row is non-negative and sums to 1: that is a softmax. Return the linear layer's output (logits)."
        if torch.allclose(out.exp().sum(1), torch.ones(len(out)), atol=1e-4):
            return "the outputs are log-probabilities (a log-softmax). Return the linear layer's output (logits)."
        return None
    return _judge_each(items, test, "Model output is logits")


def judge_model_from_config(data):
    if list(data["out"].shape) != [2, 10]:
        return failed(f"Model(**model_config) from your model_config.yaml returned shape {tuple(data['out'].shape)}; expected (2, 10).")
    return passed("Model(**model_config) builds from your model_config.yaml and returns (2, 10) logits.")


# --- augmentation --------------------------------------------------------------------------

def judge_augmentation_random(found):
    if set(found) != {"train", "test"}:
        return failed("The augmentation cell must build both datasets.CIFAR10(train=True, ...) and datasets.CIFAR10(train=False, ...); "
                      f"it built: {', '.join(sorted(found)) or 'none'}.")
    train_random = sorted({t for t in found["train"]["transforms"] if t in RANDOM_TRANSFORMS})
    test_random = sorted({t for t in found["test"]["transforms"] if t in RANDOM_TRANSFORMS})
    if len(train_random) < 3:
        return failed(f"The training pipeline has {len(train_random)} kind(s) of random augmentation "
                      f"({', '.join(train_random) or 'none'}); at least 3 different ones are required.")
    if test_random:
        return failed(f"The test pipeline contains random transforms ({', '.join(test_random)}); test data must not be augmented.")
    return passed(f"Training augmentations: {', '.join(train_random)}.")


def judge_augmentation_output(found):
    for split in ("train", "test"):
        if split not in found:
            return failed(f"No {split} dataset was built in the augmentation cell.")
        sample = found[split]["sample"]
        if "error" in sample:
            return failed(f"Loading one {split} image through your pipeline raised an error:\n{sample['error']}")
        if sample["type"] != "Tensor" or sample["dtype"] != "float32" or sample["shape"] != [3, 32, 32]:
            got = sample["type"] if sample["type"] != "Tensor" else f"a {sample['dtype']} tensor of shape {tuple(sample['shape'])}"
            return failed(f"A {split} image comes out as {got}; expected a float32 tensor of shape (3, 32, 32).")
        if sample["min"] < -0.55 or sample["max"] > 0.55:
            return failed(f"A {split} image's values range over [{sample['min']:.2f}, {sample['max']:.2f}]; "
                          "expected [-0.5, 0.5], as the given test pipeline produces.")
    if not found["test"]["sample"]["repeatable"]:
        return failed("The test pipeline gives a different tensor each time for the same image; it must be deterministic.")
    return passed("Both pipelines give float32 (3, 32, 32) tensors in [-0.5, 0.5].")


# --- experiments table and configs ------------------------------------------------------------

def _literal(value):
    """A table cell as Python data: Excel keeps lists and dicts as their text."""
    if isinstance(value, str):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return value


def _same(a, b) -> bool:
    a, b = _literal(a), _literal(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _records(table):
    return [dict(zip(table["columns"], row)) for row in table["rows"]]


def _accuracy(value):
    """A test accuracy as a fraction; percentages (e.g. 87.9) are read as such."""
    value = _literal(value)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        return None
    return value / 100 if 1 < value <= 100 else value


def judge_table_index(data):
    table = data["table"]
    if table["index_name"] != "name":
        return failed(f"The table's index is called {table['index_name']!r}; it must be called 'name' (table.index.name = 'name').")
    bad = [v for v in table["index"] if not (isinstance(v, str) and re.fullmatch(r"\d{2}", v))]
    if bad:
        return failed(f"Index values must be the experiment folder names as two-digit text ('00', '01', ...); found {bad[0]!r}.")
    if len(set(table["index"])) != len(table["index"]):
        return failed("Two rows of the table share a name; each experiment appears once.")
    return passed(f"Index 'name' with {len(table['index'])} two-digit experiment names.")


def judge_table_columns(data):
    table, configs = data["table"], data["configs"]
    wanted = []
    for name in ("model_config.yaml", "train_config.yaml"):
        if isinstance(configs.get(name), dict):
            wanted += list(configs[name])
    wanted += list(METRICS)
    missing = [c for c in wanted if c not in table["columns"]]
    if missing:
        return failed(f"experiments.xlsx lacks the column(s) {', '.join(missing)}; there must be one column per "
                      "model_config and train_config key, plus train_loss, test_loss, train_acc and test_acc.")
    return passed(f"All {len(wanted)} expected columns are present.")


def judge_table_values(data):
    rows = _records(data["table"])
    if not rows:
        return failed("experiments.xlsx has no rows.")
    for i, row in enumerate(rows):
        for metric in METRICS:
            value = _literal(row.get(metric))
            if metric not in row:
                continue  # the columns check reports it
            if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
                return failed(f"Row {data['table']['index'][i]!r}: {metric} is {value!r}; expected a number.")
            if metric.endswith("acc") and not 0 <= value <= 1:
                return failed(f"Row {data['table']['index'][i]!r}: {metric} is {value}; accuracies are fractions in [0, 1], as the Tracker records them.")
    return passed(f"{len(rows)} rows with numeric losses and accuracies in [0, 1].")


def _best_row(data):
    rows = _records(data["table"])
    scored = [(acc, i) for i, row in enumerate(rows) if (acc := _accuracy(row.get("test_acc"))) is not None]
    if not scored:
        return None, None
    acc, i = max(scored)
    return rows[i], data["table"]["index"][i]


def judge_best_configs(data):
    row, name = _best_row(data)
    if row is None:
        return failed("No row of experiments.xlsx has a numeric test_acc, so the best experiment is unknown.")
    for file in ("model_config.yaml", "train_config.yaml"):
        config = data["configs"].get(file)
        if not isinstance(config, dict):
            return failed(f"{file} is missing or is not a dictionary.")
        for key, value in config.items():
            if key in row and not _same(row[key], value):
                return failed(f"{file} says {key}={value!r}, but the best experiment ({name}) has {key}={_literal(row[key])!r}; "
                              "submit the best experiment's configs.")
    return passed(f"model_config.yaml and train_config.yaml match the best experiment, {name}.")


def _flag(value):
    value = _literal(value)
    return value if isinstance(value, bool) else None


def judge_experiments(data):
    rows = _records(data["table"])
    combos = {(_flag(r.get("batchnorm")), _flag(r.get("residual"))) for r in rows}
    missing = [label for combo, label in (((False, True), "batchnorm=False"), ((True, False), "residual=False"),
                                          ((False, False), "both False")) if combo not in combos]
    if len(rows) < 5 or missing:
        found = f"{len(rows)} experiment(s)" + (f", none with {', '.join(missing)}" if missing else "")
        return failed(f"At least 5 experiments are required, including one with batchnorm=False, one with residual=False "
                      f"and one with both False; found {found}.")
    return passed(f"{len(rows)} experiments, including the three ablations.")


def judge_accuracy(data):
    row, name = _best_row(data)
    if row is None:
        return failed("No numeric test_acc in experiments.xlsx.", value=0.0)
    acc = _accuracy(row["test_acc"])
    return passed(f"Best test accuracy {acc:.2%} (experiment {name}), as reported in experiments.xlsx.", value=acc)


# --- the public checks, in rubric order (hidden ones: hidden_checks.py) ------------------------------

_block_details = dict(probe="block_details", args={"configs": DETAIL_CONFIGS}, cells=("resnet",))
MODEL_DETAILS = dict(probe="model_details", args={"configs": MODEL_CONFIGS, "sizes": MODEL_SIZES}, cells=("resnet",))
_files = ("experiments.xlsx", "model_config.yaml", "train_config.yaml")


CHECKS = [
    Check("block.output_shapes", "block_shapes", judge_block_shapes, {"grid": SHAPE_GRID}, cells=("resnet",)),
    Check("block.strides", judge=judge_block_strides, **_block_details),
    Check("block.kernels", judge=judge_block_kernels, **_block_details),
    Check("block.batchnorm", judge=judge_block_batchnorm, **_block_details),
    Check("block.shortcut", judge=judge_block_shortcut, **_block_details),
    Check("block.functional_activations", judge=judge_block_functional_modules, **_block_details),
    Check("block.all_parameters_used", judge=judge_block_gradients, **_block_details),
    Check("block.no_parameters_in_forward", judge=judge_block_no_new_params, **_block_details),
    Check("block.matches_reference", judge=judge_block_reference, **_block_details),
    Check("model.layer0", judge=judge_model_layer0, **MODEL_DETAILS),
    Check("model.blocks", judge=judge_model_blocks, **MODEL_DETAILS),
    Check("model.logits", judge=judge_model_logits, **MODEL_DETAILS),
    Check("model.from_config", "model_from_config", judge_model_from_config, cells=("resnet",), files=("model_config.yaml",)),
    Check("augmentation.random", "augmentation", judge_augmentation_random, cells=("augmentation",)),
    Check("augmentation.output", "augmentation", judge_augmentation_output, cells=("augmentation",)),
    Check("training.experiments", "submission_files", judge_experiments, files=_files),
    Check("training.best_accuracy", "submission_files", judge_accuracy, files=_files),
    Check("table.index", "submission_files", judge_table_index, files=_files),
    Check("table.columns", "submission_files", judge_table_columns, files=_files),
    Check("table.values", "submission_files", judge_table_values, files=_files),
    Check("table.best_configs", "submission_files", judge_best_configs, files=_files),
]
