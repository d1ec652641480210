"""HW4 hidden checks: run by the grader only (the student release does not ship
this file). Loaded with `public` bound to this assignment's checks.py module."""
from checklib.checks import Check, failed, outcomes, passed

public = globals()["public"]  # bound by checklib.assignment before this file runs

# Other input sizes: a Model that only works for 32x32 images fails. The same
# settings at 32x32 come along, so that a setting broken at every size (a Block
# defect, judged by the Block checks) is not charged here again.
SIZES = [32, 64, 40]
SETTINGS = [public.model(**args, size=size, batch=2) for args in (
    dict(base=8, expands=[1, 2, 2], act="relu", bn=True, res=True), dict(base=4, expands=[2, 2], act="tanh", bn=False, res=False))
    for size in SIZES]


def judge_model_sizes(rows):
    results = {}
    for o in outcomes(rows, "forward"):
        results.setdefault(public.describe(o.setting), {})[o.setting["input"][-1]] = o
    judged = 0
    for setting, by_size in results.items():
        if not by_size[32].ok:
            continue  # broken at 32x32 already: not a matter of image size
        for size, o in by_size.items():
            problem = (f"raised an error:\n{o.error}\nGlobal average pooling must work for any image size."
                       if not o.ok else None if list(o.value.shape) == [2, 10] else f"gave {tuple(o.value.shape)}; expected (2, 10).")
            if problem:
                return failed(f"Model output for other image sizes: with {setting}, an input of shape (2, 3, {size}, {size}) {problem}")
        judged += 1
    if not judged:
        return failed("Model output for other image sizes: the model did not run on 32x32 images for any setting.")
    return passed(f"Model output for other image sizes: (2, 10) for {', '.join(f'{s}x{s}' for s in SIZES)} images.")


CHECKS = [
    Check("model.output_sizes", "probe_modules", judge_model_sizes,
          {"name": "Model", "settings": SETTINGS, "seed": public.SEED, "parts": ["forward"]}, cells=("resnet",)),
]
