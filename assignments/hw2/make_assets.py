"""Regenerate (or verify) HW2's grading data from the reference solution.

    python assignments/hw2/make_assets.py           # write them
    python assignments/hw2/make_assets.py --check   # exit 1 if the stored ones differ

- digits50.json: the first 50 of scikit-learn's digits, the images the
  sandboxed checks train on (shipped to students: nothing secret);
- assets/expected_conv_out.pt: the course's expected output (seed 42, model built
  first, then the image) of the reference ConvClassifier, shipped to students
  for the notebook's self-test, as the course did;
- assets/expected_conv_out_hidden.pt: the same for the hidden settings of
  hidden_checks.py, for the grader only.
The reference ConvClassifier is the solution in source/hw2/HW2.ipynb.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import nbformat
import torch
import torch.nn.functional as F
from torch import nn

from checklib.runner import load_module_from

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SOURCE = ROOT / "source" / "hw2" / "HW2.ipynb"
SEED = 42
NORM_TOLERANCE = 1e-5  # a regenerated tensor may differ from the stored one by float noise only


def reference_classifier():
    """The ConvClassifier of the source notebook's solution cell."""
    nb = nbformat.read(SOURCE, as_version=4)
    cell = next(c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "conv_classifier")
    ns = {"torch": torch, "nn": nn, "F": F, "Sequence": Sequence}
    exec(compile(cell.source, f"{SOURCE}:conv_classifier", "exec"), ns)
    return ns["ConvClassifier"]


def expected_output(ConvClassifier, cfg) -> torch.Tensor:
    """The course's procedure, on the CPU in float32 (cfg: a setting of checks.conv)."""
    torch.manual_seed(SEED)
    cfg = cfg["kwargs"]
    net = ConvClassifier(tuple(cfg["in_size"]), cfg["out_classes"], filters=cfg["filters"],
                         pool_every=cfg["pool_every"], hidden_dims=cfg["hidden_dims"])
    image = torch.randint(low=0, high=256, size=tuple(cfg["in_size"]), dtype=torch.float)
    with torch.no_grad():
        return net(image.unsqueeze(0)).detach().clone()


def digits50() -> dict:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return {"source": "sklearn.datasets.load_digits(): the first 50 images (8x8, values 0..16) and their labels",
            "images": digits.images[:50].astype(int).reshape(50, 64).tolist(), "labels": digits.target[:50].tolist()}


def build() -> dict[str, object]:
    checks = load_module_from(HERE / "checks.py", "hw2_checks")
    hidden = load_module_from(HERE / "hidden_checks.py", "hw2_hidden_checks", public=checks)
    ConvClassifier = reference_classifier()
    return {
        "digits50.json": digits50(),
        f"assets/{checks.COURSE_ASSET}": expected_output(ConvClassifier, checks.COURSE_OUTPUT),
        f"assets/{hidden.HIDDEN_ASSET}": {cfg["name"]: expected_output(ConvClassifier, cfg) for cfg in hidden.HIDDEN_OUTPUTS},
    }


def differences(built: dict) -> list[str]:
    """What differs between freshly built assets and the stored ones."""
    problems = []
    for rel, value in built.items():
        path = HERE / rel
        if not path.is_file():
            problems.append(f"{rel} is missing")
        elif rel.endswith(".json"):
            if json.loads(path.read_text()) != value:
                problems.append(f"{rel} differs")
        else:
            stored = torch.load(path, weights_only=True)
            pairs = zip(stored.values(), value.values()) if isinstance(value, dict) else [(stored, value)]
            if isinstance(value, dict) and set(stored) != set(value):
                problems.append(f"{rel} has settings {sorted(stored)}; expected {sorted(value)}")
            for a, b in pairs:
                if a.shape != b.shape or torch.linalg.vector_norm(a - b) > NORM_TOLERANCE:
                    problems.append(f"{rel} differs from the reference's output")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify the stored files instead of writing them")
    args = parser.parse_args(argv)
    built = build()
    if args.check:
        problems = differences(built)
        print("\n".join(problems) or "all HW2 assets match the reference solution")
        return 1 if problems else 0
    for rel, value in built.items():
        path = HERE / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".json"):
            path.write_text(json.dumps(value))
        else:
            torch.save(value, path)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
