"""Experiment folders: re-running the HW4 experiment cell resumes its unfinished run;
list_runs / remove_runs list runs and clean up, renumbering the rest."""
import re
from pathlib import Path

import nbformat
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from hw_utils import Tracker, list_runs, next_run, remove_runs
from hw_utils.runs import run_info, run_names
from hw_utils.io import save_pickle

REPO = Path(__file__).resolve().parents[1]
MODEL_CONFIG = dict(base_channels=4, expands=[1, 2], activation="relu", batchnorm=True, residual=True)
TRAIN_CONFIG = dict(optim_name="SGD", optim_config=dict(lr=0.05, momentum=0.9), lr_scheduler_name=None,
                    lr_scheduler_config={}, n_epochs=3, batch_size=8)


def fake_run(results_dir: Path, name: str, epoch: int, n_epochs: int = 3, configs=(MODEL_CONFIG, TRAIN_CONFIG)):
    """A run folder as train() leaves it after `epoch` epochs (no weights needed here)."""
    folder = results_dir / name
    (folder / "checkpoints").mkdir(parents=True)
    from hw_utils import save_yaml
    save_yaml(configs[0], folder / "model_config.yaml")
    save_yaml(configs[1], folder / "train_config.yaml")
    if epoch:
        (folder / "checkpoints" / "last.pt").write_bytes(b"state")
        save_pickle({"train_losses": [1.0] * epoch, "test_losses": [1.0] * epoch, "train_accs": [0.5] * epoch,
                     "test_accs": [0.5] * epoch, "epoch": epoch, "n_epochs": n_epochs},
                    folder / "results.pkl")
    return folder


def test_next_run_resumes_the_unfinished_run_with_the_same_configs(tmp_path):
    results = tmp_path / "results"
    fake_run(results, "00", epoch=3)
    fake_run(results, "01", epoch=1)
    assert next_run(results, MODEL_CONFIG, TRAIN_CONFIG) == f"{results.as_posix()}/01"
    other = {**TRAIN_CONFIG, "batch_size": 16}
    assert next_run(results, MODEL_CONFIG, other) == f"{results.as_posix()}/02"   # changed configs: a new run


def test_next_run_reuses_a_run_that_never_saved_an_epoch(tmp_path):
    """train() refused its arguments (or was stopped in epoch 1): no stray folder is left behind."""
    results = tmp_path / "results"
    fake_run(results, "00", epoch=3)
    fake_run(results, "01", epoch=0, configs=({"base_channels": "sixteen"}, TRAIN_CONFIG))
    path = next_run(results, MODEL_CONFIG, TRAIN_CONFIG)
    assert path == f"{results.as_posix()}/01"
    assert (results / "01" / "model_config.yaml").read_text().startswith("base_channels: 4")


def test_a_finished_run_is_never_reused(tmp_path):
    results = tmp_path / "results"
    fake_run(results, "00", epoch=3)
    assert next_run(results, MODEL_CONFIG, TRAIN_CONFIG) == f"{results.as_posix()}/01"
    assert next_run(tmp_path / "new", MODEL_CONFIG, TRAIN_CONFIG) == f"{(tmp_path / 'new').as_posix()}/00"


def test_list_and_remove_runs_renumber_the_rest(tmp_path, capsys):
    results = tmp_path / "results"
    for name, epoch in (("00", 3), ("01", 1), ("02", 3), ("03", 0), ("04", 3)):
        fake_run(results, name, epoch)
    list_runs(results)
    states = [(r.name, r.state, r.epoch) for r in (run_info(results, n) for n in run_names(results))]
    assert states == [("00", "finished", 3), ("01", "unfinished", 1), ("02", "finished", 3), ("03", "empty", 0),
                      ("04", "finished", 3)]
    assert "results/01  unfinished  epoch 1/3" in capsys.readouterr().out
    old_02 = (results / "02" / "results.pkl").read_bytes()
    assert remove_runs(results, ["00"]) == ["00", "01"]     # 00 named; 01 and 03 unfinished
    assert (results / "00" / "results.pkl").read_bytes() == old_02
    with pytest.raises(ValueError, match="no run 07"):
        remove_runs(results, ["07"])
    assert remove_runs(results, unfinished=False) == ["00", "01"]


# --- the HW4 experiment cell itself ------------------------------------------------------------

def source_cell(nb, grade_id: str) -> str:
    return next(c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


class Interruptible(Dataset):
    """Training images that raise KeyboardInterrupt (the kernel's stop button) once the run
    has saved its first epoch, while `armed`."""

    def __init__(self, base, last_pt: Path):
        self.base, self.last_pt, self.armed = base, last_pt, True

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        if self.armed and self.last_pt.exists():
            self.armed = False
            raise KeyboardInterrupt
        return self.base[i]


@pytest.mark.slow
def test_interrupting_and_rerunning_the_experiment_cell_continues_the_same_run(tmp_path, monkeypatch, capsys):
    nb = nbformat.read(REPO / "source" / "hw4" / "HW4.ipynb", as_version=4)
    experiment = source_cell(nb, "experiment")
    # The student's part of the cell: small configs for a CPU (the rest of the cell runs as written).
    experiment = re.sub(r"### BEGIN SOLUTION.*### END SOLUTION", "model_config = MODEL_CONFIG\ntrain_config = TRAIN_CONFIG\n"
                        "loss_fn = nn.CrossEntropyLoss()", experiment, flags=re.S)
    monkeypatch.chdir(tmp_path)
    g = torch.Generator().manual_seed(0)
    images = TensorDataset(torch.rand(48, 3, 32, 32, generator=g) - 0.5, torch.randint(0, 10, (48,), generator=g))
    train_data = Interruptible(images, tmp_path / "results" / "00" / "checkpoints" / "last.pt")
    ns = {"MODEL_CONFIG": MODEL_CONFIG, "TRAIN_CONFIG": TRAIN_CONFIG}
    exec(source_cell(nb, "setup"), ns)
    exec(re.sub(r"### (BEGIN|END) SOLUTION", "", source_cell(nb, "resnet")), ns)
    ns.update(train_data=train_data, test_data=images, results_dir="results")

    with pytest.raises(KeyboardInterrupt):
        exec(experiment, ns)                       # stopped during epoch 2
    assert Tracker(0).load_results("results/00/results.pkl").epoch == 1
    exec(experiment, ns)                           # the student runs the cell again
    out = capsys.readouterr().out
    assert "Continuing the unfinished run results/00" in out and "Resuming results/00 after epoch 1 of 3" in out
    assert sorted(p.name for p in Path("results").iterdir()) == ["00"]
    done = Tracker(0).load_results("results/00/results.pkl")
    assert done.epoch == 3 and len(done.test_accs) == 3
    assert ns["tracker"].epoch == 3
    exec(experiment, ns)                           # once finished, the same cell starts a new run
    assert sorted(p.name for p in Path("results").iterdir()) == ["00", "01"]
