"""HW4 probes: measurements of the student's Block, Model, augmentation and files.

These run inside the sandbox, next to the student's code, and return plain
data only. They decide nothing: `checks.py` judges what they return. Outputs
go back as the tensors themselves, so the grader reads shapes and values from
the data rather than from anything the student's objects say about themselves.
"""
from __future__ import annotations

import json
import math

import torch
from torch import nn

from checklib.probes import ProbeError, attempt, describe_modules, lookup, trace_leaf_calls

TEST_IMAGE = 32


def _block(ns, cfg):
    Block = lookup(ns, "Block")
    return Block(cfg["in_channels"], expand=cfg["expand"], activation=cfg["activation"],
                 batchnorm=cfg["batchnorm"], residual=cfg["residual"])


# --- Block ------------------------------------------------------------------------

def block_shapes(ns, grid):
    """Output shape and value range of a Block for every setting in `grid`."""
    def one(cfg):
        block = _block(ns, cfg)
        return {"out": block(torch.randn(2, cfg["in_channels"], cfg["size"], cfg["size"]))}
    return [{"cfg": cfg, **attempt(lambda: one(cfg))} for cfg in grid]


def _randomise_batchnorm(module):
    """Give every batch-norm non-default statistics, so a skipped one shows in the output."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                if m.affine:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.5, 0.5)
                if m.track_running_stats:
                    m.running_mean.normal_(0, 0.2)
                    m.running_var.uniform_(0.5, 1.5)


def block_details(ns, configs):
    """For each setting: the module inventory, a forward trace, the gradients of one
    backward pass, and the inputs, weights and outputs (train and eval mode) the
    grader needs to recompute the block with the student's own weights."""
    def one(cfg):
        block = _block(ns, cfg)
        _randomise_batchnorm(block)
        params_before = [name for name, _ in block.named_parameters()]
        state_train = {k: v.clone() for k, v in block.state_dict().items()}
        x = torch.randn(2, cfg["in_channels"], cfg["size"], cfg["size"])
        block.train()
        out_train, calls = trace_leaf_calls(block, x)
        out_train.float().sum().backward()
        no_grad = [name for name, p in block.named_parameters() if name in params_before and p.grad is None]
        params_after = [name for name, _ in block.named_parameters()]
        state_eval = {k: v.clone() for k, v in block.state_dict().items()}
        block.eval()
        with torch.no_grad():
            out_eval = block(x)
        return {"modules": describe_modules(block), "calls": calls, "params_before": params_before,
                "params_after": params_after, "no_grad": no_grad, "x": x, "out_train": out_train.detach(),
                "out_eval": out_eval, "state_train": state_train, "state_eval": state_eval}
    return [{"cfg": cfg, **attempt(lambda: one(cfg))} for cfg in configs]


# --- Model ------------------------------------------------------------------------

def model_details(ns, configs, sizes):
    """For each Model setting: a traced forward at 32x32, its Block instances, the
    output shape for each input size, and the output values (to spot a softmax)."""
    Model, Block = lookup(ns, "Model"), lookup(ns, "Block")

    def one(cfg):
        model = Model(**cfg)
        model.eval()
        with torch.no_grad():
            out, calls = trace_leaf_calls(model, torch.randn(4, 3, TEST_IMAGE, TEST_IMAGE))
            shapes = {str(s): attempt(lambda: {"out": model(torch.randn(2, 3, s, s))}) for s in sizes}
        blocks = []
        for name, sub in model.named_modules():
            if isinstance(sub, Block):
                convs = [m for m in sub.modules() if isinstance(m, nn.Conv2d)]
                blocks.append({"name": name, "in": convs[0].in_channels if convs else None,
                               "out": max((c.out_channels for c in convs), default=None)})
        return {"calls": calls, "blocks": blocks, "shapes": shapes, "out": out,
                "modules": [m["type"] for m in describe_modules(model)]}
    return [{"cfg": cfg, **attempt(lambda: one(cfg))} for cfg in configs]


