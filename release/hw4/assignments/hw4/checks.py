"""HW4 checks: how the grader judges what the probes measured (see docs/checks.md).

Block and Model are measured per setting and per part (structure without forward,
eval output, one training step, outputs with grader-seeded weights), so each check
reads only what its own cause shows. Points are in rubric.yaml.
"""
from __future__ import annotations

import torch.nn.functional as F

from checklib import data, judges, tables
from checklib.checks import Check, failed, passed
from checklib.forward import Role, Weights, roles_data, seeded_input

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


describe = judges.keywords  # "in_channels=3, expand=2, ..."
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


def judge_model_from_config(data):
    if list(data["out"].shape) != [2, 10]:
        return failed(f"Model(**model_config) from your model_config.yaml returned shape {tuple(data['out'].shape)}; expected (2, 10).")
    return passed("Model(**model_config) builds from your model_config.yaml and returns (2, 10) logits.")


# --- experiments table (checklib.tables), and the ablations asked for ------------------------------

def judge_experiments(table):
    rows = tables.records(table)
    flag = lambda v: v if isinstance(v := judges.literal(v), bool) else None
    combos = {(flag(r.get("batchnorm")), flag(r.get("residual"))) for r in rows}
    missing = [label for combo, label in (((False, True), "batchnorm=False"), ((True, False), "residual=False"),
                                          ((False, False), "both False")) if combo not in combos]
    if len(rows) < 5 or missing:
        found = f"{len(rows)} experiment(s)" + (f", none with {', '.join(missing)}" if missing else "")
        return failed(f"At least 5 experiments are required, including one with batchnorm=False, one with residual=False "
                      f"and one with both False; found {found}.")
    return passed(f"{len(rows)} experiments, including the three ablations.")


# --- the public checks, in rubric order (hidden ones: hidden_checks.py) ------------------------------

_block = lambda test, what, part="structure": judges.each_setting(part, test, what, describe, errors="skip")
_model = lambda test, what, part: judges.each_setting(part, test, what, describe, errors="skip")
_table = dict(probe="experiments_table", files=("experiments.xlsx",))
CONFIGS = ("model_config.yaml", "train_config.yaml")
_files = dict(probe="submission_files", files=("experiments.xlsx", *CONFIGS))

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
    # The Model's own level: what lies inside each Block is the Block checks' concern.
    Check("model.functional_activations", judge=judges.no_stored_modules(what="Model activations", describe=describe, inside="Block"), **MODEL),
    Check("model.all_parameters_used", judge=judges.all_parameters_used("Model unused modules", describe, inside="Block"), **MODEL),
    Check("model.no_modules_in_forward", judge=judges.no_modules_created_in_forward("Model layers created in forward", describe, inside="Block"), **MODEL),
    Check("model.from_config", "model_from_config", judge_model_from_config, cells=("resnet",), files=("model_config.yaml",)),
    Check("augmentation.random", "augmentation", data.judge_random_augmentation(3, "datasets.CIFAR10"), cells=("augmentation",)),
    Check("augmentation.output", "augmentation", data.judge_transform_output("float32", [3, 32, 32], -0.5, 0.5), cells=("augmentation",)),
    Check("training.experiments", judge=judge_experiments, **_table),
    Check("training.best_accuracy", judge=tables.best_value("test_acc"), **_table),
    Check("table.index", judge=tables.index_named("name", r"\d{2}", "the experiment folder names as two-digit text ('00', '01', ...)"), **_table),
    Check("table.columns", judge=tables.columns_from_configs(CONFIGS, METRICS), **_files),
    Check("table.values", judge=tables.numeric(METRICS, ("train_acc", "test_acc")), **_table),
    Check("table.best_configs", judge=tables.best_configs(CONFIGS, "test_acc"), **_files),
]
