"""Fast unit tests of the check library (no sandbox): structure read without the
student's methods, measurements isolated per setting and part, judges that fail
only for their own cause, seeded references a lying module cannot pass, and the
small rules around them (encode caps, thresholds, zip limits, import detection)."""
import json
import os
import zipfile

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from checklib import judges
from checklib.assignment import KIT_ROOT
from checklib.cells import disallowed_imports, imports_in
from checklib.checks import Outcome, Verdict, outcomes
from checklib.forward import Role, Weights, matchings, module_parts, roles_data, role_values, seeded_input
from checklib.probes import MAX_ELEMENTS, ProbeError, decode, each, encode, measure, need
from checklib.scoring import RubricItem, resolve
from checklib.structure import inventory, kind, report, walk

SEED = 5


class TwoConv(nn.Module):
    """conv1 (stride e) -> [bn1] -> relu -> conv2 -> relu: a small specified function."""

    def __init__(self, c, e=1, bn=False, stored_relu=False, unused=False, lazy=False, crash=False, wrong=False):
        super().__init__()
        o = c * e
        self.conv1 = nn.Conv2d(c, o, 3, e, 1)
        self.bn1 = nn.BatchNorm2d(o) if bn else None
        self.conv2 = nn.Conv2d(o, o, 3, 1, 1)
        self.relu = nn.ReLU() if stored_relu else None
        self.extra = nn.Linear(3, 3) if unused else None
        self.lazy, self.crash, self.wrong = lazy, crash, wrong

    def forward(self, x):
        if self.crash:
            raise RuntimeError("boom")
        out = self.conv1(x)
        if self.bn1 is not None:
            out = self.bn1(out)
        out = out if self.wrong else F.relu(out)
        out = F.relu(self.conv2(out))
        if self.lazy:
            if not hasattr(self, "gain"):
                self.gain = nn.Parameter(torch.ones(1))
            out = out * self.gain
        return out


class Liar(TwoConv):
    """Reports no modules and zero weights through every method it can override."""

    def named_modules(self, *a, **k):
        return iter([("", self)])

    def modules(self):
        return iter([self])

    def named_parameters(self, *a, **k):
        return iter([])

    def parameters(self, *a, **k):
        return iter([])

    def state_dict(self, *a, **k):
        return {"conv1.weight": torch.zeros(1)}

    def train(self, mode=True):
        return self


def roles(s):
    c, o = s["c"], s["c"] * s["e"]
    return [Role("conv1", "Conv2d", (o, c, 3, 3))] + ([Role("bn1", "BatchNorm2d", (o,))] if s["bn"] else []) + \
           [Role("conv2", "Conv2d", (o, o, 3, 3))]


def reference(s, w, x, training):
    out = w.conv(x, "conv1", s["e"], 1)
    if s["bn"]:
        out = w.bn(out, "bn1", training)
    return F.relu(w.conv(F.relu(out), "conv2", 1, 1))


SETTINGS = [dict(c=3, e=e, bn=bn, input=[2, 3, 8, 8]) for e in (1, 2) for bn in (False, True)]
for _s in SETTINGS:
    _s["roles"] = roles_data(roles(_s))


def describe(s):
    return f"e={s['e']}, bn={s['bn']}"


def measured(cls=TwoConv, **options):
    rows = each(SETTINGS, **module_parts(lambda s: cls(s["c"], s["e"], s["bn"], **options), SEED))
    return decode(encode(rows))  # as the grader receives them


MATCHES = judges.matches_seeded_reference(reference, lambda s: s["roles"], SEED, lambda s: s["input"],
                                          "Computation", describe)


# --- structure ---------------------------------------------------------------------------

def test_structure_is_read_without_the_students_methods():
    rows = report(Liar(3, 2, True))
    assert [r["name"] for r in rows] == ["", "conv1", "bn1", "conv2"]
    assert rows[1]["kind"] == "Conv2d" and rows[1]["stride"] == [2, 2] and rows[1]["params"]["weight"] == [6, 3, 3, 3]
    assert rows[2]["kind"] == "BatchNorm2d" and rows[2]["num_features"] == 6


