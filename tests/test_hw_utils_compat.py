"""hw_utils keeps the course original's public behaviour (course-facts §1).

The seed-000 student's experiment and table cells must run unchanged apart
from the import line; the names, signatures, defaults, files and pickle keys
below are the original's.
"""
import inspect
import os
import pickle
import zipfile

import pandas as pd
import pytest
import torch
from torch import nn

import hw_utils
from hw_utils import Tracker, load_yaml, save_yaml, train, zip_files
from demo.digits import random_cifar_like

ORIGINAL_TRAIN_PARAMS = [
    ("save_path", inspect.Parameter.empty), ("model", inspect.Parameter.empty),
    ("train_data", inspect.Parameter.empty), ("test_data", inspect.Parameter.empty),
    ("loss_fn", inspect.Parameter.empty), ("optim_name", inspect.Parameter.empty),
    ("optim_config", {}), ("lr_scheduler_name", None), ("lr_scheduler_config", {}),
    ("n_epochs", 10), ("batch_size", 32), ("device", hw_utils.Device),
    ("train_pbar", False), ("val_pbar", False), ("plot_freq", 1), ("save_freq", 1),
]
RESULT_KEYS = {"train_losses", "test_losses", "train_accs", "test_accs", "epoch", "n_epochs"}


class TinyNet(nn.Module):
    def __init__(self, base_channels=4, batchnorm=True):
        super().__init__()
        layers = [nn.Conv2d(3, base_channels, 3, padding=1)]
        if batchnorm:
            layers.append(nn.BatchNorm2d(base_channels))
        self.body = nn.Sequential(*layers, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(base_channels, 10)

    def forward(self, x):
        return self.fc(self.body(x))


def test_public_names():
    for name in ("Device", "save_yaml", "load_yaml", "zip_files", "Tracker", "train"):
        assert hasattr(hw_utils, name), name
    assert hw_utils.Device in ("cuda", "mps", "cpu")


def test_train_signature_starts_with_the_original_parameters():
    params = list(inspect.signature(train).parameters.values())
    got = [(p.name, p.default) for p in params[: len(ORIGINAL_TRAIN_PARAMS)]]
    assert got == ORIGINAL_TRAIN_PARAMS
    extras = params[len(ORIGINAL_TRAIN_PARAMS):]
    assert all(p.kind is p.KEYWORD_ONLY and p.default is not p.empty for p in extras)


def test_tracker_attributes_and_update_order():
    t = Tracker(3)
    assert (t.epoch, t.n_epochs, t.plot_freq) == (0, 3, 0)
    t.update(1.0, 2.0, 0.5, 0.25)
    assert (t.train_losses, t.test_losses, t.train_accs, t.test_accs, t.epoch) == ([1.0], [2.0], [0.5], [0.25], 1)


def test_tracker_results_pickle_has_exactly_the_original_keys(tmp_path):
    t = Tracker(2)
    t.update(1.0, 2.0, 0.5, 0.25)
    t.save_results(tmp_path / "results.pkl")
    with open(tmp_path / "results.pkl", "rb") as f:
        data = pickle.load(f)
    assert set(data) == RESULT_KEYS
    assert data["epoch"] == 1 and data["n_epochs"] == 2

    other = Tracker(0)
    assert other.load_results(tmp_path / "results.pkl") is other   # superset: returns the tracker
    assert other.test_accs == [0.25] and other.n_epochs == 2


def test_load_results_refuses_objects(tmp_path):
    path = tmp_path / "results.pkl"
    with open(path, "wb") as f:
        pickle.dump({"train_losses": os.system}, f)
    with pytest.raises(pickle.UnpicklingError, match="posix.system|os.system|only plain"):
        Tracker(0).load_results(path)


def test_yaml_keeps_key_order_and_inline_lists(tmp_path):
    config = dict(base_channels=16, expands=[1, 2, 2], activation="relu", batchnorm=True)
    save_yaml(config, tmp_path / "c.yaml")
    text = (tmp_path / "c.yaml").read_text()
    assert text.splitlines()[0].startswith("base_channels")
    assert "expands: [1, 2, 2]" in text
    assert list(load_yaml(tmp_path / "c.yaml")) == list(config)


def test_load_yaml_is_safe(tmp_path):
    (tmp_path / "evil.yaml").write_text("a: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(Exception, match="python/object"):
        load_yaml(tmp_path / "evil.yaml")


@pytest.mark.parametrize("as_list", [False, True])
def test_zip_files_flattens_and_stores(tmp_path, as_list):
    (tmp_path / "sub").mkdir()
    a, b = tmp_path / "sub" / "a.txt", tmp_path / "b.yaml"
    a.write_text("aaaa" * 100)
    b.write_text("b")
    out = tmp_path / "out.zip"
    zip_files(out, [a, b]) if as_list else zip_files(out, a, b)
    with zipfile.ZipFile(out) as zf:
        assert zf.namelist() == ["a.txt", "b.yaml"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())


def test_zip_files_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="experiments.xlsx"):
        zip_files(tmp_path / "out.zip", tmp_path / "experiments.xlsx")
    assert not (tmp_path / "out.zip").exists()


@pytest.mark.slow
def test_seed000_student_cells_run_unchanged(tmp_path, monkeypatch):
    """The experiment cell (run 5 times) and the table cell of the seed's student."""
    monkeypatch.chdir(tmp_path)
    train_data, test_data = random_cifar_like(24, seed=1), random_cifar_like(12, seed=2)
    Device = "cpu"
    Model = TinyNet

    results_dir = "results"
    os.makedirs(results_dir, exist_ok=True)
    for batchnorm in (True, False):
        # --- the experiment cell, as the student wrote it ---
        model_config = dict(base_channels=4, batchnorm=batchnorm)
        train_config = dict(
            optim_name="Adam", optim_config=dict(lr=1.65e-3, weight_decay=3e-4),
            lr_scheduler_name="StepLR", lr_scheduler_config=dict(step_size=10, gamma=0.3),
            n_epochs=2, batch_size=8,
        )
        n_experiments = len(os.listdir(results_dir))
        name = f"{n_experiments:02d}"
        save_path = f"{results_dir}/{name}"
        os.makedirs(save_path, exist_ok=False)
        save_yaml(model_config, f"{save_path}/model_config.yaml")
        save_yaml(train_config, f"{save_path}/train_config.yaml")
        train(
            save_path=save_path, model=Model(**model_config).to(Device), train_data=train_data,
            test_data=test_data, loss_fn=nn.CrossEntropyLoss(), device=Device, train_pbar=False,
            val_pbar=False, plot_freq=1, save_freq=1, **train_config,
        )

    # --- the table cell, reading results.pkl directly as the student did ---
    rows = []
    for exp_name in sorted(d for d in os.listdir(results_dir) if os.path.isdir(os.path.join(results_dir, d))):
        exp_path = os.path.join(results_dir, exp_name)
        model_config = load_yaml(os.path.join(exp_path, "model_config.yaml"))
        train_config = load_yaml(os.path.join(exp_path, "train_config.yaml"))
        with open(os.path.join(exp_path, "results.pkl"), "rb") as f:
            tracker_data = pickle.load(f)
        final_idx = tracker_data["epoch"] - 1
        tracker = Tracker(0)
        tracker.load_results(os.path.join(exp_path, "results.pkl"))
        assert tracker.test_accs[-1] == tracker_data["test_accs"][final_idx]
        row = {**model_config, **train_config,
               "train_loss": tracker_data["train_losses"][final_idx],
               "test_loss": tracker_data["test_losses"][final_idx],
               "train_acc": tracker.train_accs[-1], "test_acc": tracker.test_accs[-1], "name": exp_name}
        rows.append(row)
    table = pd.DataFrame(rows).set_index("name")
    table.to_excel("experiments.xlsx")

    assert list(table.index) == ["00", "01"]
    assert {"base_channels", "batchnorm", "optim_name", "n_epochs", "test_acc"} <= set(table.columns)
    assert table["test_acc"].between(0, 1).all()
    for exp in ("00", "01"):
        files = sorted(os.listdir(f"{results_dir}/{exp}/checkpoints"))
        assert files == ["epoch_1.pt", "epoch_2.pt", "last.pt"]
        state = torch.load(f"{results_dir}/{exp}/checkpoints/epoch_2.pt", weights_only=True)
        Model(**load_yaml(f"{results_dir}/{exp}/model_config.yaml")).load_state_dict(state)
        assert (tmp_path / results_dir / exp / "learning_curves.png").stat().st_size > 1000
