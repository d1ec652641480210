"""Training speed: hw_utils.train against the course's original loop, in one run.

All runs train the same model (same initial weights) on the same generated
CIFAR-shaped uint8 images, for the same epochs and batch size:

  (a) original loop         the course's loop re-implemented faithfully: images
                            turned into PIL images and transformed per sample
                            (crop, flip) in the main process, a `.item()` host
                            sync every batch, no inference mode;
  (b) train() + DataLoader  the same per-sample transforms, hw_utils's default
                            loop: train metrics from the training pass itself
                            (the course's second, eval-mode pass over the
                            training set is train(..., train_eval=True));
  (c) train() + DeviceImages the images kept on the device as uint8, cropped and
                            flipped in whole batches there (hw_utils.data);
  (d) with --fast: (c) plus precision='auto' and channels_last (and --compile).

Each does per epoch a training pass, a test pass and its checkpoint files; (a)
also its eval pass over the training set (see (b)).

    python benchmarks/train_speed.py                              # CPU, small HW4 model
    python benchmarks/train_speed.py --model hw4 --fast           # the HW4 fast reference model (GPU)

    python benchmarks/train_speed.py --cifar-epoch                # also (a) and (b) at one CIFAR-10-sized epoch
    python benchmarks/train_speed.py --cifar-epoch --repeat 0     # only that

Prints training-set images per second (epochs x train images / wall time) and
ratios to (a). Timings on a shared machine are noisy: the runs are interleaved
(a, b, c, a, b, c, ...) --repeat times and each keeps its fastest, so a burst of
load elsewhere does not land on one side only; compare ratios.
"""
from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2
from tqdm.auto import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from hw_utils import DeviceImages, train  # noqa: E402

# The HW4 fast reference configuration (source/hw4/HW4.ipynb) and a small one for CPUs.
HW4_CONFIGS = {
    "hw4": dict(base_channels=64, expands=[1, 2, 1, 2, 2, 1], activation="relu", batchnorm=True, residual=True),
    "hw4-small": dict(base_channels=16, expands=[1, 2, 2], activation="relu", batchnorm=True, residual=True),
}


class FakeCIFAR(Dataset):
    """Random uint8 32x32 RGB images with labels, served like torchvision's CIFAR10."""

    def __init__(self, n, transform, seed):
        rng = np.random.default_rng(seed)
        self.data = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        self.targets = rng.integers(0, 10, size=n).tolist()
        self.transform = transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.data[i])), self.targets[i]


TRAIN_TF = v2.Compose([v2.ToImage(), v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(),
                       v2.ToDtype(torch.float32, scale=True), v2.Lambda(lambda x: x - 0.5)])
TEST_TF = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Lambda(lambda x: x - 0.5)])


def hw4_model_class():
    """The reference Model of HW4, taken from the instructor's source notebook."""
    import json
    from typing import Sequence

    import torch.nn.functional as F

    nb = json.loads((REPO / "source" / "hw4" / "HW4.ipynb").read_text())
    cell = next(c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "resnet")
    namespace = {"torch": torch, "nn": nn, "F": F, "Sequence": Sequence}
    exec("".join(cell["source"]), namespace)
    return namespace["Model"]


def make_model(name: str) -> nn.Module:
    if name in HW4_CONFIGS:
        return hw4_model_class()(**HW4_CONFIGS[name])
    if name == "resnet18":
        from torchvision.models import resnet18
        return resnet18(num_classes=10)
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10),
    )


