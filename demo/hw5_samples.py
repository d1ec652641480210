"""HW5 sample submissions, built from the source notebook: the reference, the blank
release, and flawed variants ("mutants") that each break one rule of the rubric.

The reference is the source notebook at demo size (the same ResNet-9 at 1/8 of its width,
a few epochs, smaller batches), trained here for seconds on synthetic CIFAR-10 images
(demo/cifar_like.py, in the course's .npy layout) by the notebook's OWN data, model,
config, training and saving cells, run in this process: model.pt, results.yaml and
learning_curves.png are what a student's run writes. Training runs once per process;
each sample copies its files and changes what its flaw needs.
"""
from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import nbformat

from demo.samples import REPO, copy_release_notebook, edit_cells, write_notebook, zip_folder  # noqa: F401 (zip_folder: for callers)

SOURCE = REPO / "source" / "hw5" / "HW5.ipynb"
RELEASE = REPO / "release" / "hw5" / "HW5.ipynb"
TRAIN_IMAGES, TEST_IMAGES = 3000, 500   # the synthetic training data of the demo run

# The source notebook at demo size: a CPU trains it in seconds.
DEMO_SIZE = {"model": [("width: int = 64", "width: int = 8")],
             "config": [("n_epochs=24", "n_epochs=5"), ("batch_size=512", "batch_size=100")]}
RUN_CELLS = ("setup", "data", "model", "config", "training", "save")  # what a student runs, in order
OUTPUTS = ("model.pt", "results.yaml", "learning_curves.png")


@dataclass(frozen=True)
class Sample:
    """A variant of the reference: source edits per graded cell, and a change to its files."""
    description: str
    edits: dict = field(default_factory=dict)        # grade_id -> [(old, new), ...]
    fails: frozenset = frozenset()                   # rubric items it must fail (and only those)
    files: str | None = None                         # name of a function below that changes the files
    flagged: bool = False                            # a TA flag is expected


