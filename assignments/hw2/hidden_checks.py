"""HW2 hidden checks: run by the grader only (the release ships neither this file
nor its expected outputs). Loaded with `public` bound to this assignment's checks.py."""
from checklib.checks import Check

public = globals()["public"]  # bound by checklib.assignment before this file runs

# The course's procedure (seed 42, model first, then the image) on more settings: a
# non-square image, N % P != 0 and two hidden layers; one grey channel, P = 3 and no
# hidden layer. A network that merely reproduces the course's one stored tensor fails.
HIDDEN_OUTPUTS = [public.conv([3, 64, 48], 7, [16, 16, 32, 32, 64], 2, [64, 32], name="wide_nonsquare"),
                  public.conv([1, 40, 40], 4, [8, 8, 8, 16, 16, 16], 3, [], name="grey_every3")]
HIDDEN_ASSET = "expected_conv_out_hidden.pt"

CHECKS = [
    Check("conv.expected_output_hidden", "seeded_outputs", public.seeded_judge(HIDDEN_ASSET),
          {"configs": HIDDEN_OUTPUTS}, cells=("conv_classifier",)),
]