def test_kind_names_the_torch_class_a_students_subclass_derives_from():
    class MyConv(nn.Conv2d):
        pass
    assert kind(MyConv(1, 1, 3)) == "Conv2d" and kind(TwoConv(1)) == "Module" and kind(nn.ReLU()) == "ReLU"


def test_walk_lists_shared_modules_once():
    shared = nn.Linear(2, 2)
    assert [n for n, _ in walk(nn.Sequential(shared, shared))] == ["", "0"]


# --- measurements isolated per setting and part ----------------------------------------------

def test_a_forward_crash_leaves_the_structure_measured():
    rows = measured(crash=True)
    assert all("value" in r["structure"] for r in rows)
    assert all("boom" in r["forward"]["error"] and "boom" in r["seeded"]["error"] for r in rows)
    assert judges.no_stored_modules(describe=describe)(rows).passed
    assert not MATCHES(rows).passed


def test_measure_keeps_probe_errors_and_need_names_the_failed_part():
    assert measure(lambda: 1) == {"value": 1}
    assert measure(lambda: (_ for _ in ()).throw(ProbeError("no Block"))) == {"error": "no Block"}
    rows = each([1], first=lambda s, e: 1 / 0, second=lambda s, e: need(e, "first"))
    assert "ZeroDivisionError" in rows[0]["first"]["error"] and "`first` failed" in rows[0]["second"]["error"]


def test_outcomes_are_typed_per_setting():
    rows = [{"setting": 1, "a": {"value": 2}, "b": {"error": "x"}}]
    assert outcomes(rows, "a") == [Outcome(1, 2, None)]
    assert outcomes(rows, ("a", "b")) == [Outcome(1, None, "x")]
    with pytest.raises(ValueError):
        Outcome.of({"value": 1, "error": "both"})


def test_errors_policy_fail_or_skip():
    rows = [{"setting": "good", "p": {"value": 1}}, {"setting": "bad", "p": {"error": "crashed"}}]
    ok = lambda value, setting: None
    assert not judges.each_setting("p", ok, "Own cause", str, errors="fail")(rows).passed
    skipped = judges.each_setting("p", ok, "Other cause", str, errors="skip")(rows)
    assert skipped.passed and "1 other setting(s)" in skipped.message
    assert not judges.each_setting("p", ok, "Other cause", str, errors="skip")(rows[1:]).passed


# --- judges -------------------------------------------------------------------------------------

def test_the_reference_passes_every_judge():
    rows = measured()
    for judge in (MATCHES, judges.no_stored_modules(describe=describe), judges.all_parameters_used(part="step"),
                  judges.no_modules_created_in_forward(part="step")):
        verdict = judge(rows)
        assert verdict.passed, verdict.message


@pytest.mark.parametrize("option, judge", [
    ("stored_relu", judges.no_stored_modules(describe=describe)),
    ("unused", judges.all_parameters_used(part="step")),
    ("lazy", judges.no_modules_created_in_forward(part="step")),
    ("wrong", MATCHES),
])
def test_each_defect_fails_its_judge(option, judge):
    verdict = judge(measured(**{option: True}))
    assert not verdict.passed and len(verdict.message) > 40


def test_a_module_that_lies_about_itself_cannot_pass_the_seeded_reference():
    assert MATCHES(measured(Liar)).passed          # lying changes nothing when the function is right
    assert not MATCHES(measured(Liar, wrong=True)).passed


def test_forged_outputs_do_not_match_the_graders_own_reference():
    rows = measured()
    for row in rows:
        for run in row["seeded"]["value"]["runs"]:
            run["out"] = {mode: torch.zeros_like(out) for mode, out in run["out"].items()}
    assert not MATCHES(rows).passed


def test_skipping_a_batchnorm_in_eval_mode_is_caught():
    class BatchStatsInEval(TwoConv):
        def forward(self, x):
            self.bn1.training = True  # batch statistics even in evaluation mode
            return super().forward(x)
    rows = each([s for s in SETTINGS if s["bn"]], **module_parts(lambda s: BatchStatsInEval(s["c"], s["e"], True), SEED))
    verdict = MATCHES(decode(encode(rows)))
    assert not verdict.passed and "evaluation mode" in verdict.message


