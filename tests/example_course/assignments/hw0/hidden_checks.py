"""HW0 hidden checks: the grader's only (check-config verifies they are not released)."""
from checklib.checks import Check

public = globals()["public"]  # the public checks module, bound by load_assignment

CHECKS = [
    Check("relu.large", "relu_outputs", public.judge_values, {"shapes": [[100]], "scale": 1e6}, cells=("relu",)),
]
