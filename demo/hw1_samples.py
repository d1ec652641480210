"""HW1 sample submissions, built from the source notebook: the reference, the blank
release, and flawed variants ("mutants") that each break one rule of the rubric.

Used by `make demo` (which grades a few of them) and by the kit's tests (which
check that each mutant fails exactly its rubric items). The cross-validation
results files are synthetic fixtures for grading, with the accuracies the
course's own runs printed, not training results.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from demo.samples import REPO, copy_release_notebook, write_notebook, zip_folder  # noqa: F401 (zip_folder: for callers)

SOURCE = REPO / "source" / "hw1" / "HW1.ipynb"
RELEASE = REPO / "release" / "hw1" / "HW1.ipynb"

SETTINGS = {"ShallowCNN": dict(opt_method="adam", learning_rate=1e-3, batch_size=128, epoch=30, l2=1e-3),
            "DeepCNN": dict(opt_method="adam", learning_rate=1e-3, batch_size=128, epoch=30, l2=1e-4)}
# (training accuracy, test accuracy) per fold, as the course's runs printed them.
FOLDS = {"ShallowCNN": [(0.9475, 0.9479), (0.94623, 0.9478), (0.94729, 0.9483)],
         "DeepCNN": [(0.99627, 0.9891), (0.99617, 0.986), (0.99595, 0.9866)]}
PARAMETERS = {"ShallowCNN": 370_048, "DeepCNN": 263_458}


@dataclass(frozen=True)
class Sample:
    """A variant of the reference: source edits per graded cell, and results-file edits."""
    description: str
    edits: dict = field(default_factory=dict)   # grade_id -> [(old, new), ...]
    fails: frozenset = frozenset()               # rubric items it must fail (and only those)
    folds: dict = field(default_factory=dict)    # model -> its folds, instead of FOLDS'
    reported: dict = field(default_factory=dict)  # model -> {"test_acc": {...}} written over the computed values


MUTANTS = {
    "q1a_conv3_channels": Sample("(a): conv3 keeps conv2's 5 channels", {"q1_answers": [(
        '"conv3": (16, 16, 7), "pool": (8, 8, 7)}', '"conv3": (16, 16, 5), "pool": (8, 8, 7)}')]}, frozenset({"q1.a"})),
    "q1b_padding_kept": Sample("(b): conv3 computed as if it kept its padding", {"q1_answers": [(
        '"conv3": (12, 12, 7), "pool": (6, 6, 7)}', '"conv3": (14, 14, 7), "pool": (7, 7, 7)}')]}, frozenset({"q1.b"})),
    "volumes_true_division": Sample("formulas with / instead of //", {"q1_volumes": [
        ("return (size - kernel + 2 * padding) // stride + 1", "return (size - kernel + 2 * padding) / stride + 1"),
        ("return (size - extent) // stride + 1", "return (size - extent) / stride + 1")]},
        frozenset({"q1.volumes_hidden"})),
    "volumes_pool_without_one": Sample("pooling formula without the + 1", {"q1_volumes": [(
        "return (size - extent) // stride + 1", "return (size - extent) // stride")]},
        frozenset({"q1.volumes", "q1.volumes_hidden"})),
    "shallow_hidden_100": Sample("ShallowCNN with 100 hidden units", {"shallow_cnn": [
        ("nn.Linear(3 * 32 * 32, 120),", "nn.Linear(3 * 32 * 32, 100),"), ("nn.Linear(120, 10),", "nn.Linear(100, 10),")]},
        frozenset({"shallow.layers"})),
    "shallow_skips_relu": Sample("ShallowCNN's forward skips the first ReLU", {"shallow_cnn": [(
        "        for layer in self.layers:\n", "        for layer in [l for i, l in enumerate(self.layers) if i != 1]:\n")]},
        frozenset({"shallow.forward"})),
    "shallow_softmax": Sample("ShallowCNN ends with nn.Softmax (the course's own model)", {"shallow_cnn": [(
        "            nn.Linear(120, 10),\n", "            nn.Linear(120, 10),\n            nn.Softmax(dim=-1),\n")]},
        frozenset({"shallow.logits"})),
    "shallow_one_fold": Sample("results of one fold only (early_break=True)",
                               folds={"ShallowCNN": FOLDS["ShallowCNN"][:1]}, fails=frozenset({"shallow.kfold"})),
    "shallow_low_accuracy": Sample("ShallowCNN at 91%", folds={"ShallowCNN": [(0.915, 0.911), (0.913, 0.909), (0.92, 0.912)]},
                                   fails=frozenset({"shallow.accuracy"})),
    "deep_100_classes": Sample("DeepCNN's last layer gives 100 scores", {"deep_cnn": [(
        "            nn.Linear(120, 10),\n", "            nn.Linear(120, 100),\n")]}, frozenset({"deep.output"})),
    "deep_too_large": Sample("DeepCNN with a 300-unit hidden layer (over the budget)", {"deep_cnn": [
        ("nn.Linear(32 * 8 * 8, 120),", "nn.Linear(32 * 8 * 8, 300),"), ("            nn.Linear(120, 10),\n", "            nn.Linear(300, 10),\n")]},
        frozenset({"deep.budget"})),
    "deep_log_softmax": Sample("DeepCNN ends with nn.LogSoftmax", {"deep_cnn": [(
        "            nn.Linear(120, 10),\n", "            nn.Linear(120, 10),\n            nn.LogSoftmax(dim=1),\n")]},
        frozenset({"deep.logits"})),
    "deep_mean_edited": Sample("deep_cnn.json's mean edited by hand", reported={"DeepCNN": {"test_acc": {"mean": 0.99, "std": 0.0013}}},
                               fails=frozenset({"deep.kfold"})),
    "deep_low_accuracy": Sample("DeepCNN at 97.5%", folds={"DeepCNN": [(0.99, 0.976), (0.99, 0.975), (0.99, 0.974)]},
                                fails=frozenset({"deep.accuracy"})),
    "skip_head_9": Sample("SkipCNN returns 9 scores", {"ablation": [(
        "x = F.relu(x + block(x))\n        return self.head(x)\n", "x = F.relu(x + block(x))\n        return self.head(x)[:, :9]\n")]},
        frozenset({"ablation.shapes"})),
    "plain_with_batchnorm": Sample("PlainCNN normalizes its stem", {"ablation": [(
        "self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU())",
        "self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())")]},
        frozenset({"ablation.plain"})),
    "batchnorm_missing": Sample("BatchNormCNN without the second batch norm of each block", {"ablation": [(
        "                          nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())",
        "                          nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())")]}, frozenset({"ablation.batchnorm"})),
    "skip_missing": Sample("SkipCNN never adds the block's input", {"ablation": [(
        "x = F.relu(x + block(x))", "x = F.relu(block(x))")]}, frozenset({"ablation.skip"})),
    "batchnorm_with_skip": Sample("BatchNormCNN's blocks add their input (with a forward hook)", {"ablation": [(
        "nn.BatchNorm2d(16), nn.ReLU())\n            for _ in range(depth)\n        ])\n",
        "nn.BatchNorm2d(16), nn.ReLU())\n            for _ in range(depth)\n        ])\n"
        "        for block in self.blocks:\n            block.register_forward_hook(lambda m, args, out: out + args[0])\n")]},
        frozenset({"ablation.no_skip"})),
    "plain_softmax": Sample("PlainCNN's output goes through a softmax (a forward hook)", {"ablation": [(
        "self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU())\n",
        "self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU())\n"
        "        self.register_forward_hook(lambda m, args, out: out.softmax(dim=1))\n")]},
        frozenset({"ablation.logits"})),
    # numpy and math are imported by HW1's setup cell, so re-importing them is allowed; random is new.
    "extra_import": Sample("an import in a graded cell", {"deep_cnn": [(
        "# AUTOGRADED\n", "# AUTOGRADED\nimport random\n")]}, frozenset({"rules.imports"})),
}


def results(model: str, folds, reported: dict | None = None) -> dict:
    """A results file as KFoldCrossValidation writes it."""
    train, test = [f[0] for f in folds], [f[1] for f in folds]
    data = dict(model=model, model_args={}, k=3, settings=SETTINGS[model], parameters=PARAMETERS[model],
                folds=[dict(train_acc=a, val_acc=b, test_acc=b, best_epoch=20 + i) for i, (a, b) in enumerate(folds)],
                train_acc=dict(mean=statistics.fmean(train), std=statistics.pstdev(train)),
                test_acc=dict(mean=statistics.fmean(test), std=statistics.pstdev(test)))
    data.update(reported or {})
    return data


def write_results(folder: Path, sample: Sample) -> None:
    out = Path(folder) / "results"
    out.mkdir(parents=True, exist_ok=True)
    for model, name in (("ShallowCNN", "shallow_cnn"), ("DeepCNN", "deep_cnn")):
        data = results(model, sample.folds.get(model, FOLDS[model]), sample.reported.get(model))
        (out / f"{name}.json").write_text(json.dumps(data, indent=2))


def build(folder: Path, sample: Sample | None = None, notebook_edit=None) -> Path:
    """Write a submission folder: the reference with `sample`'s edits applied, and its results files."""
    sample = sample or Sample("the reference solution")
    write_notebook(SOURCE, folder, sample.edits, notebook_edit)
    write_results(folder, sample)
    return Path(folder)


def build_blank(folder: Path) -> Path:
    """The untouched student release, as submitted without any work."""
    return copy_release_notebook(RELEASE, folder)
