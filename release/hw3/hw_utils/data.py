"""Image datasets that live on the training device and augment whole batches there.

The course's pipeline turns every image into a PIL image, transforms it on the
CPU, and copies each batch to the GPU; on a Colab GPU that, not the model, sets
the pace. `DeviceImages` keeps the whole dataset on the device as uint8 and
applies the usual CIFAR augmentations to a batch at once with tensor ops:

    random crop   pad by `crop_padding` (reflect or zeros), then cut a random window
    flip          mirror left-right with probability 1/2
    cutout        zero a random `cutout` x `cutout` square (after normalisation)
    normalise     x / 255, minus `mean`, divided by `std` (default: [-0.5, 0.5])

`train()` recognises these datasets and draws batches from them directly (no
DataLoader, no worker processes). Indexing one sample still works, unaugmented.

    train_data, test_data = cifar10("data", Device)             # CIFAR-10 on the GPU
    train_data = DeviceImages(images_uint8, labels, train=True)  # any images
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class DeviceImages(torch.utils.data.Dataset):
    def __init__(self, images, labels, *, train: bool, device="cpu", crop_padding: int = 4,
                 padding_mode: str = "reflect", flip: bool = True, cutout: int = 0,
                 mean=0.5, std=1.0):
        images = torch.as_tensor(images)
        if images.dim() != 4:
            raise ValueError(f"images must be a batch (N, C, H, W) or (N, H, W, C); got shape {tuple(images.shape)}")
        if images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
            images = images.permute(0, 3, 1, 2)  # NHWC (as torchvision keeps CIFAR) -> NCHW
        if images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 (0..255); got {images.dtype}")
        if padding_mode not in ("reflect", "zeros"):
            raise ValueError(f"padding_mode must be 'reflect' or 'zeros'; got {padding_mode!r}")
        self.device = torch.device(device)
        self.train, self.flip, self.cutout, self.pad = train, flip, cutout, crop_padding if train else 0
        self.images = images.contiguous().to(self.device)
        self.targets = torch.as_tensor(labels, dtype=torch.long).to(self.device)
        channels = self.images.shape[1]
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=self.device).expand(channels).view(1, -1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32, device=self.device).expand(channels).view(1, -1, 1, 1)
        # Padded once here, so each batch's crop is a cheap gather.
        self.padded = self._pad(self.images, padding_mode) if self.pad else self.images

    def _pad(self, images, mode):
        chunks = []
        for chunk in images.split(4096):  # reflect padding needs floats; uint8 values survive exactly
            chunks.append(F.pad(chunk.float(), (self.pad,) * 4, mode="reflect" if mode == "reflect" else "constant").to(torch.uint8))
        return torch.cat(chunks)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i):
        """One sample, normalised and not augmented (as a test transform would give it)."""
        return self._normalise(self.images[i : i + 1])[0], self.targets[i]

    def _normalise(self, x):
        return (x.float() / 255 - self.mean) / self.std

    def augment(self, index: torch.Tensor) -> torch.Tensor:
        """The samples at `index`, randomly cropped, flipped and cut out, normalised."""
        n, (h, w) = len(index), self.images.shape[2:]
        x = self.padded[index]
        if self.pad:
            dy = torch.randint(0, 2 * self.pad + 1, (n,), device=self.device)
            dx = torch.randint(0, 2 * self.pad + 1, (n,), device=self.device)
            rows = (torch.arange(h, device=self.device) + dy[:, None])[:, None, :, None]  # (n, 1, h, 1)
            cols = (torch.arange(w, device=self.device) + dx[:, None])[:, None, None, :]  # (n, 1, 1, w)
            x = x[torch.arange(n, device=self.device)[:, None, None, None],
                  torch.arange(x.shape[1], device=self.device)[None, :, None, None], rows, cols]
        if self.flip:
            mirror = torch.rand(n, device=self.device) < 0.5
            x = torch.where(mirror[:, None, None, None], x.flip(3), x)
        x = self._normalise(x)
        if self.cutout:
            top = torch.randint(0, h - self.cutout + 1, (n, 1, 1, 1), device=self.device)
            left = torch.randint(0, w - self.cutout + 1, (n, 1, 1, 1), device=self.device)
            yy = torch.arange(h, device=self.device).view(1, 1, h, 1)
            xx = torch.arange(w, device=self.device).view(1, 1, 1, w)
            hole = (yy >= top) & (yy < top + self.cutout) & (xx >= left) & (xx < left + self.cutout)
            x = x.masked_fill(hole, 0.0)
        return x

    def batches(self, batch_size: int, shuffle: bool = False, augment: bool | None = None, generator=None):
        """Yield (images, labels) batches on the device. `augment` defaults to `train`."""
        augment = self.train if augment is None else augment
        order = torch.randperm(len(self), generator=generator) if shuffle else torch.arange(len(self))
        order = order.to(self.device)
        for start in range(0, len(self), batch_size):
            index = order[start : start + batch_size]
            x = self.augment(index) if augment else self._normalise(self.images[index])
            yield x, self.targets[index]



class DeviceBatches:
    """What train() uses instead of a DataLoader for DeviceImages: a length, and a
    fresh pass over the data (reshuffled and re-augmented) each time it is iterated."""

    def __init__(self, data: DeviceImages, batch_size: int, shuffle: bool, augment: bool, generator=None):
        self.data, self.batch_size, self.shuffle, self.augment, self.generator = data, batch_size, shuffle, augment, generator

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def __iter__(self):
        return self.data.batches(self.batch_size, self.shuffle, self.augment, self.generator)


def cifar10(root="data", device="cpu", download: bool = True, **options):
    """CIFAR-10 train and test sets as `DeviceImages` on `device`.

    Uses torchvision's own download and files (`root/cifar-10-batches-py`).
    `options` go to the training set (e.g. cutout=8, padding_mode='zeros').
    """
    from torchvision import datasets

    try:
        train = datasets.CIFAR10(root, train=True, download=download)
        test = datasets.CIFAR10(root, train=False, download=download)
    except (RuntimeError, OSError) as err:  # no files, or no internet to fetch them
        raise RuntimeError(
            f"CIFAR-10 is not in {root!r} and could not be downloaded ({type(err).__name__}: {err}). "
            "Connect to the internet and call cifar10(root, device, download=True), or put "
            f"cifar-10-python.tar.gz (from the CIFAR-10 web page) in {root!r} and run again."
        ) from err
    return (DeviceImages(train.data, train.targets, train=True, device=device, **options),
            DeviceImages(test.data, test.targets, train=False, device=device))