def model_from_config(ns):
    """Build Model(**model_config) from the submitted model_config.yaml and run it once."""
    import yaml

    Model = lookup(ns, "Model")
    try:
        with open("model_config.yaml") as f:
            cfg = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as err:
        raise ProbeError(f"model_config.yaml could not be read: {err}")
    if not isinstance(cfg, dict):
        raise ProbeError("model_config.yaml does not hold a dictionary of Model arguments.")
    model = Model(**cfg)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, TEST_IMAGE, TEST_IMAGE))
    return {"config": json.loads(json.dumps(cfg, default=str)), "out": out}


# --- data augmentation ---------------------------------------------------------------

class _CapturedCIFAR10(torch.utils.data.Dataset):
    """Stands in for datasets.CIFAR10: records its arguments, downloads nothing, and
    serves a few random images through the student's transform."""

    def __init__(self, root=None, train=True, transform=None, target_transform=None, download=False):
        self.train, self.transform = train, transform
        self.images = torch.randint(0, 256, (8, TEST_IMAGE, TEST_IMAGE, 3), dtype=torch.uint8)
        self.targets = list(range(8))

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        from PIL import Image

        image = Image.fromarray(self.images[i].numpy())
        return (self.transform(image) if self.transform else image), self.targets[i]


def stub_datasets(ns):
    """Before the augmentation cell: make `datasets.CIFAR10` the capturing stand-in."""
    import types

    captured = []

    class CIFAR10(_CapturedCIFAR10):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            captured.append(self)

    ns["datasets"] = types.SimpleNamespace(CIFAR10=CIFAR10)
    ns["__captured_datasets__"] = captured


def _flatten(transform):
    """The transforms inside Compose / RandomApply / RandomChoice / RandomOrder, in order."""
    inner = getattr(transform, "transforms", None)
    if isinstance(inner, (list, tuple)):
        out = [type(transform).__name__] if type(transform).__name__ != "Compose" else []
        for t in inner:
            out += _flatten(t)
        return out
    return [type(transform).__name__]


def _sample(dataset):
    x, _ = dataset[0]
    if not isinstance(x, torch.Tensor):
        return {"type": type(x).__name__}
    again, _ = dataset[0]
    same = isinstance(again, torch.Tensor) and again.shape == x.shape and bool(torch.equal(again, x))
    x = x.detach()
    return {"type": "Tensor", "dtype": str(x.dtype).replace("torch.", ""), "shape": list(x.shape),
            "min": float(x.float().min()), "max": float(x.float().max()), "mean": float(x.float().mean()),
            "repeatable": same}


def augmentation(ns):
    """The transforms of the train and test datasets the augmentation cell built."""
    captured = ns.get("__captured_datasets__", [])
    found = {}
    for ds in captured:
        split = "train" if ds.train else "test"
        found[split] = {"transforms": _flatten(ds.transform) if ds.transform is not None else [],
                        "sample": attempt(lambda: _sample(ds))}
    return found


# --- submitted files -----------------------------------------------------------------

def _plain(value):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return None if isinstance(value, float) and math.isnan(value) else value
    if hasattr(value, "item"):
        return _plain(value.item())
    return str(value)


def experiments_table(ns):
    """experiments.xlsx as plain data: index name and values, columns, rows."""
    import pandas as pd

    try:
        table = pd.read_excel("experiments.xlsx", index_col=0, dtype={0: str})  # keep "00" as text
    except Exception as err:
        raise ProbeError(f"experiments.xlsx could not be read as an Excel table: {type(err).__name__}: {err}")
    return {"index_name": table.index.name, "index": [_plain(v) for v in table.index],
            "columns": [str(c) for c in table.columns],
            "rows": [[_plain(v) for v in row] for row in table.itertuples(index=False)]}


def config_files(ns):
    """model_config.yaml and train_config.yaml as plain data (None when missing)."""
    import yaml

    configs = {}
    for name in ("model_config.yaml", "train_config.yaml"):
        try:
            with open(name) as f:
                configs[name] = json.loads(json.dumps(yaml.safe_load(f), default=str))
        except FileNotFoundError:
            configs[name] = None
        except yaml.YAMLError as err:
            raise ProbeError(f"{name} is not valid YAML: {err}")
    return configs


def submission_files(ns):
    """The experiments table and both config files, for the table and training checks."""
    return {"table": experiments_table(ns), "configs": config_files(ns)}
