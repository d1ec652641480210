"""HW4 sample submissions, built from the source notebook: the reference, the blank
release, and flawed variants ("mutants") that each break one rule of the rubric.

Used by `make demo` (which grades a few of them) and by the kit's tests (which
check that each mutant loses exactly the points of its rule). The experiment
tables are synthetic fixtures for grading, not training results.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pandas as pd

from demo.samples import REPO, copy_release_folder, copy_release_notebook, write_notebook, zip_folder  # noqa: F401 (zip_folder: for callers)
from hw_utils import save_yaml

SOURCE = REPO / "source" / "hw4" / "HW4.ipynb"
RELEASE = REPO / "release" / "hw4" / "HW4.ipynb"

MODEL_CONFIG = dict(base_channels=64, expands=[1, 2, 1, 2, 1], activation="relu", batchnorm=True, residual=True)
TRAIN_CONFIG = dict(optim_name="SGD", optim_config=dict(lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True),
                    lr_scheduler_name="OneCycleLR", lr_scheduler_config=dict(max_lr=0.1, pct_start=0.25),
                    n_epochs=24, batch_size=256)
# (batchnorm, residual, test accuracy) per synthetic experiment; the best is 01.
EXPERIMENTS = [(True, True, 0.80), (True, True, 0.91), (False, True, 0.86), (True, False, 0.84), (False, False, 0.71)]


@dataclass(frozen=True)
class Sample:
    """A variant of the reference: source edits per graded cell, and table edits."""
    description: str
    edits: dict = field(default_factory=dict)        # grade_id -> [(old, new), ...]
    fails: frozenset = frozenset()                    # rubric items it must fail (and only those)
    drop_rows: tuple = ()                             # experiment names left out of the table
    table_edit: str = ""                              # see _write_table
    config_from: str = "01"                           # which experiment's configs are submitted
    drop_files: tuple = ()                            # submitted files left out


MUTANTS = {
    "softmax_output": Sample("Model returns probabilities", {"resnet": [(
        "return self.fc(x)  ", "return F.softmax(self.fc(x), dim=1)  ")]}, frozenset({"model.logits"})),
    "no_shortcut_activation": Sample("projection shortcut without its activation", {"resnet": [(
        "                skip = self.act(skip)\n", "")]}, frozenset({"block.matches_reference"})),
    "activation_modules": Sample("activations stored as modules", {"resnet": [(
        "self.act = getattr(F, activation)\n        self.residual",
        "self.act = {'relu': nn.ReLU(), 'gelu': nn.GELU(), 'tanh': nn.Tanh(), 'silu': nn.SiLU()}[activation]\n        self.residual")]},
        frozenset({"block.functional_activations"})),
    "batchnorm_always": Sample("batch-norm even when batchnorm=False", {"resnet": [
        ("self.bn1 = nn.BatchNorm2d(out_channels) if batchnorm else None", "self.bn1 = nn.BatchNorm2d(out_channels)"),
        ("self.bn2 = nn.BatchNorm2d(out_channels) if batchnorm else None", "self.bn2 = nn.BatchNorm2d(out_channels)"),
        ("self.shortcut_bn = nn.BatchNorm2d(out_channels) if batchnorm else None", "self.shortcut_bn = nn.BatchNorm2d(out_channels)")]},
        frozenset({"block.batchnorm"})),
    "unused_module": Sample("a module that is never used", {"resnet": [(
        "        self.residual = residual\n", "        self.residual = residual\n        self.unused = nn.Linear(4, 4)\n")]},
        frozenset({"block.all_parameters_used"})),
    "parameter_in_forward": Sample("a parameter created in forward", {"resnet": [(
        "        return self.act(out)\n",
        "        if not hasattr(self, 'gain'):\n            self.gain = nn.Parameter(torch.ones(1))\n        return self.act(out) * self.gain\n")]},
        frozenset({"block.no_parameters_in_forward"})),
    "stride_on_conv2": Sample("conv2 strided instead of conv1", {"resnet": [
        ("kernel_size=3, stride=expand, padding=1, bias=not batchnorm)\n        self.bn1", "kernel_size=3, stride=1, padding=1, bias=not batchnorm)\n        self.bn1"),
        ("out_channels, kernel_size=3, stride=1, padding=1, bias=not batchnorm)\n        self.bn2", "out_channels, kernel_size=3, stride=expand, padding=1, bias=not batchnorm)\n        self.bn2")]},
        frozenset({"block.strides"})),
    "one_by_one_shortcut": Sample("1x1 projection shortcut", {"resnet": [(
        "self.shortcut_conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=expand, padding=1,",
        "self.shortcut_conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=expand, padding=0,")]},
        frozenset({"block.kernels"})),
    "projection_when_e_is_1": Sample("a convolution shortcut even when expand=1", {"resnet": [
        ("if residual and expand > 1:", "if residual:"),
        ("self.shortcut_bn = nn.BatchNorm2d(out_channels) if batchnorm else None",
         "self.shortcut_bn = nn.BatchNorm2d(out_channels) if batchnorm and expand > 1 else None")]},
        frozenset({"block.shortcut"})),
    "channels_capped": Sample("channels multiplied by at most 2", {"resnet": [(
        "out_channels = in_channels * expand", "out_channels = in_channels * min(expand, 2)")]},
        frozenset({"block.output_shapes"})),
    "layer0_strided": Sample("layer0 halves the image", {"resnet": [(
        "nn.Conv2d(3, base_channels, kernel_size=3, stride=1,", "nn.Conv2d(3, base_channels, kernel_size=3, stride=2,")]},
        frozenset({"model.layer0"})),
    "fixed_pooling": Sample("pooling that only fits 32x32 images", {"resnet": [(
        "F.adaptive_avg_pool2d(x, 1).flatten(1)", "F.avg_pool2d(x, 8).flatten(1)")]},
        frozenset({"model.output_sizes"})),
    "block_missing": Sample("one Block fewer than expands", {"resnet": [(
        "for e in expands:", "for e in expands[:-1]:")]}, frozenset({"model.blocks"})),
    "config_does_not_build": Sample("Model cannot build the submitted configuration", {"resnet": [(
        "        self.act = getattr(F, activation)\n        self.layer0_conv",
        "        assert base_channels <= 16, 'too wide'\n        self.act = getattr(F, activation)\n        self.layer0_conv")]},
        frozenset({"model.from_config"})),
    "two_augmentations": Sample("only two random augmentations", {"augmentation": [(
        "    v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),\n", "")]},
        frozenset({"augmentation.random"})),
    "not_centred": Sample("training images in [0, 1]", {"augmentation": [(
        "    v2.ToDtype(torch.float32, scale=True),  # to [0, 1]\n    v2.Lambda(lambda x: x - 0.5),           # to [-0.5, 0.5]\n])\n### END",
        "    v2.ToDtype(torch.float32, scale=True),  # to [0, 1]\n])\n### END")]},
        frozenset({"augmentation.output"})),
    "extra_import": Sample("an import in a graded cell", {"resnet": [(
        "# AUTOGRADED\n", "# AUTOGRADED\nimport numpy as np\n")]}, frozenset({"rules.imports"})),
    # 4, `math` is not imported by the setup cell: new, so it costs the rule's deduction and nothing else.
    "import_math": Sample("import math in a graded cell", {"resnet": [(
        "# AUTOGRADED\n", "# AUTOGRADED\nimport math\n")]}, frozenset({"rules.imports"})),
    # One per class of grading defect of issue 12 (each must fail only its own items):
    # 1, a crash in forward for batchnorm=False: structure, hygiene and the Model are still judged.
    "bn_none_crash": Sample("bn1 called even when it is None (batchnorm=False)", {"resnet": [(
        "        if self.bn1 is not None:\n            out = self.bn1(out)\n", "        out = self.bn1(out)\n")]},
        frozenset({"block.output_shapes", "block.matches_reference"})),
    # 3c-3e, the Model's own hygiene and layer0.
    "lazy_fc": Sample("the final Linear created in forward", {"resnet": [
        ("        self.fc = nn.Linear(channels, num_classes)\n", "        self.fc, self.num_classes = None, num_classes\n"),
        ("        return self.fc(x)  ", "        if self.fc is None:\n            self.fc = nn.Linear(x.shape[1], self.num_classes)\n        return self.fc(x)  ")]},
        frozenset({"model.no_modules_in_forward"})),
    "model_unused_module": Sample("a Model module that is never used", {"resnet": [(
        "        self.fc = nn.Linear(channels, num_classes)\n", "        self.fc = nn.Linear(channels, num_classes)\n        self.head = nn.Linear(channels, channels)\n")]},
        frozenset({"model.all_parameters_used"})),
    "model_pooling_module": Sample("the Model's pooling stored as a module", {"resnet": [
        ("        self.fc = nn.Linear(channels, num_classes)\n", "        self.fc = nn.Linear(channels, num_classes)\n        self.pool = nn.AdaptiveAvgPool2d(1)\n"),
        ("F.adaptive_avg_pool2d(x, 1).flatten(1)", "self.pool(x).flatten(1)")]},
        frozenset({"model.functional_activations"})),
    "layer0_always_relu": Sample("layer0 ignores `activation`", {"resnet": [(
        "x = self.blocks(self.act(x))", "x = self.blocks(F.relu(x))")]}, frozenset({"model.layer0"})),
    # 5, the kernel check reports the 1x1 shortcut although forward crashes.
    "one_by_one_shortcut_padded": Sample("1x1 projection shortcut with padding 1 (forward crashes)", {"resnet": [(
        "self.shortcut_conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=expand, padding=1,",
        "self.shortcut_conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=expand, padding=1,")]},
        frozenset({"block.kernels", "block.output_shapes", "model.from_config"})),
    # 6, without the YAML files only the checks that need them fail.
    "no_yaml_files": Sample("model_config.yaml and train_config.yaml not submitted",
                            drop_files=("model_config.yaml", "train_config.yaml"),
                            fails=frozenset({"model.from_config", "table.columns", "table.best_configs"})),
    "four_experiments": Sample("no experiment with both ablations", drop_rows=("04",), fails=frozenset({"training.experiments"})),
    "index_unnamed": Sample("table index not called 'name'", table_edit="unnamed_index", fails=frozenset({"table.index"})),
    "column_missing": Sample("batch_size column left out", table_edit="drop_batch_size", fails=frozenset({"table.columns"})),
    "percent_accuracy": Sample("accuracies in percent", table_edit="percent", fails=frozenset({"table.values"})),
    "not_best_configs": Sample("configs of a worse experiment", config_from="00", fails=frozenset({"table.best_configs"})),
}


def _write_table(folder: Path, sample: Sample) -> None:
    rows = {}
    for i, (bn, res, acc) in enumerate(EXPERIMENTS):
        name = f"{i:02d}"
        if name in sample.drop_rows:
            continue
        rows[name] = {**MODEL_CONFIG, "batchnorm": bn, "residual": res, **TRAIN_CONFIG,
                      "train_loss": round(0.9 - acc / 2, 4), "test_loss": round(1.0 - acc / 2, 4),
                      "train_acc": min(1.0, acc + 0.03), "test_acc": acc}
        if name == "00":
            rows[name]["optim_config"] = dict(lr=0.01, momentum=0.9)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "name"
    if sample.table_edit == "unnamed_index":
        table.index.name = None
    elif sample.table_edit == "drop_batch_size":
        table = table.drop(columns="batch_size")
    elif sample.table_edit == "percent":
        table[["train_acc", "test_acc"]] *= 100
    table.to_excel(folder / "experiments.xlsx")
    best = rows[sample.config_from]
    save_yaml({k: best[k] for k in MODEL_CONFIG}, folder / "model_config.yaml")
    save_yaml({k: best[k] for k in TRAIN_CONFIG}, folder / "train_config.yaml")


def build(folder: Path, sample: Sample | None = None, notebook_edit=None, executed: bool = True) -> Path:
    """Write a submission folder: the reference with `sample`'s edits applied, its
    notebook holding the outputs of a run (unless `executed` is False)."""
    sample = sample or Sample("the reference solution")
    folder = Path(folder)
    write_notebook(SOURCE, folder, sample.edits, notebook_edit)
    _write_table(folder, sample)
    if executed and (folder / "experiments.xlsx").is_file():
        nb = nbformat.read(folder / "HW4.ipynb", as_version=4)
        mark_executed(nb, folder)
        nbformat.write(nb, folder / "HW4.ipynb")
    for name in sample.drop_files:
        (folder / name).unlink()
    return folder


def build_blank(folder: Path) -> Path:
    """The untouched student release, as submitted without any work."""
    return copy_release_notebook(RELEASE, folder)


def mark_executed(nb, folder: Path, table: pd.DataFrame | None = None, logged: list[float] | None = None) -> None:
    """Give `nb` the outputs a run from top to bottom would leave (as Jupyter stores
    them): run counts in order, each experiment's training log as `train` prints it
    (ending at its row's metrics, or `logged` test accuracies), and the experiments
    table (the submitted one, or `table`)."""
    from hw_utils.train import epoch_line

    table = pd.read_excel(folder / "experiments.xlsx", index_col=0, dtype={0: str}) if table is None else table
    if logged is None:
        runs = [(r.train_loss, r.train_acc, r.test_loss, r.test_acc) for r in table.itertuples()]
    else:
        runs = [(0.4, 0.86, 0.53, acc) for acc in logged]
    epochs = 24
    log = "".join(epoch_line(e, epochs, loss + (epochs - e) / 40, acc * e / epochs, test_loss + (epochs - e) / 40,
                             test_acc * e / epochs, 2.6 * e) + "\n"
                  for loss, acc, test_loss, test_acc in runs for e in range(1, epochs + 1))
    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        count += 1
        cell.execution_count = count
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid == "experiment":
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=log)]
        elif gid == "table":
            cell.outputs = [nbformat.v4.new_output("execute_result", execution_count=count,
                                                   data={"text/html": table.to_html(), "text/plain": table.to_string()})]


def build_student_folder(dest: Path, sample: Sample | None = None) -> Path:
    """A student's copy of release/hw4 after finishing the work: the reference
    notebook (run from top to bottom) and its files, beside hw_utils/ and the rest."""
    dest = build(copy_release_folder(RELEASE, dest), sample)
    nb = nbformat.read(dest / "HW4.ipynb", as_version=4)
    mark_executed(nb, dest)
    nbformat.write(nb, dest / "HW4.ipynb")
    return dest
