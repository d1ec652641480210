"""HW5 hidden checks: run by the grader only (the student release does not ship this
file). Loaded with `public` bound to this assignment's checks.py module.

An image's logits must not depend on the other images in its batch: a model that
normalises or otherwise mixes across the batch at test time would score differently
depending on how the grader batches the test set (and could be tuned to it).
"""
from checklib.checks import Check, failed, passed

public = globals()["public"]  # bound by checklib.assignment before this file runs

BATCHING = {"weights": "model.pt", "model": "Net", "classes": 10, "seed": 11, "count": 6, "groups": [1, 4]}
AGREEMENT = 1e-3   # largest difference of logits allowed between batchings (float32 on CPU)


def judge_alone_or_together(data):
    if "error" in data:
        return failed("Not measured: " + data["error"])
    whole, split = data["value"]["whole"], data["value"]["split"]
    for size, logits in split.items():
        difference = float((logits - whole).abs().max())
        if difference > AGREEMENT:
            return failed(f"In eval mode, an image's logits change with the other images in its batch: batches of "
                          f"{size} give logits up to {difference:.3g} away from one batch of {len(whole)}. Use "
                          "batch statistics only in training (nn.BatchNorm2d does this in eval mode).")
    return passed(f"Each image's logits are the same alone and in batches (within {AGREEMENT:g}).")


CHECKS = [
    Check("model.batch_independent", "batch_outputs", judge_alone_or_together, BATCHING, cells=("model",), files=("model.pt",)),
]
