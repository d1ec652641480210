"""HW2 hidden checks: run by the grader only.

The student release does not ship this file (nor its expected outputs), so
`make submission`'s self-check neither runs nor reveals these. The grader loads
it with `public` bound to this assignment's checks.py module.
"""
from checklib.checks import Check

public = globals()["public"]  # bound by autograder.assignment before this file runs

# More settings for the expected-output test, with the course's procedure (seed 42,
# model first, then the image): a non-square image, N % P != 0 and two hidden layers;
# one grey channel, P = 3 and no hidden layer. A network that merely reproduces the
# course's one stored tensor fails these.
HIDDEN_OUTPUTS = [
    dict(name="wide_nonsquare", in_size=[3, 64, 48], out_classes=7, filters=[16, 16, 32, 32, 64], pool_every=2,
         hidden_dims=[64, 32]),
    dict(name="grey_every3", in_size=[1, 40, 40], out_classes=4, filters=[8, 8, 8, 16, 16, 16], pool_every=3,
         hidden_dims=[]),
]
HIDDEN_ASSET = "expected_conv_out_hidden.pt"

CHECKS = [
    Check("conv.expected_output_hidden", "seeded_outputs", public.seeded_judge(HIDDEN_ASSET),
          {"configs": HIDDEN_OUTPUTS}, cells=("conv_classifier",)),
]
