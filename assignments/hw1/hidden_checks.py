"""HW1 hidden checks: run by the grader only (the student release does not ship
this file). Loaded with `public` bound to this assignment's checks.py module.

The questions' arithmetic on other networks and image sizes: non-square inputs,
sizes a stride does not divide (PyTorch rounds down), pooling of extent 3. A
function that only reproduces the answers of (a) and (b) fails these.
"""
from checklib.checks import Check

public = globals()["public"]  # bound by checklib.assignment before this file runs

OTHER_NETWORK = {"c1": ("conv", 8, 5, 1, 2), "p1": ("pool", 3, 2), "c2": ("conv", 16, 3, 2, 1), "p2": ("pool", 2, 2)}
NETWORKS = [((28, 28, 1), public.LAYERS_A), ((33, 29, 3), public.LAYERS_B), ((45, 60, 3), OTHER_NETWORK)]

CHECKS = [
    Check("q1.volumes_hidden", "volumes", public.volumes_judge("output_volumes on other networks"),
          {"settings": public.volume_settings(NETWORKS)}, cells=("q1_volumes",)),
]
