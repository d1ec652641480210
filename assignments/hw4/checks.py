"""HW4 checks: how the grader judges what the probes measured (see docs/checks.md).

Block and Model are measured per setting and per part (structure without forward,
eval output, one training step, outputs with grader-seeded weights), so each check
reads only what its own cause shows. Points are in rubric.yaml.
"""
from __future__ import annotations

import re

import torch.nn.functional as F

from checklib import judges
from checklib.checks import Check, failed, passed
from checklib.forward import Role, Weights, roles_data, seeded_input

RANDOM_TRANSFORMS = {"RandomCrop", "RandomResizedCrop", "RandomHorizontalFlip", "RandomVerticalFlip", "ColorJitter",
                     "RandomRotation", "RandomAffine", "RandomPerspective", "RandomErasing", "RandomGrayscale",
                     "RandomInvert", "RandomPosterize", "RandomSolarize", "RandomAdjustSharpness", "RandomAutocontrast",
                     "RandomEqualize", "RandAugment", "AutoAugment", "TrivialAugmentWide", "AugMix", "ElasticTransform",
                     "GaussianBlur", "GaussianNoise", "RandomPhotometricDistort", "RandomChannelPermutation",
                     "RandomZoomOut", "RandomApply", "RandomChoice", "RandomOrder", "ScaleJitter", "RandomResize",
                     "JPEG", "CutMix", "MixUp"}
METRICS = ("train_loss", "test_loss", "train_acc", "test_acc")
SEED = 1234


# --- the specification: a Block's layers and function, with the grader's weights -------------

def block_roles(kw, prefix=""):
    c, e = kw["in_channels"], kw["expand"]
    def unit(name, c_in):
        bn = [Role(f"{prefix}{name}_bn", "BatchNorm2d", (c * e,))] if kw["batchnorm"] else []
        return [Role(prefix + name, "Conv2d", (c * e, c_in, 3, 3))] + bn
    return unit("conv1", c) + unit("conv2", c * e) + (unit("shortcut", c) if kw["residual"] and e > 1 else [])


def block_reference(kw, w, x, training, prefix=""):
    """conv1 -> [bn1] -> act -> conv2 -> [bn2] (+ shortcut: x, or act([bn](conv(x)))) -> act."""
    act = getattr(F, kw["activation"])
    def unit(t, name):
        t = w.conv(t, prefix + name)
        return w.bn(t, f"{prefix}{name}_bn", training) if kw["batchnorm"] else t
    out = unit(act(unit(x, "conv1")), "conv2")
    if kw["residual"]:
        out = out + (act(unit(x, "shortcut")) if kw["expand"] > 1 else x)
    return act(out)


def layer0_roles(kw):
    b = kw["base_channels"]
    return [Role("layer0", "Conv2d", (b, 3, 3, 3))] + ([Role("layer0_bn", "BatchNorm2d", (b,))] if kw["batchnorm"] else [])


def block(c, e, act, bn, res, size, **extra):
    kw = dict(in_channels=c, expand=e, activation=act, batchnorm=bn, residual=res)
    return dict(kwargs=kw, input=[2, c, size, size], roles=roles_data(block_roles(kw)), **extra)


def model(base, expands, act, bn, res, size=32, batch=4):
    kw = dict(base_channels=base, expands=expands, activation=act, batchnorm=bn, residual=res)
    return dict(kwargs=kw, input=[batch, 3, size, size], roles=roles_data(layer0_roles(kw)), capture="Block")


def describe(s):
    return ", ".join(f"{k}={v!r}" for k, v in s["kwargs"].items())


SHAPE_GRID = [block(c, e, a, bn, r, s) for c in (3, 8) for e in (1, 2, 4) for a in ("relu", "gelu", "tanh")
              for bn in (False, True) for r in (False, True) for s in (8, 16)]
DETAILS = [block(4, e, a, bn, r, 8) for e in (1, 2) for bn in (False, True) for r in (False, True)
           for a in (("relu", "tanh") if (e, bn, r) == (2, True, True) else ("relu",))] + [
          block(4, 2, "gelu", False, True, 8), block(4, 1, "silu", True, True, 8)]
