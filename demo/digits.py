"""Offline image data for the demo, tests and benchmarks.

CIFAR-10 and MNIST cannot be downloaded everywhere the kit runs (CI has no
network beyond package registries), so the kit trains on scikit-learn's
bundled handwritten digits (1,797 8x8 greyscale images, 10 classes), shaped
like CIFAR images: 3 channels, values in [-0.5, 0.5].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset


def digits_datasets(size: int = 16, test_fraction: float = 0.2, seed: int = 0):
    """Train and test TensorDatasets of digits as (3, size, size) float images."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8) in [0, 1]
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = images.expand(-1, 3, -1, -1).contiguous() - 0.5
    labels = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_test = int(len(labels) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return TensorDataset(images[train], labels[train]), TensorDataset(images[test], labels[test])


def random_cifar_like(n: int, n_classes: int = 10, size: int = 32, seed: int = 0) -> TensorDataset:
    """n random (3, size, size) images in [-0.5, 0.5] with random labels (shape tests only)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, size, size, generator=g) - 0.5
    return TensorDataset(images, torch.randint(0, n_classes, (n,), generator=g))
