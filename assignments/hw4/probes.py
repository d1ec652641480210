"""HW4 probes: what the sandbox measures of the student's Block, Model, augmentation
and files. They decide nothing: checks.py judges it in the grader.

Block and Model are measured by the library's generic probe (`probe_modules`:
each setting and each part on its own, with grader-seeded inputs and weights).
"""
from __future__ import annotations

import types

import torch

from checklib.forward import as_tensor, probe_modules  # noqa: F401 (probe_modules is called by name)
from checklib.probes import ProbeError, attempt, lookup, read_table, read_yaml

TEST_IMAGE = 32


def model_from_config(ns):
    """Model(**model_config) from the submitted model_config.yaml, run once."""
    cfg = read_yaml("model_config.yaml")
    if not isinstance(cfg, dict):
        raise ProbeError("model_config.yaml does not hold a dictionary of Model arguments.")
    model = lookup(ns, "Model")(**cfg)
    model.eval()
    with torch.no_grad():
        return {"config": cfg, "out": as_tensor(model(torch.randn(2, 3, TEST_IMAGE, TEST_IMAGE)))}


# --- data augmentation ---------------------------------------------------------------

class _CapturedCIFAR10(torch.utils.data.Dataset):
    """Stands in for datasets.CIFAR10: downloads nothing and serves a few random
    images through the student's transform."""

    def __init__(self, root=None, train=True, transform=None, target_transform=None, download=False):
        self.train, self.transform = train, transform
        self.images = torch.randint(0, 256, (8, TEST_IMAGE, TEST_IMAGE, 3), dtype=torch.uint8)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image

        image = Image.fromarray(self.images[i].numpy())
        return (self.transform(image) if self.transform else image), i


def stub_datasets(ns):
    """Before the augmentation cell: make `datasets.CIFAR10` the capturing stand-in."""
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
        return out + [name for t in inner for name in _flatten(t)]
    return [type(transform).__name__]


def _sample(dataset):
    x, _ = dataset[0]
    if not isinstance(x, torch.Tensor):
        return {"type": type(x).__name__}
    again, _ = dataset[0]
    same = isinstance(again, torch.Tensor) and again.shape == x.shape and bool(torch.equal(again, x))
    x = x.detach().float()
    return {"type": "Tensor", "dtype": str(dataset[0][0].dtype).replace("torch.", ""), "shape": list(x.shape),
            "min": float(x.min()), "max": float(x.max()), "repeatable": same}


def augmentation(ns):
    """The transforms of the train and test datasets the augmentation cell built."""
    return {("train" if ds.train else "test"): {"transforms": _flatten(ds.transform) if ds.transform else [],
                                                "sample": attempt(lambda: _sample(ds))}
            for ds in ns.get("__captured_datasets__", [])}


# --- submitted files -----------------------------------------------------------------

def experiments_table(ns):
    return read_table("experiments.xlsx")


def submission_files(ns):
    """The experiments table and both config files, for the checks that compare them."""
    return {"table": read_table("experiments.xlsx"),
            "configs": {name: read_yaml(name) for name in ("model_config.yaml", "train_config.yaml")}}
