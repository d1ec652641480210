"""Training speed: hw_utils.train against the course's original loop, in one run.

Both train the same model (same initial weights) on the same CIFAR-shaped data
(uint8 images turned into PIL images and transformed per sample, as
torchvision's CIFAR10 dataset does) for the same epochs and batch size. The
baseline re-implements the original loop faithfully: no DataLoader workers,
a `.item()` host sync on every batch, no inference mode. Both do the same
work per epoch: a training pass, an eval pass over the training set, a pass
over the test set, and checkpoint files.

    python benchmarks/train_speed.py                       # CPU, small convnet
    python benchmarks/train_speed.py --model resnet18      # a ResNet-sized model (GPU)

Prints training-set images per second (epochs x train images / wall time) for
each and the ratio. Timings on a shared machine are noisy: compare ratios.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hw_utils import train  # noqa: E402


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


def make_model(name: str) -> nn.Module:
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
    parser.add_argument("--model", choices=("small", "resnet18"), default="small")
    parser.add_argument("--n-train", type=int, default=2048)
    parser.add_argument("--n-test", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--fast", action="store_true", help="also time train(precision='auto', channels_last=True)")
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

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        # A short warm-up so neither side pays for first-use initialisation.
        warm = FakeCIFAR(64, TRAIN_TF, seed=2)
        original_loop(f"{tmp}/warm", fresh_model(), **{**common, "train_data": warm, "test_data": warm, "n_epochs": 1})
        runs["original loop"] = timed(lambda: original_loop(f"{tmp}/orig", fresh_model(), **common), args.device)
        runs["hw_utils.train"] = timed(lambda: train(f"{tmp}/new", fresh_model(), **common), args.device)
        if args.fast:
            runs["hw_utils.train fast"] = timed(
                lambda: train(f"{tmp}/fast", fresh_model(), precision="auto", channels_last=True, **common), args.device)

    images = args.epochs * args.n_train
    base = images / runs["original loop"]
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU x{torch.get_num_threads()} threads"
    print(f"\nmodel={args.model} device={args.device} ({device_name}) epochs={args.epochs} "
          f"train={args.n_train} test={args.n_test} batch={args.batch_size}")
    for name, seconds in runs.items():
        rate = images / seconds
        print(f"  {name:<22} {seconds:8.2f} s  {rate:9.1f} train images/s  ratio {rate / base:5.2f}x")


if __name__ == "__main__":
    main()
