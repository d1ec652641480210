"""HW3 hidden checks: run by the grader only (the student release ships neither this
file nor reference.py). Loaded with `public` bound to this assignment's checks.py module.

- The whole network with the reference's weights: the grader's seeded weights are
  loaded into the student's network by structure (the k-th layer of a kind and weight
  shape that forward calls gets the k-th such layer of the reference, in the order
  the reference calls them, with the projection shortcut before or after its block's
  main path), and the output must equal the reference network's with the same weights.
- The reader on files of other sizes, and the network with other sizes.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import torch

from checklib.checks import Check, failed, outcomes, passed
from checklib.forward import Role, layer_calls, load, role_values, roles_data, seeded_input
from checklib.structure import set_training, walk

public = globals()["public"]  # bound by checklib.assignment before this file runs


def _reference_module():
    spec = importlib.util.spec_from_file_location("hw3_reference_network", Path(public.__file__).with_name("reference.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REFERENCE = _reference_module()
WEIGHTED = ("Conv2d", "BatchNorm2d", "Linear")


def reference_network(s):
    torch.manual_seed(0)
    return REFERENCE.ResNet(s["version"], s["size"], s["classes"], s["filters"])


def _block_of(name: str) -> str:
    """The reference block a layer of the reference belongs to ("stack_layers.0.blocks.1"), or ""."""
    found = re.match(r"^(.*\.blocks\.\d+)\.", name)
    return found.group(1) if found else ""


def role_orders(s) -> tuple[list, list]:
    """The reference's weighted layers as roles (in the order its forward calls them), and
    the orders the projection shortcut may take: where the reference calls it (right
    after the block's first BN -> ReLU, or first in a v1 block) and after the block's main path."""
    net = reference_network(s)
    modules = dict(walk(net))
    calls = [c for c in layer_calls(net, s["input"], 0) if c["kind"] in WEIGHTED]
    roles = [Role(c["name"], c["kind"], tuple(c["shape"] if c["kind"] != "BatchNorm2d" else [c["shape"][0]]))
             for c in calls]
    early = [r.name for r in roles]
    late = [n for n in early if "projection_shortcut" not in n]
    for proj in (n for n in early if "projection_shortcut" in n):
        block = _block_of(proj)
        last = max(i for i, n in enumerate(late) if _block_of(n) == block)
        late.insert(last + 1, proj)
    assert all(m in modules for m in early)
    return roles_data(roles), [early, late]


def seeded_settings(settings):
    found = []
    for s in settings:
        roles, orders = role_orders(s)
        found.append({**s, "roles": roles, "orders": orders})
    return found


def reference_outputs(s, run) -> dict:
    """The reference network's outputs with the seeded weights, and with the student's
    own stride and padding in each layer and a bias where the student's layer has one
    (the structure checks judge those settings; this check the computation)."""
    net = reference_network(s)
    modules = dict(walk(net))
    values = role_values(s["roles"], public.SEED)
    with torch.no_grad():
        for role, layer in run["layers"].items():
            m = modules[role]
            if isinstance(m, torch.nn.Conv2d):
                m.stride, m.padding = tuple(layer.get("stride", m.stride)), tuple(layer.get("padding", m.padding))
                if run["bias"].get(role) and m.bias is None:
                    m.bias = torch.nn.Parameter(torch.zeros(m.out_channels))
            if isinstance(m, torch.nn.BatchNorm2d) and layer.get("eps") is not None:
                m.eps = layer["eps"]
        load({role: (role, modules[role]) for role in run["layers"]}, values)
    x = seeded_input(s["input"], public.SEED)
    found = {}
    for mode in ("train", "eval"):
        load({role: (role, modules[role]) for role in run["layers"]}, values)
        set_training(net, mode == "train")
        with torch.no_grad():
            found[mode] = net(x.clone())
    return found


def _function_judge(rows):
    """Judged on every setting whose weights map onto the student's network; a setting
    whose forward crashes, or whose layers differ in number or shape (the output,
    parameter and layer checks' causes), is left to those checks, and the check fails
    only when no setting could be judged, saying why the mapping failed."""
    what = "ResNet with the reference's weights"
    judged, unjudged = 0, []
    for o in outcomes(rows, "seeded"):
        s = o.setting
        if not o.ok:
            unjudged.append(f"with {public.describe(s)}, it could not be measured (see the output check):\n{o.error}")
            continue
        if "unmatched" in o.value:
            unjudged.append(f"with {public.describe(s)}, the reference's weights could not be mapped onto your network "
                            f"by structure (each layer forward calls, in order, matched with the reference's layer of "
                            f"the same kind and weight shape): {o.value['unmatched']}")
            continue
        differences, result = [], None
        for run in o.value["runs"]:
            want = reference_outputs(s, run)
            outs = run["out"]
            if any(outs[m].numel() != want[m].numel() for m in want):
                result = "shape"  # another number of outputs: the output check's
                break
            gap = max(float((outs[m].double().flatten() - want[m].double().flatten()).abs().max()) for m in want)
            if gap <= 1e-4 * max(1.0, float(want["eval"].abs().max())):
                result = "same"
                break
            differences.append(gap)
        if result == "shape":
            unjudged.append(f"with {public.describe(s)}, the output's size differs from the reference's (see the output check)")
            continue
        if result is None:
            return failed(f"{what}: with {public.describe(s)} and the reference's weights loaded into your layers (by the "
                          f"order forward calls them), the output differs from the reference's by up to "
                          f"{min(differences):.3g}. Check each block's computation: the order of convolutions, batch norms "
                          "and ReLUs, the shortcut added in every block (identity or projection), and the ReLU after the "
                          "sum (v1) or the pre-activation feeding the projection (v2).")
        judged += 1
    if not judged:
        return failed(f"{what}: could not be checked for any setting: {unjudged[0]}.")
    note = f" ({len(unjudged)} other setting(s) left to the checks of their structure)" if unjudged else ""
    return passed(f"{what}: for all {judged} settings judged the output equals the reference's, in training and "
                  f"evaluation mode{note}.")


HIDDEN_NETWORKS = [public.network(1, 3, classes=7, filters=8), public.network(2, 1, classes=5, filters=8, image=24)]
HIDDEN_READER = [5, 9, 7, 3, 11, 4]

_function = dict(probe="networks", args={"settings": seeded_settings(public.NETWORKS), "seed": public.SEED,
                                         "parts": ["seeded"]}, cells=("network",))
_other = dict(probe="networks", args={"settings": HIDDEN_NETWORKS, "seed": public.SEED, "parts": ["structure", "forward"]},
              cells=("network",))


def _other_sizes_judge(rows):
    for judge in (public.net_output_judge("ResNet output with other sizes"),
                  public.net_params_judge("ResNet parameters with other sizes")):
        verdict = judge(rows)
        if not verdict.passed:
            return verdict
    return passed("ResNet with other sizes: the output shape and the parameter count follow num_classes, "
                  "first_num_filters and resnet_size.")


CHECKS = [
    Check("reader.hidden", "reader", public.reader_order_judge(HIDDEN_READER, public.SEED + 10, "load_data on other files"),
          {"sizes": HIDDEN_READER, "seed": public.SEED + 10}, cells=("data_reader",)),
    Check("net.function", judge=_function_judge, **_function),
    Check("net.hidden", judge=_other_sizes_judge, **_other),
]