def test_equal_shaped_layers_are_matched_in_every_order():
    s = SETTINGS[0]
    found = matchings(TwoConv(3), s["roles"])
    assert [{r: n for r, (n, _) in m.items()} for m in found] == [{"conv1": "conv1", "conv2": "conv2"},
                                                                  {"conv1": "conv2", "conv2": "conv1"}]
    with pytest.raises(ProbeError, match="needs 1 BatchNorm2d"):
        matchings(TwoConv(3), roles_data(roles(dict(s, bn=True))))


def test_seeded_values_depend_on_the_seed_only():
    r = roles_data(roles(SETTINGS[1]))
    assert torch.equal(role_values(r, 3)["conv1"]["weight"], role_values(r, 3)["conv1"]["weight"])
    assert not torch.equal(role_values(r, 3)["conv1"]["weight"], role_values(r, 4)["conv1"]["weight"])
    assert torch.equal(seeded_input([2, 3], 1), seeded_input([2, 3], 1))
    lin = Weights([Role("fc", "Linear", (2, 3))], 3, {"bias": {"fc": True}})
    want = role_values([Role("fc", "Linear", (2, 3))], 3)["fc"]
    assert torch.allclose(lin.linear(torch.ones(1, 3), "fc"), want["weight"].sum(1) + want["bias"])


def test_no_softmax_and_probability_like():
    logits = torch.tensor([[1.0, -2.0, 0.5], [0.2, 0.1, 3.0]])
    assert judges.probability_like(logits) is None
    assert "softmax" in judges.probability_like(logits.softmax(1))
    assert "log_softmax" in judges.probability_like(logits.log_softmax(1))
    rows = [{"setting": 1, "forward": {"value": logits.softmax(1)}}]
    assert not judges.no_softmax()(rows).passed


def test_inventory_notices_a_module_added_after_construction():
    m = TwoConv(2)
    before = inventory(m)
    m.late = nn.Linear(2, 2)
    assert set(inventory(m)) - set(before) == {"late: Linear", "late.weight (2, 2)", "late.bias (2,)"}


def test_value_helpers():
    assert judges.same("[1, 2.0]", [1, 2]) and not judges.same(True, 1) and judges.same({"a": "0.1"}, {"a": 0.1})
    assert judges.number("nan") is None and judges.number(True) is None and judges.number("0.5") == 0.5
    assert judges.layer({"kind": "Linear", "in_features": 4, "out_features": 2}) == ("Linear", 4, 2)


def test_the_library_and_the_engine_name_no_homework():
    """Everything specific to a homework lives in assignments/: no homework name in
    checklib/, and no homework's class names in checklib/ or autograder/."""
    import subprocess

    from checklib.assignment import KIT_ROOT
    classes = r"\b(Block|Model|ConvClassifier|TorchTrainer|FitResult|BatchResult|EpochResult|CIFAR10|ResNet)\b"
    for pattern, folders in ((r"\b(hw|HW)[0-9]+\b", ["checklib/"]), (classes, ["checklib/", "autograder/"])):
        found = subprocess.run(["git", "grep", "-n", "-E", pattern, "--", *folders], cwd=KIT_ROOT, capture_output=True, text=True)
        assert found.returncode == 1 and not found.stdout, found.stdout


# --- encode caps, thresholds, zip limits, imports -------------------------------------------------

def test_encode_refuses_huge_tensors_and_foreign_objects():
    with pytest.raises(ProbeError, match="too large"):
        encode(torch.zeros(MAX_ELEMENTS + 1, dtype=torch.uint8))
    with pytest.raises(ProbeError, match="cannot send back"):
        encode(object())
    assert torch.equal(decode(encode({"t": torch.arange(3)}))["t"], torch.arange(3))


def test_threshold_items_score_the_best_threshold_reached():
    item = RubricItem.from_dict({"id": "acc", "points": 15, "thresholds": [[0.7, 5], [0.9, 25], [0.8, 15]]}, "s")
    score = lambda v, ok=True: resolve([item], {"acc": Verdict(ok, "", v)})[0].score
    assert (score(0.95), score(0.85), score(0.75), score(0.5), score(0.95, ok=False)) == (25, 15, 5, 0, 0)


