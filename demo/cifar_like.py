"""CIFAR-10-format data made offline, for the CIFAR homeworks' tests and `make demo`.

CIFAR-10 cannot be downloaded here or in CI, so this module writes files in the
dataset's own layouts, filled with synthetic images a small network can learn
in seconds:

    python batches  <root>/cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta
                    each a pickled dict: b'data' uint8 [N, 3072] (rows are channel-first:
                    1024 red, then 1024 green, then 1024 blue values, each 32x32 row-major),
                    b'labels' list of int, b'batch_label', b'filenames'
    course .npy     <root>/x_train.npy uint8 (N, 32, 32, 3) (NHWC), y_train.npy int64 (N, 1),
                    x_test.npy, y_test.npy (the layout one course shipped CIFAR-10 in)

The real batches were pickled by Python 2: their keys and byte strings are Python 2
`str`, which Python 3 reads as `bytes` with `pickle.load(f, encoding='bytes')`
(how most course readers open them: `d[b'data']`) and as `str` with
`encoding='latin1'` (how torchvision opens them: `d['data']`). The batches written
here are pickled the same way, so both kinds of reader work on them as on the real files.

Each image shows a handwritten digit from scikit-learn's bundled digits (the
class is the digit), enlarged, in a random colour at a random place, on a random
colour gradient with noise: the class is in the shape, not in a colour or a fixed
pixel, so the usual augmentations (crop, horizontal flip) keep it learnable.

    python -m demo.cifar_like data                  # full size: 50,000 + 10,000 images
    python -m demo.cifar_like data --train 5000 --test 1000 --npy
"""
from __future__ import annotations

import argparse
import io
import pickle
import struct
from pathlib import Path

import numpy as np

SIZE = 32           # CIFAR image side, pixels
DIGIT_SIZE = 20     # side of the drawn digit, pixels (placed at a random offset)
LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
BATCHES = 5         # data_batch_1..5, as CIFAR-10 splits its training set


