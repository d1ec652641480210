"""Which device to train on, and which number format is fast and safe there."""
from __future__ import annotations

import torch


def best_device() -> str:
    """'cuda' if a GPU is visible, else 'mps' (Apple), else 'cpu'."""
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


PRECISIONS = ("fp32", "bf16", "fp16", "auto")


def resolve_precision(precision: str, device: torch.device) -> str:
    """Turn 'auto' into a concrete format for `device`.

    bf16 needs no loss scaling but is only fast on GPUs of compute capability
    8.0 or newer (a T4 says it supports bf16 and then emulates it slowly), so
    older GPUs get fp16 with a gradient scaler. CPUs and Apple GPUs train in fp32.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision != "auto":
        if precision != "fp32" and device.type != "cuda":
            raise ValueError(f"precision={precision!r} needs a CUDA GPU; this run is on {device.type}. Use 'fp32' or 'auto'.")
        return precision
    if device.type != "cuda":
        return "fp32"
    major, _ = torch.cuda.get_device_capability(device)
    return "bf16" if major >= 8 else "fp16"


def autocast_dtype(precision: str):
    """The torch dtype autocast should use for a resolved precision (None: no autocast)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