MODELS = [model(4, [2, 2], "relu", True, True), model(4, [1, 2, 2], "tanh", False, False)]  # 8x8 before pooling

SHAPES = dict(probe="probe_modules", args={"name": "Block", "settings": SHAPE_GRID, "seed": SEED, "parts": ["forward"]},
              cells=("resnet",))
BLOCKS = dict(probe="probe_modules", args={"name": "Block", "settings": DETAILS, "seed": SEED}, cells=("resnet",))
MODEL = dict(probe="probe_modules", args={"name": "Model", "settings": MODELS, "seed": SEED}, cells=("resnet",))


# --- Block -----------------------------------------------------------------------------------

def _convs(rows):
    return [r for r in rows if r["kind"] == "Conv2d"]


def _shape(out, s):
    c, e, size = s["kwargs"]["in_channels"], s["kwargs"]["expand"], s["input"][-1]
    want = [2, c * e, size // e, size // e]
    if list(out.shape) != want:
        return f"an input of shape {tuple(s['input'])} gave an output of shape {tuple(out.shape)}; expected {tuple(want)}."
    if s["kwargs"]["activation"] == "tanh" and not (-1 <= float(out.min()) and float(out.max()) <= 1):
        return "the output leaves [-1, 1], but a block that ends with tanh must stay in it."
    return None


def _strides(rows, s):
    c, e = s["kwargs"]["in_channels"], s["kwargs"]["expand"]
    for conv in _convs(rows):
        want = e if conv["in_channels"] == c else 1
        if conv.get("stride") != [want, want]:
            role = f"conv1 (and a projection shortcut) must use stride {e}" if want > 1 else \
                "expected 1 (only conv1 and the shortcut shrink the image)"
            return f"the convolution `{conv['name']}` has stride {tuple(conv.get('stride') or ())}; {role}."
    return None


def _kernels(rows, s):
    bad = next((c for c in _convs(rows) if c.get("kernel_size") != [3, 3]), None)
    return None if bad is None else \
        f"the convolution `{bad['name']}` has kernel size {tuple(bad['kernel_size'])}; every nn.Conv2d must use kernel_size=3."


def _batchnorms(rows, s):
    kw = s["kwargs"]
    found, want = sum("BatchNorm" in r["kind"] for r in rows), sum(r[1] == "BatchNorm2d" for r in s["roles"])
    if found == want:
        return None
    where = "none when batchnorm=False" if not kw["batchnorm"] else f"one after each of its {want} convolutions (the shortcut's included)"
    return f"the block holds {found} batch-norm module(s); expected {want}: {where}."


def _shortcut(rows, s):
    kw, convs = s["kwargs"], _convs(rows)
    reading = sum(c["in_channels"] == kw["in_channels"] for c in convs)
    if not kw["residual"] and len(convs) != 2:
        return f"the block holds {len(convs)} convolutions; with residual=False there is no shortcut, so only conv1 and conv2."
    if kw["residual"] and kw["expand"] == 1 and len(convs) != 2:
        return f"the block holds {len(convs)} convolutions; with expand=1 the shortcut is the identity (no convolution)."
    if kw["residual"] and kw["expand"] > 1 and (len(convs) != 3 or reading != 2):
        return (f"the block holds {len(convs)} convolutions ({reading} reading the input); with expand={kw['expand']} "
                "the shortcut needs its own convolution from the input.")
    return None


EXPLAIN = ("Check the order of the steps conv1 -> [bn1] -> activation -> conv2 -> [bn2] -> (+ shortcut) -> activation, "
           "that every batch-norm is applied, that the `activation` given is used everywhere (a projection shortcut "
           "ends with it too), and that no softmax or other extra step is applied.")


# --- Model -------------------------------------------------------------------------------------

def _outside_blocks(rows, names):
    """`names` (modules or parameters) that are not inside a Block: the Block checks judge those."""
    blocks = [r["name"] for r in rows if r["type"] == "Block"]
    return [n for n in names if not any(n == b or n.startswith(b + ".") for b in blocks)]


def _layer0(seeded, s):
    """The first Block's input, captured with seeded layer0 weights, is act([bn](conv(x))) at full size."""
    if "unmatched" in seeded:
        return f"layer0 could not be found: {seeded['unmatched']}."
    kw, x = s["kwargs"], seeded_input(s["input"], SEED)
    def expected(w, training):
        out = w.conv(x, "layer0", 1, 1)
        return getattr(F, kw["activation"])(w.bn(out, "layer0_bn", training) if kw["batchnorm"] else out)
    for run in seeded["runs"]:
        w = Weights(s["roles"], SEED, run)
        wants = {mode: expected(w, mode == "train") for mode in run["captured"]}
        if run["captured"] and all(got.shape == wants[m].shape and (got - wants[m]).abs().max() < 1e-4
                                   for m, got in run["captured"].items()):
            return None
    got = seeded["runs"][0]["captured"].get("eval")
    return (f"the first Block receives {tuple(got.shape) if got is not None else 'nothing'}, which is not "
            f"conv(3 -> {kw['base_channels']}, kernel 3, stride 1, padding 1) -> [batch norm] -> {kw['activation']} "
            "of the image: layer0 must keep the image size and use the `activation` given.")


def _blocks(value, s):
    (rows, _), kw = value, s["kwargs"]  # judged on models whose forward returns a tensor
    blocks = [r for r in rows if r["type"] == "Block"]
    if len(blocks) != len(kw["expands"]):
        return f"the model holds {len(blocks)} Block(s); expected one per entry of expands ({len(kw['expands'])})."
    channels = kw["base_channels"]
    for i, (b, e) in enumerate(zip(blocks, kw["expands"])):
        convs = _convs(r for r in rows if r["name"].startswith(b["name"] + "."))
        found = (convs[0]["in_channels"], max(c["out_channels"] for c in convs)) if convs else (None, None)
        if found != (channels, channels * e):
            return f"Block {i} maps {found[0]} to {found[1]} channels; expected {channels} to {channels * e}."
        channels *= e
    return None


def _logits(value, s):
    rows, out = value
    if any("Softmax" in r["kind"] for r in rows):
        return "the model holds a softmax module; nn.CrossEntropyLoss expects raw scores (logits)."
    problem = judges.probability_like(out)
    return f"{problem}. Return the linear layer's output (logits)." if problem else None


def _model_hygiene(value, s):
    rows, step = value
    stored = _outside_blocks(rows, [r["name"] for r in rows if r["kind"] in judges.ACTIVATIONS | judges.POOLINGS])
    return f"the model stores {', '.join(stored)} as module(s); call activations and pooling in forward (F.*)." if stored else None


def _model_unused(value, s):
    rows, step = value
    unused = _outside_blocks(rows, step["without_gradient"])
    return f"the parameter(s) {', '.join(unused)} received no gradient after a backward pass: their module is never used." if unused else None


def _model_created(value, s):
    rows, step = value
    new = [x for x in step["after"] if x not in step["before"]]
    new = [x for x in new if _outside_blocks(rows, [x.split(":")[0].split(" ")[0]])]
    return (f"calling forward created {', '.join(new[:4])}; create every layer in __init__: train() builds the "
            "optimizer before the first forward, so a layer created later is never trained.") if new else None


def judge_model_from_config(data):
    if list(data["out"].shape) != [2, 10]:
        return failed(f"Model(**model_config) from your model_config.yaml returned shape {tuple(data['out'].shape)}; expected (2, 10).")
    return passed("Model(**model_config) builds from your model_config.yaml and returns (2, 10) logits.")


# --- augmentation ------------------------------------------------------------------------------

def judge_augmentation_random(found):
    if set(found) != {"train", "test"}:
        return failed("The augmentation cell must build both datasets.CIFAR10(train=True, ...) and datasets.CIFAR10(train=False, ...); "
                      f"it built: {', '.join(sorted(found)) or 'none'}.")
    train_random, test_random = ([t for t in dict.fromkeys(found[k]["transforms"]) if t in RANDOM_TRANSFORMS]
                                 for k in ("train", "test"))
    if len(train_random) < 3:
        return failed(f"The training pipeline has {len(train_random)} kind(s) of random augmentation "
                      f"({', '.join(train_random) or 'none'}); at least 3 different ones are required.")
    if test_random:
        return failed(f"The test pipeline contains random transforms ({', '.join(test_random)}); test data must not be augmented.")
    return passed(f"Training augmentations: {', '.join(train_random)}.")


def judge_augmentation_output(found):
    for split in ("train", "test"):
        sample = found.get(split, {}).get("sample")
        if sample is None:
            return failed(f"No {split} dataset was built in the augmentation cell.")
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

def _records(table):
    return [dict(zip(table["columns"], row)) for row in table["rows"]]


def _accuracy(value):
    """A test accuracy as a fraction; percentages (e.g. 87.9) are read as such."""
    value = judges.number(value)
    return None if value is None else value / 100 if 1 < value <= 100 else value


def judge_table_index(table):
    if table["index_name"] != "name":
        return failed(f"The table's index is called {table['index_name']!r}; it must be called 'name' (table.index.name = 'name').")
    bad = [v for v in table["index"] if not (isinstance(v, str) and re.fullmatch(r"\d{2}", v))]
    if bad:
        return failed(f"Index values must be the experiment folder names as two-digit text ('00', '01', ...); found {bad[0]!r}.")
    if len(set(table["index"])) != len(table["index"]):
        return failed("Two rows of the table share a name; each experiment appears once.")
    return passed(f"Index 'name' with {len(table['index'])} two-digit experiment names.")


def judge_table_columns(data):
    configs = data["configs"]
    wanted = [k for name in ("model_config.yaml", "train_config.yaml") if isinstance(configs.get(name), dict)
              for k in configs[name]] + list(METRICS)
    missing = [c for c in wanted if c not in data["table"]["columns"]]
    if missing:
        return failed(f"experiments.xlsx lacks the column(s) {', '.join(missing)}; there must be one column per "
                      "model_config and train_config key, plus train_loss, test_loss, train_acc and test_acc.")
    return passed(f"All {len(wanted)} expected columns are present.")


def judge_table_values(table):
    rows = _records(table)
    if not rows:
        return failed("experiments.xlsx has no rows.")
    for name, row in zip(table["index"], rows):
        for metric in (m for m in METRICS if m in row):  # a missing column: the columns check reports it
            value = judges.number(row[metric])
            if value is None:
                return failed(f"Row {name!r}: {metric} is {row[metric]!r}; expected a number.")
            if metric.endswith("acc") and not 0 <= value <= 1:
                return failed(f"Row {name!r}: {metric} is {value}; accuracies are fractions in [0, 1], as the Tracker records them.")
    return passed(f"{len(rows)} rows with numeric losses and accuracies in [0, 1].")


def _best_row(table):
    scored = [(acc, i) for i, row in enumerate(_records(table)) if (acc := _accuracy(row.get("test_acc"))) is not None]
    if not scored:
        return None, None, None
    acc, i = max(scored)
    return _records(table)[i], table["index"][i], acc


def judge_best_configs(data):
    row, name, _ = _best_row(data["table"])
    if row is None:
        return failed("No row of experiments.xlsx has a numeric test_acc, so the best experiment is unknown.")
    for file in ("model_config.yaml", "train_config.yaml"):
        config = data["configs"].get(file)
        if not isinstance(config, dict):
            return failed(f"{file} is missing or is not a dictionary.")
        wrong = next((k for k, v in config.items() if k in row and not judges.same(row[k], v, rel=1e-9)), None)
        if wrong:
            return failed(f"{file} says {wrong}={config[wrong]!r}, but the best experiment ({name}) has "
                          f"{wrong}={judges.literal(row[wrong])!r}; submit the best experiment's configs.")
    return passed(f"model_config.yaml and train_config.yaml match the best experiment, {name}.")


def judge_experiments(table):
    rows = _records(table)
    flag = lambda v: v if isinstance(v := judges.literal(v), bool) else None
    combos = {(flag(r.get("batchnorm")), flag(r.get("residual"))) for r in rows}
    missing = [label for combo, label in (((False, True), "batchnorm=False"), ((True, False), "residual=False"),
                                          ((False, False), "both False")) if combo not in combos]
    if len(rows) < 5 or missing:
        found = f"{len(rows)} experiment(s)" + (f", none with {', '.join(missing)}" if missing else "")
        return failed(f"At least 5 experiments are required, including one with batchnorm=False, one with residual=False "
                      f"and one with both False; found {found}.")
    return passed(f"{len(rows)} experiments, including the three ablations.")


def judge_accuracy(table):
    row, name, acc = _best_row(table)
    if row is None:
        return failed("No numeric test_acc in experiments.xlsx.", value=0.0)
    return passed(f"Best test accuracy {acc:.2%} (experiment {name}), as reported in experiments.xlsx.", value=acc)


# --- the public checks, in rubric order (hidden ones: hidden_checks.py) ------------------------------

_block = lambda test, what, part="structure": judges.each_setting(part, test, what, describe, errors="skip")
_model = lambda test, what, part: judges.each_setting(part, test, what, describe, errors="skip")
_table = dict(probe="experiments_table", files=("experiments.xlsx",))
_files = dict(probe="submission_files", files=("experiments.xlsx", "model_config.yaml", "train_config.yaml"))

CHECKS = [
    Check("block.output_shapes", judge=judges.each_setting("forward", _shape, "Block output shape", describe), **SHAPES),
    Check("block.strides", judge=_block(_strides, "Block strides"), **BLOCKS),
    Check("block.kernels", judge=_block(_kernels, "Block kernel sizes"), **BLOCKS),
    Check("block.batchnorm", judge=_block(_batchnorms, "Block batch-norm modules"), **BLOCKS),
    Check("block.shortcut", judge=_block(_shortcut, "Block shortcut"), **BLOCKS),
    Check("block.functional_activations", judge=judges.no_stored_modules(what="Block activations", describe=describe), **BLOCKS),
    Check("block.all_parameters_used", judge=judges.all_parameters_used("Block unused modules", describe), **BLOCKS),
    Check("block.no_parameters_in_forward", judge=judges.no_modules_created_in_forward("Block parameters", describe), **BLOCKS),
    Check("block.matches_reference", judge=judges.matches_seeded_reference(
        lambda s, w, x, training: block_reference(s["kwargs"], w, x, training), lambda s: s["roles"], SEED,
        lambda s: s["input"], "Block computation", describe, explain=EXPLAIN, extra_kinds=("Conv", "BatchNorm")), **BLOCKS),
    Check("model.layer0", judge=_model(_layer0, "Model layer0", "seeded"), **MODEL),
    Check("model.blocks", judge=_model(_blocks, "Model blocks", ("structure", "forward")), **MODEL),
    Check("model.logits", judge=_model(_logits, "Model output is logits", ("structure", "forward")), **MODEL),
    Check("model.functional_activations", judge=_model(_model_hygiene, "Model activations", ("structure", "step")), **MODEL),
    Check("model.all_parameters_used", judge=_model(_model_unused, "Model unused modules", ("structure", "step")), **MODEL),
    Check("model.no_modules_in_forward", judge=_model(_model_created, "Model layers created in forward", ("structure", "step")), **MODEL),
    Check("model.from_config", "model_from_config", judge_model_from_config, cells=("resnet",), files=("model_config.yaml",)),
    Check("augmentation.random", "augmentation", judge_augmentation_random, cells=("augmentation",)),
    Check("augmentation.output", "augmentation", judge_augmentation_output, cells=("augmentation",)),
    Check("training.experiments", judge=judge_experiments, **_table),
    Check("training.best_accuracy", judge=judge_accuracy, **_table),
    Check("table.index", judge=judge_table_index, **_table),
    Check("table.columns", judge=judge_table_columns, **_files),
    Check("table.values", judge=judge_table_values, **_table),
    Check("table.best_configs", judge=judge_best_configs, **_files),
]