def test_zip_limits_refuse_bombs_and_unsafe_paths(tmp_path, monkeypatch):
    from autograder import notebook
    from checklib.cells import SubmissionError

    unsafe = tmp_path / "unsafe.zip"
    with zipfile.ZipFile(unsafe, "w") as zf:
        zf.writestr("../escape.txt", "x")
    with pytest.raises(SubmissionError, match="unsafe path"):
        notebook.unpack(unsafe, tmp_path / "out")
    monkeypatch.setattr(notebook, "MAX_MEMBERS", 2)
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(3):
            zf.writestr(f"f{i}.txt", "x")
    with pytest.raises(SubmissionError, match="too large"):
        notebook.unpack(many, tmp_path / "out2")


def test_import_detection():
    allowed = ["torch", "os"]
    assert disallowed_imports("import torch.nn\nfrom os import path\n", allowed) == []
    assert disallowed_imports("import numpy as np\nimport torchvision\n", allowed) == ["numpy", "torchvision"]
    assert disallowed_imports("x = __import__('math')\n", allowed) == ["math"]  # the module it names


def test_other_input_sizes_charges_only_what_depends_on_the_size():
    def row(name, size, shape=None, error=None):
        part = {"error": error} if error else {"value": torch.zeros(shape)}
        return {"setting": {"name": name, "input": [2, 3, size, size]}, "forward": part}
    judge = judges.other_input_sizes(lambda s: [2, 10], "Sizes", lambda s: s["name"], base=32)
    assert judge([row("a", 32, (2, 10)), row("a", 64, (2, 10)), row("b", 32, error="broken"), row("b", 64, error="broken")]).passed
    assert not judge([row("a", 32, (2, 10)), row("a", 64, (2, 40))]).passed
    assert not judge([row("b", 32, error="broken")]).passed


def test_training_helpers():
    from checklib.training import judge_checkpoint, stop_epoch

    assert stop_epoch([3.0, 3.0, 3.0, 3.0], 2, 8) == 3 and stop_epoch([3, 2, 1], 1, 3) == 3
    assert stop_epoch([1.0, 2.0, 3.0, 4.0], None, 4) == 4 and stop_epoch([1.0, 2.0, 3.0, 4.0], 2, 6) == 3
    good = {"value": {"type": "dict", "keys": ["w"], "expected_keys": ["w"], "max_difference": 0.0}}
    assert judge_checkpoint(good, "x.pt").passed
    assert not judge_checkpoint({"value": {**good["value"], "max_difference": 0.5}}, "x.pt").passed
    assert not judge_checkpoint({"error": "no file x.pt was written"}, "x.pt").passed


def test_a_broken_rule_costs_its_deduction_once_and_never_below_zero():
    items = [RubricItem("a", "A", "S", 8.0), RubricItem("b", "B", "S", 4.0),
             RubricItem("rules.imports", "Imports", "Rules", 0.0, deduction=10.0)]
    broken = Verdict(False, "cell 'x' imports math.")
    full = resolve(items, {"a": Verdict(True, "ok"), "b": Verdict(True, "ok"), "rules.imports": broken})
    assert [r.score for r in full] == [8.0, 4.0, -10.0] and "10 points taken off" in full[2].output
    low = resolve(items, {"a": Verdict(True, "ok"), "b": Verdict(False, "no"), "rules.imports": broken})
    assert sum(r.score for r in low) == 0 and low[2].score == -8.0 and "cannot go below 0" in low[2].output
    clean = resolve(items, {"a": Verdict(True, "ok"), "b": Verdict(True, "ok"), "rules.imports": Verdict(True, "ok")})
    assert sum(r.score for r in clean) == 12.0
    with pytest.raises(ValueError, match="deduction"):
        RubricItem.from_dict({"id": "rules.imports", "points": 0, "deduction": -1}, "Rules")