def original_loop(save_path, model, train_data, test_data, loss_fn, optim_name, optim_config,
                  n_epochs, batch_size, device):
    """The course's loop as described in course-facts §1 (the baseline)."""
    optimizer = getattr(torch.optim, optim_name)(model.parameters(), **optim_config)
    train_loader = DataLoader(train_data, batch_size=batch_size, shuffle=True)
    train_eval_loader = DataLoader(train_data, batch_size=batch_size, shuffle=False)
    test_loader = DataLoader(test_data, batch_size=batch_size, shuffle=False)
    os.makedirs(f"{save_path}/checkpoints", exist_ok=True)
    history = {k: [] for k in ("train_losses", "test_losses", "train_accs", "test_accs")}

    def run_eval(loader):
        model.eval()
        total, correct, n = 0.0, 0, 0
        with torch.no_grad():
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                out = model(x)
                total += loss_fn(out, y).item() * len(y)          # host sync per batch
                correct += (out.argmax(1) == y).sum().item()
                n += len(y)
        return total / n, correct / n

    for epoch in tqdm(range(n_epochs), desc="original loop"):
        model.train()
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            out = model(x)
            loss = loss_fn(out, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()                                          # the per-batch sync of the original
        train_loss, train_acc = run_eval(train_eval_loader)
        test_loss, test_acc = run_eval(test_loader)
        for key, value in zip(history, (train_loss, test_loss, train_acc, test_acc)):
            history[key].append(value)
        torch.save(model.state_dict(), f"{save_path}/checkpoints/epoch_{epoch + 1}.pt")
        with open(f"{save_path}/results.pkl", "wb") as f:
            pickle.dump({**history, "epoch": epoch + 1, "n_epochs": n_epochs}, f)


def timed(fn, device) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", choices=("hw4-small", "hw4", "small", "resnet18"), default="hw4-small")
    parser.add_argument("--n-train", type=int, default=2048)
    parser.add_argument("--n-test", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--fast", action="store_true", help="also time (d): DeviceImages + precision='auto' + channels_last")
    parser.add_argument("--compile", action="store_true", help="with --fast: also torch.compile the model")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved repetitions; each run keeps its fastest")
    parser.add_argument("--cifar-epoch", action="store_true",
                        help="also time (a) and (b) for one epoch at CIFAR-10's size (50,000 train, 10,000 test images)")
    args = parser.parse_args()

    train_data = FakeCIFAR(args.n_train, TRAIN_TF, seed=0)
    test_data = FakeCIFAR(args.n_test, TEST_TF, seed=1)
    torch.manual_seed(0)
    initial = make_model(args.model).state_dict()
    common = dict(train_data=train_data, test_data=test_data, loss_fn=nn.CrossEntropyLoss(),
                  optim_name="Adam", optim_config=dict(lr=1e-3), n_epochs=args.epochs,
                  batch_size=args.batch_size, device=args.device)

    def fresh_model():
        model = make_model(args.model)
        model.load_state_dict(initial)
        return model.to(args.device)

    device_common = {**common,
                     "train_data": DeviceImages(train_data.data, train_data.targets, train=True, device=args.device),
                     "test_data": DeviceImages(test_data.data, test_data.targets, train=False, device=args.device)}
    contenders = {
        "(a) original loop": lambda folder: original_loop(folder, fresh_model(), **common),
        "(b) train + DataLoader": lambda folder: train(folder, fresh_model(), **common),
        "(c) train + DeviceImages": lambda folder: train(folder, fresh_model(), **device_common),
    }
    if args.fast:
        contenders["(d) (c) + amp + ch.last" + (" + compile" if args.compile else "")] = lambda folder: train(
            folder, fresh_model(), precision="auto", channels_last=True, compile=args.compile, **device_common)

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        # A short warm-up so neither side pays for first-use initialisation.
        warm = FakeCIFAR(64, TRAIN_TF, seed=2)
        original_loop(f"{tmp}/warm", fresh_model(), **{**common, "train_data": warm, "test_data": warm, "n_epochs": 1})
        for rep in range(args.repeat):
            for i, (name, run) in enumerate(contenders.items()):
                seconds = timed(lambda: run(f"{tmp}/{rep}-{i}"), args.device)
                runs[name] = min(seconds, runs.get(name, seconds))

    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU x{torch.get_num_threads()} threads"
    if runs:  # --repeat 0 times only the CIFAR-10-sized epoch
        print(f"\nmodel={args.model} device={args.device} ({device_name}) epochs={args.epochs} "
              f"train={args.n_train} test={args.n_test} batch={args.batch_size} (best of {args.repeat}, interleaved)")
        report(runs, args.epochs * args.n_train)

    if args.cifar_epoch:  # one epoch at CIFAR-10's size, where per-epoch costs weigh least
        big = dict(common, train_data=FakeCIFAR(50_000, TRAIN_TF, seed=3), test_data=FakeCIFAR(10_000, TEST_TF, seed=4),
                   n_epochs=1)
        with tempfile.TemporaryDirectory() as tmp:
            runs = {"(a) original loop": timed(lambda: original_loop(f"{tmp}/a", fresh_model(), **big), args.device),
                    "(b) train + DataLoader": timed(lambda: train(f"{tmp}/b", fresh_model(), **big), args.device)}
        print(f"\nmodel={args.model} device={args.device} ({device_name}), one CIFAR-10-sized epoch: "
              f"train=50000 test=10000 batch={args.batch_size}")
        report(runs, 50_000)


def report(runs: dict, images: int) -> None:
    base = images / runs["(a) original loop"]
    for name, seconds in runs.items():
        rate = images / seconds
        print(f"  {name:<34} {seconds:8.2f} s  {rate:9.1f} train images/s  ratio {rate / base:5.2f}x")


if __name__ == "__main__":
    main()