def cifar_like_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` synthetic images, uint8 (n, 32, 32, 3) NHWC, and their int64 labels 0..9."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    digits = load_digits()
    shapes = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0          # (1797, 1, 8, 8) in [0, 1]
    shapes = F.interpolate(shapes, size=(DIGIT_SIZE, DIGIT_SIZE), mode="bilinear", align_corners=False)
    shapes = shapes.squeeze(1).clamp(0, 1).numpy()                                          # (1797, 20, 20)

    labels = rng.integers(0, 10, size=n)
    by_class = [np.flatnonzero(digits.target == k) for k in range(10)]
    pick = np.array([rng.choice(by_class[k]) for k in labels], dtype=np.int64)

    # Background: a random linear colour gradient plus noise, values in [0, 1].
    ramp = np.linspace(0.0, 1.0, SIZE, dtype=np.float32)
    start, end = rng.uniform(0, 0.6, (n, 1, 1, 3)), rng.uniform(0, 0.6, (n, 1, 1, 3))
    vertical = rng.random(n) < 0.5
    t = np.where(vertical[:, None, None, None], ramp[None, :, None, None], ramp[None, None, :, None])
    images = (start + (end - start) * t).astype(np.float32) * np.ones((1, SIZE, SIZE, 1), np.float32)
    images += rng.normal(0, 0.06, images.shape).astype(np.float32)

    # The digit: a random bright colour, pasted at a random offset (grouped by offset).
    colour = rng.uniform(0.5, 1.0, (n, 3)).astype(np.float32)
    top, left = rng.integers(0, SIZE - DIGIT_SIZE + 1, n), rng.integers(0, SIZE - DIGIT_SIZE + 1, n)
    for dy in range(SIZE - DIGIT_SIZE + 1):
        for dx in range(SIZE - DIGIT_SIZE + 1):
            at = np.flatnonzero((top == dy) & (left == dx))
            if len(at) == 0:
                continue
            alpha = shapes[pick[at]][..., None]                                              # (k, 20, 20, 1)
            window = images[at, dy:dy + DIGIT_SIZE, dx:dx + DIGIT_SIZE]
            images[at, dy:dy + DIGIT_SIZE, dx:dx + DIGIT_SIZE] = window * (1 - alpha) + colour[at, None, None, :] * alpha
    pixels = (images.clip(0, 1) * 255).round().astype(np.uint8)
    return pixels, labels.astype(np.int64)


def to_rows(images: np.ndarray) -> np.ndarray:
    """NHWC uint8 images -> CIFAR's [N, 3072] channel-first rows."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1))


def python2_pickle(obj) -> bytes:
    """Pickle `obj` (protocol 2) with every `bytes` written as a Python 2 `str`, as
    the real CIFAR batches were: `encoding='bytes'` then reads them back as bytes,
    `encoding='latin1'` as str (and numpy rebuilds arrays from either)."""

    class Py2Pickler(pickle._Pickler):   # the pure-Python pickler: its dispatch table can be extended
        dispatch = dict(pickle._Pickler.dispatch)

        def save_py2_str(self, value: bytes):
            if len(value) < 256:
                self.write(pickle.SHORT_BINSTRING + bytes([len(value)]) + value)
            else:
                self.write(pickle.BINSTRING + struct.pack("<i", len(value)) + value)
            self.memoize(value)

        dispatch[bytes] = save_py2_str

    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def write_cifar_python(root, n_train: int = 50000, n_test: int = 10000, seed: int = 0) -> Path:
    """Write `root/cifar-10-batches-py/` (five training batches, a test batch, the meta
    file) with synthetic images; returns that folder."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    (x_train, y_train), (x_test, y_test) = _split(n_train, n_test, seed)
    parts = np.array_split(np.arange(n_train), BATCHES)
    for i, part in enumerate(parts, start=1):
        _write_batch(folder / f"data_batch_{i}", f"training batch {i} of {BATCHES}", x_train[part], y_train[part])
    _write_batch(folder / "test_batch", "testing batch 1 of 1", x_test, y_test)
    meta = {b"label_names": [name.encode() for name in LABEL_NAMES], b"num_cases_per_batch": len(parts[0]), b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(python2_pickle(meta))
    return folder


def write_cifar_npy(root, n_train: int = 50000, n_test: int = 10000, seed: int = 0) -> Path:
    """Write x_train.npy / y_train.npy / x_test.npy / y_test.npy (NHWC uint8, labels (N, 1)) in `root`."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (x_train, y_train), (x_test, y_test) = _split(n_train, n_test, seed)
    for name, array in (("x_train", x_train), ("y_train", y_train[:, None]), ("x_test", x_test), ("y_test", y_test[:, None])):
        np.save(root / f"{name}.npy", array)
    return root


def _split(n_train: int, n_test: int, seed: int):
    images, labels = cifar_like_images(n_train + n_test, seed)
    return (images[:n_train], labels[:n_train]), (images[n_train:], labels[n_train:])


def _write_batch(path: Path, title: str, images: np.ndarray, labels: np.ndarray) -> None:
    batch = {
        b"batch_label": title.encode(),
        b"labels": [int(label) for label in labels],
        b"data": to_rows(images),
        b"filenames": [f"synthetic_{i:05d}.png".encode() for i in range(len(labels))],
    }
    path.write_bytes(python2_pickle(batch))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", default="data", help="folder to write into (default: data)")
    parser.add_argument("--train", type=int, default=50000, help="training images (default 50,000, as CIFAR-10)")
    parser.add_argument("--test", type=int, default=10000, help="test images (default 10,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--npy", action="store_true", help="also write the course's .npy layout")
    args = parser.parse_args(argv)
    folder = write_cifar_python(args.root, args.train, args.test, args.seed)
    print(f"wrote {folder}")
    if args.npy:
        print(f"wrote {write_cifar_npy(args.root, args.train, args.test, args.seed)}/x_*.npy, y_*.npy")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
