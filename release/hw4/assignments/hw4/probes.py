"""HW4 probes: what the sandbox measures of the student's Block, Model, augmentation
and files. They decide nothing: checks.py judges it in the grader.

Block and Model are measured by the library's generic probe (`probe_modules`:
each setting and each part on its own, with grader-seeded inputs and weights).
"""
from __future__ import annotations

import torch

from checklib.data import capture_datasets, captured_transforms
from checklib.forward import as_tensor, probe_modules  # noqa: F401 (probe_modules is called by name)
from checklib.probes import ProbeError, lookup, read_table, read_yaml

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


# --- data augmentation (checklib.data: CIFAR10 replaced by a capturing stand-in) -------------

def stub_datasets(ns):
    capture_datasets(ns, "datasets", "CIFAR10", TEST_IMAGE)


def augmentation(ns):
    return captured_transforms(ns)


# --- submitted files -----------------------------------------------------------------

def experiments_table(ns):
    return read_table("experiments.xlsx")


def submission_files(ns):
    """The experiments table and both config files, for the checks that compare them."""
    return {"table": read_table("experiments.xlsx"),
            "configs": {name: read_yaml(name) for name in ("model_config.yaml", "train_config.yaml")}}
