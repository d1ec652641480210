"""HW0 probes: run in the sandbox, next to the student's code; they measure, never judge."""
import torch

from checklib.probes import attempt, lookup


def relu_outputs(ns, shapes, scale=1.0):
    """The student's relu on seeded inputs of each shape: {"input", "output"} or {"error"}."""
    relu = lookup(ns, "relu", kind="function")
    results = []
    for i, shape in enumerate(shapes):
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(i)) * scale
        results.append({"input": x, "output": attempt(lambda: relu(x.clone()))})
    return results