def test_allowed_imports_are_what_the_setup_cell_imports():
    import dataclasses

    from checklib.assignment import load_assignment

    every = [load_assignment(name) for name in ("hw1", "hw2", "hw4")]
    for assignment in every:
        setup = {name.split(".")[0] for name in imports_in(assignment.setup_source)}
        assert set(assignment.allowed_imports) == setup | set(assignment.extra_imports)
        assert disallowed_imports("import torch.nn as tnn\n", list(assignment.allowed_imports)) == []
        if "math" not in setup:  # the course: nothing new, even from the standard library
            assert disallowed_imports("import math\n", list(assignment.allowed_imports)) == ["math"]
    extra = dataclasses.replace(every[0], extra_imports=("scipy",))
    assert "scipy" in extra.allowed_imports and dataclasses.replace(every[0], setup_source="").allowed_imports == ()


def test_batch_and_epoch_results_are_judged_against_the_graders_numbers():
    from checklib.training import batch_problem, epochs_problem

    def batch(loss, correct, graph=False):
        return {"value": {"loss": {"type": "float", "value": loss, "graph": graph}, "num_correct": {"value": correct}}}
    assert batch_problem(batch(0.5, 3), 0.5, 3, "test_batch") is None
    assert "computation graph" in batch_problem(batch(0.5, 3, graph=True), 0.5, 3, "train_batch")
    assert "loss of this batch is 0.400000" in batch_problem(batch(0.5, 3), 0.4, 3, "test_batch")
    assert "num_correct=2" in batch_problem(batch(0.5, 2), 0.5, 3, "test_batch")
    assert "raised an error" in batch_problem({"error": "boom"}, 0.5, 3, "test_batch")
    names = ("num_epochs", "train_loss", "test_acc")
    result = {"num_epochs": {"value": 2}, "train_loss": [1.0, 0.5], "test_acc": [10.0, 20.0], "shown": {}}
    assert epochs_problem(result, names, "FitResult") is None
    assert "lengths" in epochs_problem({**result, "num_epochs": {"value": 15}}, names, "FitResult")
    broken = {**result, "test_acc": [10.0, float("nan")], "shown": {"test_acc": "[10.0, nan]"}}
    assert epochs_problem(broken, names, "FitResult").startswith("FitResult.test_acc is [10.0, nan]; expected a list")


def test_early_stopping_is_judged_on_the_students_own_values():
    from checklib.training import judge_early_stopping

    def run(losses, patience, epochs, note=None):
        setting = {"name": "s", "early_stopping": patience, "num_epochs": epochs, **({"note": note} if note else {})}
        return Outcome(setting, value={"result": {"test_loss": losses, "shown": {"test_loss": repr(losses)}}})
    assert judge_early_stopping([run([3.0, 3.0, 3.0], 2, 8), run([3.0, 2.0, 1.0], 1, 3)]).passed
    late = judge_early_stopping([run([1.0, 2.0, 3.0, 4.0], 2, 6, note="the test loss rises")])
    assert not late.passed and "must run 3" in late.message and "(the test loss rises)." in late.message
    assert not judge_early_stopping([Outcome({"name": "s"}, error="boom")]).passed


def test_json_images_only_and_saved_tensors(tmp_path):
    from checklib.data import json_images

    path = tmp_path / "two.json"
    path.write_text(json.dumps({"images": [[0] * 16, [16] * 16], "labels": [3, 7]}))
    images, labels = json_images(path, 4, 1)
    assert images.shape == (2, 1, 4, 4) and images.min() == -0.5 and images.max() == 0.5 and labels.tolist() == [3, 7]
    assert json_images(path, 8, 3)[0].shape == (2, 3, 8, 8)
    seen = []
    judge = judges.only(lambda s: s["model"] == "A", lambda rows: seen.extend(rows) or Verdict(True, "ok"))
    assert judge([{"setting": {"model": "A"}}, {"setting": {"model": "B"}}]).passed and len(seen) == 1
    assert judges.keywords({"kwargs": {"in_channels": 3, "activation": "relu"}}) == "in_channels=3, activation='relu'"
    torch.save(torch.ones(2), tmp_path / "one.pt")
    torch.save({"a": torch.zeros(1)}, tmp_path / "many.pt")
    assert torch.equal(judges.saved_tensors(tmp_path / "one.pt")["course"], torch.ones(2))
    assert list(judges.saved_tensors(tmp_path / "many.pt")) == ["a"]


