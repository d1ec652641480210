"""Data pipelines a graded cell builds: the datasets it creates are captured (a
stand-in class downloads nothing), and their transforms measured on grader images.

In the sandbox:
    capture_datasets(ns, module_name, class_name, image_size)  a cell stub: `module_name.class_name`
        becomes a stand-in recording each dataset the cell builds (train flag, transform)
    captured_transforms(ns)  {"train" | "test": {"transforms": [names], "sample": measure(...)}}
In the grader:
    RANDOM_TRANSFORMS, judge_random_augmentation(min_kinds), judge_transform_output(...)
Both:
    json_images(path, size, channels)  small bundled grey images as (N, channels, size, size) in [-0.5, 0.5]
"""
from __future__ import annotations

import types

from .checks import failed, passed

RANDOM_TRANSFORMS = {
    "RandomCrop", "RandomResizedCrop", "RandomHorizontalFlip", "RandomVerticalFlip", "ColorJitter", "RandomRotation",
    "RandomAffine", "RandomPerspective", "RandomErasing", "RandomGrayscale", "RandomInvert", "RandomPosterize",
    "RandomSolarize", "RandomAdjustSharpness", "RandomAutocontrast", "RandomEqualize", "RandAugment", "AutoAugment",
    "TrivialAugmentWide", "AugMix", "ElasticTransform", "GaussianBlur", "GaussianNoise", "RandomPhotometricDistort",
    "RandomChannelPermutation", "RandomZoomOut", "RandomApply", "RandomChoice", "RandomOrder", "ScaleJitter",
    "RandomResize", "JPEG", "CutMix", "MixUp"}
CAPTURED = "__captured_datasets__"


def capture_datasets(ns: dict, module_name: str, class_name: str, image_size: int, channels: int = 3) -> None:
    """Before the cell runs: `ns[module_name].<class_name>(root, train=..., transform=...)`
    builds a stand-in serving 8 random uint8 images through the student's transform."""
    import torch

    captured = ns.setdefault(CAPTURED, [])

    class Captured(torch.utils.data.Dataset):
        def __init__(self, root=None, train=True, transform=None, target_transform=None, download=False, **_):
            self.train, self.transform = train, transform
            shape = (8, image_size, image_size, channels) if channels > 1 else (8, image_size, image_size)
            self.images = torch.randint(0, 256, shape, dtype=torch.uint8)
            captured.append(self)

        def __len__(self):
            return len(self.images)

        def __getitem__(self, i):
            from PIL import Image

            image = Image.fromarray(self.images[i].numpy())
            return (self.transform(image) if self.transform else image), i

    ns[module_name] = types.SimpleNamespace(**{class_name: Captured})


def flatten_transforms(transform) -> list[str]:
    """The transforms inside Compose / RandomApply / RandomChoice / RandomOrder, in order."""
    inner = getattr(transform, "transforms", None)
    if isinstance(inner, (list, tuple)):
        out = [type(transform).__name__] if type(transform).__name__ != "Compose" else []
        return out + [name for t in inner for name in flatten_transforms(t)]
    return [type(transform).__name__]


def sample_stats(dataset) -> dict:
    """One item through the pipeline, twice: type, dtype, shape, range, and whether it repeats."""
    import torch

    x, _ = dataset[0]
    if not isinstance(x, torch.Tensor):
        return {"type": type(x).__name__}
    again, _ = dataset[0]
    same = isinstance(again, torch.Tensor) and again.shape == x.shape and bool(torch.equal(again, x))
    return {"type": "Tensor", "dtype": str(x.dtype).replace("torch.", ""), "shape": list(x.shape),
            "min": float(x.detach().float().min()), "max": float(x.detach().float().max()), "repeatable": same}


def captured_transforms(ns: dict) -> dict:
    """What the cell built: per split, the transform names and one measured sample."""
    from .probes import measure

    return {("train" if ds.train else "test"): {"transforms": flatten_transforms(ds.transform) if ds.transform else [],
                                                "sample": measure(lambda: sample_stats(ds))}
            for ds in ns.get(CAPTURED, [])}


# --- in the grader -----------------------------------------------------------------------------

def judge_random_augmentation(min_kinds: int, builder: str):
    """At least `min_kinds` kinds of random transform for training, none for testing."""
    def judge(found):
        if set(found) != {"train", "test"}:
            return failed(f"The cell must build both {builder}(train=True, ...) and {builder}(train=False, ...); "
                          f"it built: {', '.join(sorted(found)) or 'none'}.")
        train, test = ([t for t in dict.fromkeys(found[k]["transforms"]) if t in RANDOM_TRANSFORMS] for k in ("train", "test"))
        if len(train) < min_kinds:
            return failed(f"The training pipeline has {len(train)} kind(s) of random augmentation ({', '.join(train) or 'none'}); "
                          f"at least {min_kinds} different ones are required.")
        if test:
            return failed(f"The test pipeline contains random transforms ({', '.join(test)}); test data must not be augmented.")
        return passed(f"Training augmentations: {', '.join(train)}.")
    return judge


def judge_transform_output(dtype: str, shape: list, low: float, high: float, slack: float = 0.05):
    """Both pipelines give `dtype` tensors of `shape` in [low, high]; the test one is deterministic."""
    def judge(found):
        for split in ("train", "test"):
            if split not in found:
                return failed(f"No {split} dataset was built.")
            sample = found[split]["sample"]
            if "error" in sample:
                return failed(f"Loading one {split} image through your pipeline raised an error:\n{sample['error']}")
            s = sample["value"]
            if s["type"] != "Tensor" or s["dtype"] != dtype or s["shape"] != list(shape):
                got = s["type"] if s["type"] != "Tensor" else f"a {s['dtype']} tensor of shape {tuple(s['shape'])}"
                return failed(f"A {split} image comes out as {got}; expected a {dtype} tensor of shape {tuple(shape)}.")
            if s["min"] < low - slack or s["max"] > high + slack:
                return failed(f"A {split} image's values range over [{s['min']:.2f}, {s['max']:.2f}]; expected [{low}, {high}].")
        if not found["test"]["sample"]["value"]["repeatable"]:
            return failed("The test pipeline gives a different tensor each time for the same image; it must be deterministic.")
        return passed(f"Both pipelines give {dtype} {tuple(shape)} tensors in [{low}, {high}].")
    return judge


def json_images(path, size: int, channels: int, levels: float = 16.0):
    """Images bundled as JSON, {"images": [flat square grey images, values 0..levels],
    "labels": [...]} (e.g. scikit-learn's digits), as (N, channels, size, size) floats in
    [-0.5, 0.5] (resized bilinearly, the grey copied to every channel), and their labels."""
    import json
    from pathlib import Path

    import torch
    import torch.nn.functional as F

    saved = json.loads(Path(path).read_text())
    images = torch.tensor(saved["images"], dtype=torch.float32)
    side = int(images.shape[1] ** 0.5)
    images = images.reshape(-1, 1, side, side) / levels
    if side != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return (images - 0.5).expand(-1, channels, -1, -1).contiguous(), torch.tensor(saved["labels"], dtype=torch.long)


def seeded_pixels(shape, seed: int):
    """uint8 values 0..255 of `shape` (numpy), drawn from `seed` alone: the grader's raw
    images, the same in the sandbox (where a probe feeds them to the student's code or
    writes them into files in a dataset's format) and in the grader (which recomputes
    what the student's code must make of them)."""
    import numpy as np

    return np.random.default_rng(int(seed)).integers(0, 256, size=tuple(shape), dtype=np.uint8)
