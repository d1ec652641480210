"""Verified accuracy under Gradescope's limits: what grading a ResNet-18-sized CIFAR model
costs, against the plain evaluation loop, measured in the same run under the same limits.

The submission is HW5's demo reference (demo/hw5_samples.py) with its model cell replaced
by a ResNet-18 adapted to 32x32 images (the seed's design: a 3x3 stem, four stages of two
residual blocks, max-pool downsampling, normalisation inside the model; about 11 million
parameters and 0.56 GFLOP per image) and untrained weights (speed and memory do not depend
on them). The test set is N synthetic images (demo/cifar_like.py) written as a CIFAR python
batch into the unpacked Gradescope bundle in place of the kit's stand-in.

    grading   run_autograder (plan, sandboxed child, judge) in a cgroup of 768 MB and half
              a CPU: the child times the model, evaluates what fits its 240 s budget (all N
              images or a secret subset), the grader compares with the labels
    baseline  in a cgroup with the same limits, a plain script: build the model, load
              model.pt, classify all N images in batches of 100 under torch.inference_mode

Printed: wall time, CPU time and peak anonymous memory of each, the images each evaluated,
and the ratios grading / baseline (total time, time per evaluated image, peak memory).

    python benchmarks/verified_accuracy.py [--images 10000] [--memory-mb 768] [--cpus 0.5]
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from autograder.gradescope import GRADESCOPE_CPUS, GRADESCOPE_MEMORY_MB, GRADESCOPE_SECONDS, build_bundle, simulate  # noqa: E402
from autograder.hostlimits import CgroupUnavailable, LimitedGroup  # noqa: E402

RESNET18 = '''# AUTOGRADED
class Residual(nn.Module):
    """Two 3x3 convolutions with batch norm, added to the input (projected when the width changes)."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                                  nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))
        self.skip = nn.Sequential() if c_in == c_out else nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        return F.relu(self.body(x) + self.skip(x))


class Net(nn.Module):
    """ResNet-18 for 32x32 images: 3x3 stem, stages of 64, 128, 256, 512 channels, max-pool between them."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1))
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        self.stages = nn.Sequential(
            Residual(64, 64), Residual(64, 64),
            Residual(64, 128), nn.MaxPool2d(2), Residual(128, 128),
            Residual(128, 256), nn.MaxPool2d(2), Residual(256, 256),
            Residual(256, 512), nn.MaxPool2d(2), Residual(512, 512))
        self.head = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.stages(self.stem((x - self.mean) / self.std))
        return self.head(x.mean(dim=(2, 3)))
'''

BASELINE = '''
import json, sys, time
import numpy as np, torch
from torch import nn
import torch.nn.functional as F
sys.path.insert(0, {root!r})
from checklib.verified import read_image_set
exec(compile({cell!r}, "<model>", "exec"))
start = time.perf_counter()
model = Net()
model.load_state_dict(torch.load({weights!r}, weights_only=True))
model.eval()
images, labels = read_image_set({test_set!r})
correct = 0
with torch.inference_mode():
    for i in range(0, len(images), 100):
        x = torch.from_numpy(images[i:i + 100]).permute(0, 3, 1, 2).float() / 255
        correct += int((model(x).argmax(1).numpy() == labels[i:i + 100]).sum())
print(json.dumps({{"seconds": time.perf_counter() - start, "images": len(images), "accuracy": correct / len(images)}}))
'''


def submission(folder: Path) -> Path:
    """HW5's demo reference with the ResNet-18 model cell and its untrained weights."""
    import nbformat
    import torch

    from demo import hw5_samples

    hw5_samples.build(folder)
    path = folder / "HW5.ipynb"
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "model")
    cell.source = RESNET18
    nbformat.write(nb, path)
    ns = {"torch": torch, "nn": torch.nn, "F": torch.nn.functional}
    exec(compile(RESNET18, "<model>", "exec"), ns)
    torch.manual_seed(0)
    torch.save(ns["Net"]().state_dict(), folder / "model.pt")
    return folder


def line(label, usage, images, total):
    return (f"  {label:<10} {usage.seconds:6.1f} s wall, {usage.cpu_seconds:6.1f} s CPU | peak {usage.peak_anon_mb:4.0f} MB anon "
            f"({usage.peak_mb:4.0f} MB cgroup) | OOM kills {usage.oom_kills} | {images:,} of {total:,} images evaluated")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000, help="test images (default 10,000, CIFAR-10's test set)")
    parser.add_argument("--memory-mb", type=int, default=GRADESCOPE_MEMORY_MB)
    parser.add_argument("--cpus", type=float, default=GRADESCOPE_CPUS)
    args = parser.parse_args()
    try:
        with LimitedGroup(64, args.cpus):
            pass
    except CgroupUnavailable as err:
        sys.exit(f"cannot apply Gradescope's limits here: {err}")

    from demo.cifar_like import _write_batch, cifar_like_images

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sub = submission(tmp / "submission")
        source = tmp / "machine" / "autograder" / "source"
        with zipfile.ZipFile(build_bundle("hw5", tmp / "hw5_autograder.zip")) as zf:
            zf.extractall(source)
        test_set = source / "assignments" / "hw5" / "assets" / "test_batch"
        images, labels = cifar_like_images(args.images, seed=4)
        _write_batch(test_set, "testing batch 1 of 1", images, labels)
        print(f"ResNet-18-sized model, {args.images:,} test images, cgroup of {args.memory_mb} MB and {args.cpus:g} CPU "
              f"(Gradescope: {GRADESCOPE_MEMORY_MB} MB, {GRADESCOPE_CPUS:g} CPU, {GRADESCOPE_SECONDS} s)")

        _, data, graded = simulate("hw5", sub, tmp / "machine", args.memory_mb, args.cpus)
        tests = {t["tags"][1]: t for t in (data or {}).get("tests", [])}
        message = tests.get("accuracy.verified", {}).get("output", (data or {}).get("output", "no results.json"))
        found = re.search(r"subset of ([\d,]+)|all ([\d,]+)", message)
        evaluated = int((found.group(1) or found.group(2)).replace(",", "")) if found else 0
        board = {c["name"]: c["value"] for c in (data or {}).get("leaderboard", [])}

        script = BASELINE.format(root=str(ROOT), cell=RESNET18.split("\n", 1)[1], weights=str(sub / "model.pt"),
                                 test_set=str(test_set))
        with LimitedGroup(args.memory_mb, args.cpus) as group:
            done = group.run([sys.executable, "-c", script], cwd=tmp, timeout=3 * GRADESCOPE_SECONDS)
            plain = group.usage()
        if done.returncode != 0:
            sys.exit(f"the baseline failed: {done.stderr[-2000:]}")
        baseline = json.loads(done.stdout.strip().splitlines()[-1])

        print(line("grading", graded, evaluated, args.images))
        print(f"  {'':<10} {message.splitlines()[0][:200]}")
        print(f"  {'':<10} leaderboard: {board}")
        print(line("baseline", plain, baseline["images"], args.images)
              + f" | evaluation loop {baseline['seconds']:.1f} s")
        if evaluated:
            print(f"  ratios (grading / baseline): total time {graded.seconds / plain.seconds:.2f}, "
                  f"time per evaluated image {(graded.seconds / evaluated) / (plain.seconds / baseline['images']):.2f}, "
                  f"peak memory {graded.peak_anon_mb / max(plain.peak_anon_mb, 1):.2f}")
        shutil.rmtree(tmp / "machine", ignore_errors=True)


if __name__ == "__main__":
    main()
