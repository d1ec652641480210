"""HW4 hidden checks: run by the grader only.

The student release does not ship this file, so `make submission`'s self-check
neither runs nor reveals these. The grader loads it with `public` bound to this
assignment's checks.py module, so both share probe calls and judges.
"""
from checklib.checks import Check

public = globals()["public"]  # bound by autograder.assignment before this file runs

CHECKS = [
    # Other input sizes (64x64, 40x40): a Model that only works for 32x32 images fails.
    Check("model.output_sizes", judge=public.judge_model_sizes, **public.MODEL_DETAILS),
]
