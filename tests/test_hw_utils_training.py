"""train(): resume after a kill, atomic files, clear errors, and real learning."""
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from hw_utils import Tracker, TrainingSetupError, train
from hw_utils.io import atomic_write
from demo.digits import digits_datasets, random_cifar_like

REPO = Path(__file__).resolve().parents[1]


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))


def quick_train(save_path, **overrides):
    kwargs = dict(save_path=save_path, model=tiny_model(), train_data=random_cifar_like(16, size=8),
                  test_data=random_cifar_like(8, size=8, seed=1), loss_fn=nn.CrossEntropyLoss(),
                  optim_name="SGD", optim_config=dict(lr=0.1), n_epochs=2, batch_size=8, device="cpu")
    kwargs.update(overrides)
    return train(**kwargs)


# --- resume -----------------------------------------------------------------

RUN_SCRIPT = textwrap.dedent("""
    import sys, time, torch
    from torch import nn
    from torch.utils.data import Dataset
    from hw_utils import train
    from demo.digits import random_cifar_like

    class Slow(Dataset):  # about 0.25 s per epoch, so a kill lands inside one
        def __init__(self, base): self.base = base
        def __len__(self): return len(self.base)
        def __getitem__(self, i):
            time.sleep(0.004)
            return self.base[i]

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    tracker = train(sys.argv[1], model, Slow(random_cifar_like(32, size=8)), random_cifar_like(16, size=8, seed=1),
                    nn.CrossEntropyLoss(), "SGD", dict(lr=0.05, momentum=0.9), "StepLR", dict(step_size=2, gamma=0.5),
                    n_epochs=6, batch_size=8, device="cpu", save_freq=2, seed=3)
    print("DONE", tracker.epoch)
""")


def run_training(save_path, kill_after_epoch=None):
    cmd = [sys.executable, "-c", RUN_SCRIPT, str(save_path)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if kill_after_epoch is None:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        return out
    results = Path(save_path) / "checkpoints" / f"epoch_{kill_after_epoch}.pt"
    deadline = time.time() + 240
    while not results.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.time() < deadline
        time.sleep(0.02)
    time.sleep(0.1)  # well inside the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return None


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(tmp_path):
    reference = tmp_path / "uninterrupted"
    run_training(reference)

    killed = tmp_path / "killed"
    run_training(killed, kill_after_epoch=2)
    with open(killed / "results.pkl", "rb") as f:
        partial = pickle.load(f)                       # still a valid file after the kill
    assert partial["epoch"] >= 2 and len(partial["test_accs"]) == partial["epoch"]

    out = run_training(killed)                          # same call again: resumes on its own
    assert "DONE 6" in out
    done = Tracker(0).load_results(killed / "results.pkl")
    ref = Tracker(0).load_results(reference / "results.pkl")
    assert done.epoch == 6 and len(done.train_losses) == 6
    # Same RNG, optimizer, scheduler and data order after the restart: the same numbers.
    assert done.test_losses == pytest.approx(ref.test_losses, rel=1e-5)
    assert done.train_accs == ref.train_accs
    names = sorted(p.name for p in (killed / "checkpoints").iterdir())
    assert names == ["epoch_2.pt", "epoch_4.pt", "epoch_6.pt", "last.pt"]
    assert not list(killed.rglob("*.tmp"))


def test_finished_run_is_not_overwritten(tmp_path):
    quick_train(tmp_path / "run")
    with pytest.raises(TrainingSetupError, match="holds a finished run"):
        quick_train(tmp_path / "run")


def test_unfinished_run_with_other_settings_is_refused(tmp_path):
    quick_train(tmp_path / "run", n_epochs=3)
    state_path = tmp_path / "run" / "checkpoints" / "last.pt"
    state = torch.load(state_path, weights_only=True)
    state["finished"] = False
    torch.save(state, state_path)
    with pytest.raises(TrainingSetupError, match="different settings"):
        quick_train(tmp_path / "run", n_epochs=3, optim_config=dict(lr=0.5))
    assert quick_train(tmp_path / "run", n_epochs=3, resume=False).epoch == 3  # explicit restart


def test_resume_true_needs_a_saved_run(tmp_path):
    with pytest.raises(TrainingSetupError, match="no saved run"):
        quick_train(tmp_path / "empty", resume=True)


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path):
    path = tmp_path / "results.pkl"
    path.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(path) as f:
            f.write(b"half of the new")
            raise KeyboardInterrupt
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["results.pkl"]


# --- bad inputs ---------------------------------------------------------------

