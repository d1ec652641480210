"""HW4 hidden checks: run by the grader only (the student release does not ship
this file). Loaded with `public` bound to this assignment's checks.py module."""
from checklib import judges
from checklib.checks import Check

public = globals()["public"]  # bound by checklib.assignment before this file runs

# Other input sizes: a Model that only works for 32x32 images fails. The same
# settings at 32x32 come along, so that a setting broken at every size (a Block
# defect, judged by the Block checks) is not charged here again.
SETTINGS = [public.model(**args, size=size, batch=2) for args in (
    dict(base=8, expands=[1, 2, 2], act="relu", bn=True, res=True), dict(base=4, expands=[2, 2], act="tanh", bn=False, res=False))
    for size in (32, 64, 40)]

CHECKS = [
    Check("model.output_sizes", "probe_modules", judges.other_input_sizes(
        lambda s: [2, 10], "Model output for other image sizes", public.describe, base=32,
        advice="Global average pooling must work for any image size."),
        {"name": "Model", "settings": SETTINGS, "seed": public.SEED, "parts": ["forward"]}, cells=("resnet",)),
]