def test_a_required_file_is_found_under_its_own_name_first_then_under_an_accepted_one(tmp_path):
    from checklib.cells import find_required

    entry = {"name": "results/run_K256.json", "also": ["results/run_K258.json"]}
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "run_K258.json").write_text("{}")
    assert find_required([tmp_path], entry) == (tmp_path / "results" / "run_K258.json", "results/run_K258.json")
    (tmp_path / "run_K256.json").write_text("{}")  # a flattened zip: the own name wins, wherever it lies
    assert find_required([tmp_path], entry) == (tmp_path / "run_K256.json", "results/run_K256.json")
    assert find_required([tmp_path], "results/other.json") is None


class _Skip(nn.Module):
    """A stem, then one block that a skip connection may bypass, then a linear head."""

    def __init__(self, skip=True):
        super().__init__()
        self.skip, self.stem, self.bn = skip, nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.body, self.fc = nn.Conv2d(4, 4, 3, padding=1), nn.Linear(4, 2)

    def forward(self, x):
        x = self.bn(self.stem(x))
        x = x + self.body(x) if self.skip else self.body(x)
        return self.fc(x.mean((2, 3)))


def test_call_order_silenced_blocks_and_own_layers():
    from checklib.forward import call_order, own_roles, own_seeded, silenced

    shape, kinds = [2, 1, 8, 8], ["Conv2d", "BatchNorm2d", "Conv2d", "Linear"]
    calls = call_order(_Skip(), shape, 0)
    assert [(c["name"], c["channels"]) for c in calls] == [("stem", 4), ("bn", 4), ("body", 4), ("fc", None)]
    bypassed = silenced(_Skip(), calls, shape, 0)
    assert bypassed["kept"] == ["bn", "stem"] and not torch.equal(*bypassed["outputs"])
    blocked = silenced(_Skip(skip=False), calls, shape, 0)  # nothing reaches the head but its bias
    assert torch.equal(*blocked["outputs"])
    assert [(r.name, r.kind) for r in own_roles(_Skip(), kinds)] == list(zip(["stem", "bn", "body", "fc"], kinds))
    with pytest.raises(ProbeError, match="expected Conv2d, Linear"):
        own_roles(_Skip(), ["Conv2d", "Linear"])
    seeded = own_seeded(_Skip(), kinds, 0, shape)
    assert seeded["runs"] and seeded["runs"][0]["out"]["eval"].shape == (2, 2)


HOARD_JOB = r'''
import json, resource, sys
import torch  # first: torch reserves much address space as it loads
from checklib.runner import run_job
probes = sys.argv[1]
open(probes, "w").write(
    "def room(ns):\n"
    "    data = bytearray(256 * 2**20)  # needs memory the hoard would have taken\n"
    "    return {'hoard' : 'hoard' in ns, 'model': ns['Model']().width, 'kept': ns['kept']}\n")
cells = [
    {"id": "earlier", "source": "kept = [1, 2, 3]"},
    {"id": "hoarder", "source": "class Model:\n    width = 7\nkept = 'rebound'\nhoard = []\n"
                                "while True:\n    hoard.append(bytearray(64 * 2**20))\n"},
]
size = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
limit = size + 1024 * 2**20  # 1 GiB more than now: this process's MemoryError, not the machine's
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
records = []
run_job({"cells": cells, "probes": [{"key": "room", "probe": "room", "args": {}}], "probes_path": probes}, records.append)
print(json.dumps(records))
'''


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="sizes the limit from Linux's /proc")
def test_a_cell_that_runs_out_of_memory_does_not_starve_the_other_probes(tmp_path):
    """The hoard is released (data bound by the failed cell is undone), its class stays, and a
    name it rebound gets its earlier value back; the probe after it has room to run."""
    import subprocess
    import sys

    from checklib.probes import decode

    proc = subprocess.run([sys.executable, "-c", HOARD_JOB, str(tmp_path / "probes.py")], capture_output=True,
                          text=True, timeout=120, cwd=KIT_ROOT, env={**os.environ, "PYTHONPATH": str(KIT_ROOT)})
    records = json.loads(proc.stdout.strip().splitlines()[-1])
    hoarder = next(r for r in records if r["event"] == "cell" and r["id"] == "hoarder")
    assert not hoarder["ok"] and "MemoryError" in hoarder["error"]
    result = next(r for r in records if r.get("key") == "room" and r["event"] != "start")
    assert result["event"] == "result", result
    assert decode(result["data"]) == {"hoard": False, "model": 7, "kept": [1, 2, 3]}