@pytest.mark.parametrize("overrides, message", [
    (dict(optim_name="adam"), r"optim_name='adam' is not in torch.optim. Did you mean 'Adam'\?.*Valid names: .*SGD"),
    (dict(optim_config=dict(lrr=0.1)), r"optim_config has the key 'lrr', which SGD does not take; it takes: .*lr"),
    (dict(lr_scheduler_name="StepLr"), r"lr_scheduler_name='StepLr'.*Did you mean 'StepLR'"),
    (dict(lr_scheduler_name="StepLR", lr_scheduler_config=dict(step=3)), r"lr_scheduler_config has the key 'step'.*step_size"),
    (dict(lr_scheduler_config=dict(gamma=0.5)), r"lr_scheduler_name is None"),
    (dict(train_data=TensorDataset(torch.zeros(0, 3, 8, 8), torch.zeros(0, dtype=torch.long))), r"train_data is empty"),
    (dict(test_data=[]), r"test_data is empty"),
    (dict(train_data=TensorDataset(torch.zeros(4, 3, 8, 8), torch.tensor([0, 1, 10, 2]))), r"train_data has label 10, but the model has 10 outputs"),
    (dict(test_data=TensorDataset(torch.zeros(4, 3, 8, 8), torch.tensor([0, -1, 1, 2]))), r"test_data has label -1"),
    (dict(model=nn.Sequential), r"model is the class Sequential, not a model"),
    (dict(model="resnet"), r"model must be a torch.nn.Module; got str"),
    (dict(model=nn.Linear(3, 10)), r"the model failed on a batch of train_data with inputs of shape \(2, 3, 8, 8\)"),
    (dict(n_epochs=0), r"n_epochs must be a whole number >= 1"),
    (dict(batch_size=2.5), r"batch_size must be a whole number"),
    (dict(device="cuda:0" if not torch.cuda.is_available() else "tpu"), r"device"),
    (dict(loss_fn="cross_entropy"), r"loss_fn must be callable"),
])
def test_bad_input_is_refused_before_training(tmp_path, overrides, message):
    with pytest.raises(TrainingSetupError, match=message) as info:
        quick_train(tmp_path / "run", **overrides)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run" / "checkpoints").exists()


# --- learning -------------------------------------------------------------------

@pytest.mark.slow
def test_learns_offline_digits(tmp_path):
    """A real learning check: well above the 10% of chance after a few epochs."""
    train_data, test_data = digits_datasets(size=8)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 64, 10))
    tracker = train(tmp_path / "digits", model, train_data, test_data, nn.CrossEntropyLoss(), "Adam",
                    dict(lr=3e-3), n_epochs=4, batch_size=32, device="cpu", seed=0)
    assert tracker.test_accs[-1] > 0.8
    assert tracker.train_losses[-1] < tracker.train_losses[0]


def test_per_batch_one_cycle_fills_in_its_steps(tmp_path):
    tracker = quick_train(tmp_path / "run", lr_scheduler_name="OneCycleLR", lr_scheduler_config=dict(max_lr=0.1), n_epochs=3)
    assert tracker.epoch == 3


def test_train_returns_the_tracker_and_reduce_on_plateau_works(tmp_path):
    tracker = quick_train(tmp_path / "run", lr_scheduler_name="ReduceLROnPlateau", lr_scheduler_config=dict(patience=0))
    assert isinstance(tracker, Tracker) and tracker.epoch == 2
    assert all(0 <= a <= 1 for a in tracker.train_accs + tracker.test_accs)


def test_learning_rate_is_recorded_per_epoch_and_plotted(tmp_path):
    tracker = quick_train(tmp_path / "run", lr_scheduler_name="OneCycleLR", lr_scheduler_config=dict(max_lr=0.1), n_epochs=3)
    # One value per epoch, the one each epoch starts with: OneCycleLR starts at max_lr / div_factor (25).
    assert len(tracker.lrs) == 3 and tracker.lrs[0] == pytest.approx(0.1 / 25)
    assert max(tracker.lrs) > tracker.lrs[0]
    assert len(tracker.figure().axes) == 3          # loss, accuracy, learning rate
    saved = Tracker(0).load_results(tmp_path / "run" / "results.pkl")
    assert saved.lrs == tracker.lrs


def test_tracker_files_without_learning_rates_still_load(tmp_path):
    old = dict(train_losses=[1.0], test_losses=[2.0], train_accs=[0.5], test_accs=[0.25], epoch=1, n_epochs=1)
    with open(tmp_path / "results.pkl", "wb") as f:
        pickle.dump(old, f)
    tracker = Tracker(0).load_results(tmp_path / "results.pkl")
    assert tracker.lrs == [] and tracker.test_accs == [0.25]
    assert len(tracker.figure().axes) == 2           # no learning-rate panel without learning rates
    assert set(tracker.results()) == set(old)        # and its results keep the course's six keys
