"""MNIST-format data made offline, for HW1's tests and `make demo`.

HW1's notebook reads the course's `Datasets/mnist.pkl`: a pickle of
`((X_train, y_train), (X_test, y_test))` where each X is a uint8 array of
(N, 32, 32) greyscale images with values 0..255 (MNIST's 28x28 digits padded by
2 pixels on every side) and each y an int64 array of labels 0..9. MNIST cannot
be downloaded here, so this module writes a file of exactly that layout from
scikit-learn's bundled handwritten digits (1,797 8x8 images, values 0..16):
each is upsampled to 28x28, scaled to 0..255 and padded to 32x32.

    python -m demo.mnist_like Datasets/mnist.pkl
"""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np

IMAGE_SIZE = 32   # the course's padded MNIST size
DIGIT_SIZE = 28   # MNIST's own digit size, before padding


def mnist_like_arrays(test_fraction: float = 0.2, seed: int = 0):
    """((X_train, y_train), (X_test, y_test)): uint8 (N, 32, 32) images and int64 labels."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0   # (N, 1, 8, 8) in [0, 1]
    images = F.interpolate(images, size=(DIGIT_SIZE, DIGIT_SIZE), mode="bilinear", align_corners=False)
    pad = (IMAGE_SIZE - DIGIT_SIZE) // 2
    images = F.pad(images, (pad, pad, pad, pad))                                     # black border, as MNIST's
    pixels = (images.squeeze(1).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    labels = np.asarray(digits.target, dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    n_test = int(len(labels) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return (pixels[train], labels[train]), (pixels[test], labels[test])


def write_mnist_pkl(path: Path, **kwargs) -> Path:
    """Write the course's mnist.pkl layout to `path` (folders made as needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(mnist_like_arrays(**kwargs), f)
    return path


if __name__ == "__main__":
    target = write_mnist_pkl(Path(sys.argv[1] if len(sys.argv) > 1 else "Datasets/mnist.pkl"))
    print(f"wrote {target} ({target.stat().st_size:,} bytes)")
