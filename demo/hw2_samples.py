"""HW2 sample submissions, built from the source notebook: the reference, the blank
release, and flawed variants ("mutants") that each break one rule of the rubric.

Used by `make demo` (which grades a few of them) and by the kit's tests (which
check that each mutant loses exactly the points of its rules). The result files
of experiments 1.1 and 1.2 are synthetic fixtures for grading, not training results.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from demo.samples import REPO, copy_release_folder, copy_release_notebook, write_notebook, zip_folder  # noqa: F401 (zip_folder: for callers)

SOURCE = REPO / "source" / "hw2" / "HW2.ipynb"
RELEASE = REPO / "release" / "hw2" / "HW2.ipynb"
RUNS = [(f"exp1_1_K{k}_L{l}", k, l) for k in (32, 64) for l in (2, 4, 8, 16)] + \
       [(f"exp1_2_L{l}_K{k}", k, l) for l in (2, 4, 8) for k in (32, 64, 128, 256)]


@dataclass(frozen=True)
class Sample:
    """A variant of the reference: source edits per graded cell, and result-file edits."""
    description: str
    edits: dict = field(default_factory=dict)   # grade_id -> [(old, new), ...]
    fails: frozenset = frozenset()               # rubric items it must fail (and only those)
    missing_runs: tuple = ()                     # result files left out
    misconfigured_run: str = ""                  # a run whose file holds another run's settings


_DEPTH_BUG = {"conv.expected_output", "conv.expected_output_hidden"}
MUTANTS = {
    "pool_after_every_conv": Sample("a pooling after every convolution", {"conv_classifier": [(
        "if (i + 1) % self.pool_every == 0:", "if self.pool_every:")]},
        frozenset({"conv.pooling", "conv.other_sizes", *_DEPTH_BUG})),
    "missing_relu": Sample("no ReLU after the convolutions", {"conv_classifier": [(
        "layers += [nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1), nn.ReLU()]",
        "layers += [nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)]")]},
        frozenset({"conv.convolutions", *_DEPTH_BUG})),
    "softmax_output": Sample("a softmax at the end", {"conv_classifier": [(
        "return self.classifier(features.flatten(start_dim=1))",
        "return torch.softmax(self.classifier(features.flatten(start_dim=1)), dim=1)")]},
        frozenset({"conv.logits", *_DEPTH_BUG})),
    "linears_first": Sample("linear layers created before the convolutions", {"conv_classifier": [(
        "self.feature_extractor = self._make_feature_extractor()\n        self.classifier = self._make_classifier()",
        "self.classifier = self._make_classifier()\n        self.feature_extractor = self._make_feature_extractor()")]},
        frozenset(_DEPTH_BUG)),
    "wrong_in_features": Sample("in_features computed as if images were square", {"conv_classifier": [(
        "height, width = in_h // 2**num_pools, in_w // 2**num_pools",
        "height, width = in_h // 2**num_pools, in_h // 2**num_pools")]},
        frozenset({"conv.classifier", "conv.other_sizes", "conv.expected_output_hidden"})),
    "no_zero_grad": Sample("gradients never cleared", {"trainer": [(
        "        self.optimizer.zero_grad()\n        scores = self.model(X)\n", "        scores = self.model(X)\n")]},
        frozenset({"trainer.train_batch", "trainer.overfit"})),
    "losses_per_batch": Sample("fit keeps every batch's loss instead of each epoch's mean", {"trainer": [(
        "train_loss.append(sum(train_result.losses) / len(train_result.losses))", "train_loss.append(train_result.losses)")]},
        frozenset({"trainer.fit"})),
    "test_with_gradients": Sample("test_batch without torch.no_grad()", {"trainer": [(
        "        with torch.no_grad():\n            scores = self.model(X)\n            loss = self.loss_fn(scores, y)\n",
        "        scores = self.model(X)\n        loss = self.loss_fn(scores, y)\n")]},
        frozenset({"trainer.test_batch"})),
    "early_stopping_late": Sample("early stopping one epoch late", {"trainer": [(
        "epochs_without_improvement >= early_stopping", "epochs_without_improvement > early_stopping")]},
        frozenset({"trainer.early_stopping"})),
    "no_checkpoint": Sample("checkpoints never saved", {"trainer": [(
        '                if checkpoints is not None:\n                    torch.save(self.model.state_dict(), f"{checkpoints}.pt")\n', "")]},
        frozenset({"trainer.checkpoints"})),
    "filters_not_repeated": Sample("filters_per_layer repeated as a whole", {"experiments": [(
        "filters = [k for k in filters_per_layer for _ in range(layers_per_block)]",
        "filters = list(filters_per_layer) * layers_per_block")]},
        frozenset({"experiments.run_experiment"})),
    "flat_json": Sample("result file without 'config' and 'results'", {"experiments": [(
        'json.dump({"config": config, "results": fit_result._asdict()}, f, indent=2)',
        "json.dump({**config, **fit_result._asdict()}, f, indent=2)")]},
        frozenset({"experiments.run_experiment"})),
    "run_missing": Sample("one run of experiment 1.1 not submitted", missing_runs=("exp1_1_K64_L16",),
                          fails=frozenset({"experiments.exp1_1"})),
    "run_misconfigured": Sample("a run of experiment 1.2 with another run's settings", misconfigured_run="exp1_2_L8_K256",
                                fails=frozenset({"experiments.exp1_2"})),
    # One per class of grading defect of issue 12 (each must fail only its own items):
    # 1, a constructor that crashes only for hidden_dims=[]: the feature-extractor checks still judge.
    "no_hidden_layer_crash": Sample("the classifier cannot be built without hidden layers", {"conv_classifier": [(
        "        widths = [channels * height * width, *self.hidden_dims]\n",
        "        widths = [channels * height * width, *self.hidden_dims]\n        assert self.hidden_dims[0] > 0\n")]},
        frozenset({"conv.classifier", "conv.other_sizes", "conv.expected_output_hidden"})),
    # 2, an extra pooling with in_features that fits it: charged to the pooling, not the classifier.
    "extra_pooling": Sample("one pooling too many, the classifier sized for it", {"conv_classifier": [
        ("        ### END SOLUTION\n        return nn.Sequential(*layers)\n\n    def _make_classifier",
         "        layers.append(nn.MaxPool2d(kernel_size=2))\n        ### END SOLUTION\n        return nn.Sequential(*layers)\n\n    def _make_classifier"),
        ("num_pools = len(self.filters) // self.pool_every", "num_pools = len(self.filters) // self.pool_every + 1")]},
        frozenset({"conv.pooling", *_DEPTH_BUG})),
    # 3a, early stopping that watches the training loss; 3b, fit that reports the training loss as test loss.
    "early_stopping_on_train_loss": Sample("early stopping on the training loss", {"trainer": [(
        "if best_loss is None or test_loss[-1] < best_loss:\n                best_loss, epochs_without_improvement = test_loss[-1], 0",
        "if best_loss is None or train_loss[-1] < best_loss:\n                best_loss, epochs_without_improvement = train_loss[-1], 0")]},
        frozenset({"trainer.early_stopping"})),
    "test_loss_is_train_loss": Sample("fit appends the training loss to test_loss", {"trainer": [(
        "test_loss.append(sum(test_result.losses) / len(test_result.losses))",
        "test_loss.append(sum(train_result.losses) / len(train_result.losses))")]}, frozenset({"trainer.fit"})),
    # 7, what the course accepted: any optimizer, a 0-d tensor loss computed without gradients.
    "sgd_optimizer": Sample("run_experiment with SGD", {"experiments": [(
        "torch.optim.Adam(model.parameters(), lr=lr, weight_decay=reg)",
        "torch.optim.SGD(model.parameters(), lr=lr, weight_decay=reg, momentum=0.9)")]}, frozenset()),
    "tensor_loss_without_grad": Sample("test_batch returns the loss tensor computed under no_grad", {"trainer": [(
        "        num_correct = int((scores.argmax(dim=1) == y).sum())\n        return BatchResult(loss.item(), num_correct)\n        ### END SOLUTION\n\n    def train_epoch",
        "        num_correct = int((scores.argmax(dim=1) == y).sum())\n        return BatchResult(loss, num_correct)\n        ### END SOLUTION\n\n    def train_epoch")]},
        frozenset()),
    "extra_import": Sample("an import in a graded cell", {"trainer": [(
        "# AUTOGRADED\n", "# AUTOGRADED\nimport numpy as np\n")]}, frozenset({"rules.imports"})),
    # 4, `math` is not imported by the setup cell: new, so it costs the rule's deduction and nothing else.
    "import_math": Sample("import math in a graded cell", {"trainer": [(
        "# AUTOGRADED\n", "# AUTOGRADED\nimport math\n")]}, frozenset({"rules.imports"})),
}


def _curves(k: int, l: int) -> dict:
    """Plausible learning curves: the deep plain networks (L >= 8) stay at chance."""
    if l >= 8:
        n = 6
        return dict(num_epochs=n, train_loss=[2.3026] * n, train_acc=[10.0 - 0.1 * (e % 3) for e in range(n)],
                    test_loss=[2.3026] * n, test_acc=[10.0] * n)
    n = 12 + k // 64
    top = 60 + 4 * math.log2(k / 16) - (2 if l == 4 else 0)
    train_acc = [round(top * (1 - math.exp(-(e + 1) / 3)) + 2 * e, 2) for e in range(n)]
    test_acc = [round(top * (1 - math.exp(-(e + 1) / 3)), 2) for e in range(n)]
    return dict(num_epochs=n, train_loss=[round(2.2 * math.exp(-e / 8), 4) for e in range(n)], train_acc=train_acc,
                test_loss=[round(2.1 * math.exp(-e / 10) + 0.02 * e, 4) for e in range(n)], test_acc=test_acc)


def write_results(folder: Path, sample: Sample) -> None:
    results = Path(folder) / "results"
    results.mkdir(parents=True, exist_ok=True)
    for name, k, l in RUNS:
        if name in sample.missing_runs:
            continue
        if name == sample.misconfigured_run:
            l = l // 2
        config = dict(run_name=name, out_dir="./results", seed=42, bs_train=50, bs_test=12, batches=10000, epochs=30,
                      early_stopping=5, checkpoints=None, lr=1e-3, reg=2e-3, filters_per_layer=[k],
                      layers_per_block=l, pool_every=4, hidden_dims=[100, 100])
        (results / f"{name}.json").write_text(json.dumps({"config": config, "results": _curves(k, l)}, indent=2))


def build(folder: Path, sample: Sample | None = None, notebook_edit=None) -> Path:
    """Write a submission folder: the reference with `sample`'s edits applied."""
    sample = sample or Sample("the reference solution")
    write_notebook(SOURCE, folder, sample.edits, notebook_edit)
    write_results(folder, sample)
    return Path(folder)


def build_blank(folder: Path) -> Path:
    """The untouched student release, as submitted without any work."""
    return copy_release_notebook(RELEASE, folder)


def build_student_folder(dest: Path, sample: Sample | None = None) -> Path:
    """A student's copy of release/hw2 after finishing the work: the reference
    notebook and its result files, beside hw_utils/ and the rest."""
    return build(copy_release_folder(RELEASE, dest), sample)