class _PreAct(nn.Module):
    """BN -> ReLU -> conv, plus a 1x1 projection fed by the pre-activated input (or the raw one)."""

    def __init__(self, raw_projection=False, momentum=0.1, reuse=False, project_last=False):
        super().__init__()
        self.raw, self.reuse, self.last = raw_projection, reuse, project_last
        self.bn, self.relu = nn.BatchNorm2d(2, momentum=momentum), nn.ReLU()
        self.proj, self.conv = nn.Conv2d(2, 4, 1, bias=False), nn.Conv2d(2, 4, 1, bias=False)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        pre = self.relu(self.bn(x))
        if not self.last:
            shortcut = self.proj(x if self.raw else pre)
        out = self.conv(pre)
        if self.last:
            shortcut = self.proj(pre)
        out = out + shortcut
        if self.reuse:
            out = self.conv(F.relu(out[:, :2]))
        return self.fc(out.mean((2, 3)))


def test_layer_calls_say_what_feeds_each_layer():
    from checklib.forward import layer_calls

    calls = {c["name"]: c for c in layer_calls(_PreAct(), [2, 2, 5, 5], 0)}
    assert [calls[n]["fed_by"] for n in ("bn", "relu", "proj", "conv")] == [None, "bn", "relu", "relu"]
    assert calls["conv"]["kernel_size"] == [1, 1] and calls["conv"]["in_size"] == [5, 5] and calls["fc"]["shape"] == [3, 4]
    raw = {c["name"]: c for c in layer_calls(_PreAct(raw_projection=True), [2, 2, 5, 5], 0)}
    assert raw["proj"]["fed_by"] is None  # the raw input: no earlier layer made it


def test_batchnorm_momentum_is_measured_from_the_running_mean():
    from checklib.forward import batchnorm_momentum

    for momentum in (0.1, 0.003, 0.997):
        (found,) = batchnorm_momentum(_PreAct(momentum=momentum), [4, 2, 5, 5], 0)
        assert found["name"] == "bn" and found["momentum"] == pytest.approx(momentum, rel=1e-4)


def test_seeded_weights_are_mapped_by_call_order_and_refused_for_a_reused_layer():
    from checklib.forward import seeded_by_calls

    shape = [2, 2, 5, 5]
    roles = [Role("bn", "BatchNorm2d", (2,)), Role("proj", "Conv2d", (4, 2, 1, 1)), Role("conv", "Conv2d", (4, 2, 1, 1)),
             Role("fc", "Linear", (3, 4))]
    orders = [["bn", "proj", "conv", "fc"], ["bn", "conv", "proj", "fc"]]
    early, late = (seeded_by_calls(_PreAct(project_last=p), roles, orders, 0, shape) for p in (False, True))
    # Equal-shaped layers get the role of the position forward calls them in: both orders map, and
    # the run whose order is the module's own gives the same output for either module.
    assert [r["names"]["proj"] for r in early["runs"]] == ["proj", "conv"]
    assert [r["names"]["proj"] for r in late["runs"]] == ["conv", "proj"]
    assert torch.allclose(early["runs"][0]["out"]["eval"], late["runs"][1]["out"]["eval"])
    assert "more than once" in seeded_by_calls(_PreAct(reuse=True), roles, orders, 0, shape)["unmatched"]
    missing = seeded_by_calls(_PreAct(), roles[:3], [["bn", "proj", "conv"]], 0, shape)["unmatched"]
    assert "Linear" in missing


def test_seeded_pixels_depend_on_the_seed_only():
    from checklib.data import seeded_pixels

    a, b = seeded_pixels((3, 4), 7), seeded_pixels((3, 4), 7)
    assert a.dtype.name == "uint8" and (a == b).all() and not (a == seeded_pixels((3, 4), 8)).all()
