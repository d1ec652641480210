"""HW0 checks: the grader judges what the probes measured (points are in rubric.yaml)."""
import torch

from checklib.checks import Check, failed, passed

SHAPES = [[5], [2, 3], [4, 1, 2]]


def judge_values(results):
    for r in results:
        out = r["output"]
        if isinstance(out, dict):
            return failed(f"relu raised an error:\n{out['error']}")
        expected = r["input"].clamp(min=0)  # computed here, from the grader's own input
        if out.shape != expected.shape or not torch.allclose(out, expected):
            return failed(f"relu({r['input'].tolist()}) should be {expected.tolist()}; got {out.tolist()}")
    return passed(f"relu is correct on all {len(results)} inputs tried.")


def judge_shape(results):
    for r in results:
        out = r["output"]
        if isinstance(out, dict) or tuple(out.shape) != tuple(r["input"].shape):
            found = "an error" if isinstance(out, dict) else tuple(out.shape)
            return failed(f"relu of an input of shape {tuple(r['input'].shape)} should keep it; got {found}")
    return passed("relu keeps the input's shape.")


VALUES = dict(probe="relu_outputs", args={"shapes": SHAPES}, cells=("relu",))

CHECKS = [
    Check("relu.values", judge=judge_values, **VALUES),
    Check("relu.shape", judge=judge_shape, **VALUES),
]