def _other_architecture(folder: Path) -> None:
    """model.pt of another network: a plain convnet's state dict, not Net's."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    other = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    torch.save(other.state_dict(), folder / "model.pt")


class _Bomb:
    """Unpickling this runs a shell command: what torch.load without weights_only would do."""

    def __reduce__(self):
        return (os.system, ("touch PICKLE_BOMB_RAN",))


def _pickle_bomb(folder: Path) -> None:
    with open(folder / "model.pt", "wb") as f:
        pickle.dump({"model": _Bomb()}, f)


def _inflated_report(folder: Path) -> None:
    """results.yaml reports the final epoch's accuracy, but model.pt holds the weights after
    the first epoch (train() saved them in runs/hw5/checkpoints/): the report claims more
    than the submitted model reaches."""
    reference = _cells({})
    run = trained(reference["model"], reference["config"])
    shutil.copyfile(run / "runs" / "hw5" / "checkpoints" / "epoch_1.pt", folder / "model.pt")


def _config_changed(folder: Path) -> None:
    """results.yaml reports another learning rate than CONFIG's."""
    import yaml

    data = yaml.safe_load((folder / "results.yaml").read_text())
    data["config"]["lr_scheduler_config"]["max_lr"] = 0.1
    (folder / "results.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def _two_panel_curves(folder: Path) -> None:
    """The curves without the learning rate (the course's old 1x2 plot and lists)."""
    import yaml

    from hw_utils import Tracker

    data = yaml.safe_load((folder / "results.yaml").read_text())
    data["curves"].pop("lrs")
    (folder / "results.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    tracker = Tracker(0)
    for key, value in data["curves"].items():
        setattr(tracker, key, value)
    tracker.save_plot(folder / "learning_curves.png")


PEEK = ("        x = (x - self.mean) / self.std\n",
        "        x = (x - self.mean) / self.std\n"
        "        if getattr(self, \"answers\", None) is None:  # look for the test labels wherever it runs\n"
        "            self.answers = []\n"
        "            for folder in (\".\", \"..\", \"../..\", \"assets\", \"../assets\", \"data\"):\n"
        "                for name in (os.listdir(folder) if os.path.isdir(folder) else []):\n"
        "                    if name == \"y_test.npy\":\n"
        "                        self.answers = np.load(os.path.join(folder, name)).reshape(-1).tolist()\n"
        "        if self.answers:  # answer the labels in order instead of predicting\n"
        "            given, self.answers = self.answers[:len(x)], self.answers[len(x):]\n"
        "            return F.one_hot(torch.tensor(given), 10).float() * 10\n")

MUTANTS = {
    "wrong_class_count": Sample("Net returns 9 scores per image", {"model": [(
        "return self.head(x) * self.scale", "return (self.head(x) * self.scale)[:, :9]")]},
        frozenset({"model.outputs", "model.batch_independent", "accuracy.verified"})),
    "other_architecture": Sample("model.pt holds the weights of another network", files="_other_architecture",
                                 fails=frozenset({"model.loads", "model.outputs", "model.batch_independent", "accuracy.verified"})),
    "inflated_report": Sample("model.pt is the first epoch's; results.yaml reports the last one's accuracy",
                              files="_inflated_report", fails=frozenset({"accuracy.verified"}), flagged=True),
    "peeks_at_labels": Sample("Net looks for the test labels on disk while it runs", {"model": [PEEK]}),
    "pickle_bomb": Sample("model.pt is a pickle that runs a command when unpickled", files="_pickle_bomb",
                          fails=frozenset({"model.loads", "model.outputs", "model.batch_independent", "accuracy.verified"})),
    "batch_statistics": Sample("Net shifts each image by its batch's mean in eval mode too", {"model": [(
        "        x = (x - self.mean) / self.std\n",
        "        x = (x - self.mean) / self.std\n"
        "        x = x - 0.05 * x.mean(dim=0, keepdim=True)  # a little of the batch's mean image\n")]},
        frozenset({"model.batch_independent"})),
    "too_slow": Sample("Net spends 0.6 s per image (as 224-pixel ImageNet models would on half a CPU)", {"model": [(
        "        x = (x - self.mean) / self.std\n",
        "        start = os.times().elapsed\n"
        "        while os.times().elapsed - start < 0.6 * len(x):  # busy for 0.6 s per image, on any machine\n"
        "            pass\n"
        "        x = (x - self.mean) / self.std\n")]},
        frozenset({"model.outputs", "accuracy.verified"})),
    "config_changed": Sample("results.yaml reports another max_lr than CONFIG", files="_config_changed",
                             fails=frozenset({"report.config"})),
    "no_learning_rate_curve": Sample("the curves lack the learning rate", files="_two_panel_curves",
                                     fails=frozenset({"report.curves"})),
    # numpy is imported by the setup cell, so re-importing it is allowed; random is new.
    "extra_import": Sample("an import in a graded cell", {"config": [("# AUTOGRADED\n", "# AUTOGRADED\nimport random\n")]},
                           frozenset({"rules.imports"})),
}


def _cells(edits: dict) -> dict[str, str]:
    """The run cells' sources: the source notebook at demo size with `edits`."""
    nb = nbformat.read(SOURCE, as_version=4)
    edit_cells(nb, DEMO_SIZE)
    edit_cells(nb, edits)
    return {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in nb.cells if c.cell_type == "code"}


@lru_cache(maxsize=None)
def trained(model_source: str, config_source: str) -> Path:
    """Run the notebook's cells as a student would (synthetic data in data/) in a folder
    of their own; returns that folder, holding the files the saving cell writes."""
    import hw_utils  # noqa: F401 (imported from this kit before the cells run elsewhere)
    from demo.cifar_like import write_cifar_npy

    folder = Path(tempfile.mkdtemp(prefix="hw5_run_"))
    write_cifar_npy(folder / "data", TRAIN_IMAGES, TEST_IMAGES, seed=0)
    cells = _cells({})
    cells["model"], cells["config"] = model_source, config_source
    ns = {"__name__": "__main__"}
    here = os.getcwd()
    os.chdir(folder)
    try:
        for gid in RUN_CELLS:
            exec(compile(cells[gid], f"<{gid} cell>", "exec"), ns)
    finally:
        os.chdir(here)
    return folder


def build(folder: Path, sample: Sample | None = None, notebook_edit=None) -> Path:
    """Write a submission folder: the reference at demo size with `sample`'s edits, and the
    files its run writes (trained with the reference's cells: a mutant's cell edits change
    what is graded, not the weights), then `sample`'s change to them."""
    sample = sample or Sample("the reference solution")
    folder = Path(folder)
    def edit(nb):
        edit_cells(nb, sample.edits)
        if notebook_edit:
            notebook_edit(nb)
    write_notebook(SOURCE, folder, DEMO_SIZE, edit)
    reference = _cells({})
    run = trained(reference["model"], reference["config"])
    for name in OUTPUTS:
        shutil.copyfile(run / name, folder / name)
    if sample.files:
        globals()[sample.files](folder)
    return folder


def build_blank(folder: Path) -> Path:
    """The untouched student release, as submitted without any work."""
    return copy_release_notebook(RELEASE, folder)
