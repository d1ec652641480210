"""HW5 (the CIFAR-10 challenge): the verified accuracy end to end. Every automatic point for
the reference, none for the blank release, exactly its rubric items failed per mutant
(wrong class count, weights of another network, a pickle bomb, a model too slow for the
limits, ...), an inflated report flagged but not rewarded, a model that looks for the
labels gaining nothing, a subset with its interval when the budget is short, and the
leaderboard. Expected points and budgets are read from the rubric and checks.py."""
import dataclasses
import json
import re

import nbformat
import numpy as np
import pytest
import torch

from autograder.sandbox import KIT_ROOT
from checklib import verified
from checklib.assignment import load_assignment
from demo import hw5_samples as samples

SOURCE = KIT_ROOT / "source" / "hw5" / "HW5.ipynb"


@pytest.fixture(scope="module")
def hw5():
    return load_assignment("hw5")


def evaluation_args(assignment):
    return next(c for c in assignment.checks if c.id == "accuracy.verified").args


# --- fast: the notebook states what the grader enforces -------------------------------------------

def test_notebook_states_the_budgets_and_points_the_grader_uses(hw5):
    text = "\n".join(c.source for c in nbformat.read(SOURCE, as_version=4).cells if c.cell_type == "markdown")
    args = evaluation_args(hw5)
    assert f"{args['max_parameters']:,} parameters" in text
    assert f"{args['seconds']:g}-second" in text and f"{args['min_images']:,} test images" in text
    assert f"{args['max_mb']:g} MB" in text and "weights_only=True" in text and "32x32" in text
    stated = {int(p) for p in re.findall(r"\|\s*(\d+)\s*\|\s*$", text, flags=re.M)}
    assert stated == {int(i.points) for i in hw5.items if i.points}
    assert f"{int(hw5.limits.cpu_seconds)}" and hw5.limits.probe_timeout > args["seconds"]  # the budget fits the probe


def test_the_engine_and_the_library_have_no_hw5_specific_code():
    import subprocess

    proc = subprocess.run(["git", "grep", "-n", "-i", "hw5", "--", "autograder/", "checklib/"],  # file formats (CIFAR) are generic
                          cwd=KIT_ROOT, capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stdout == "", proc.stdout  # git grep: 1 means no match


def test_the_bundle_carries_the_test_set_and_the_release_does_not(hw5):
    from autograder.gradescope import bundle_members

    test_set = hw5.test_set_path.relative_to(KIT_ROOT)
    assert test_set in bundle_members("hw5")
    assert not (KIT_ROOT / "release" / "hw5" / "assignments" / "hw5" / "assets").exists()
    assert "file" not in load_assignment("hw5", KIT_ROOT / "release" / "hw5").test_set


# --- slow: one graded class of samples, shared by the module ---------------------------------------

@pytest.fixture(scope="module")
def graded(hw5, tmp_path_factory):
    """The reference, the blank release and every mutant, graded as a class by grade-all."""
    from autograder.batch import grade_all
    from autograder.container import missing_mechanisms

    root = tmp_path_factory.mktemp("hw5")
    samples.build(root / "class" / "reference")
    samples.build_blank(root / "class" / "blank_release")
    for name, mutant in samples.MUTANTS.items():
        samples.build(root / "class" / name, mutant)
    rows = grade_all(root / "class", "hw5", root / "graded", jobs=2, unsafe_no_isolation=bool(missing_mechanisms()))
    results = {r["student"]: json.loads((root / "graded" / r["student"] / "results.json").read_text()) for r in rows}
    return dict(root=root, rows={r["student"]: r for r in rows}, results=results)


def scores(results):
    return {t["tags"][1]: t for t in results["tests"]}


def accuracy_here(folder):
    """The accuracy of a sample's model.pt on the grader's test set, computed in this process."""
    ns = {}
    nb = nbformat.read(folder / "HW5.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") in ("model",):
            exec("import os\nimport numpy as np\nimport torch\nfrom torch import nn\nimport torch.nn.functional as F\n"
                 + cell.source, ns)
    model = ns["Net"]()
    model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
    model.eval()
    images, labels = verified.read_image_set(load_assignment("hw5").test_set_path)
    with torch.inference_mode():
        predicted = model(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255).argmax(1).numpy()
    return float((predicted == labels).mean())


@pytest.mark.slow
def test_reference_gets_every_automatic_point_and_its_true_accuracy(hw5, graded):
    tests = scores(graded["results"]["reference"])
    for item in hw5.items:
        if not item.manual and item.points:
            assert tests[item.id]["score"] >= item.points, (item.id, tests[item.id]["output"][:300])
    board = {c["name"]: c["value"] for c in graded["results"]["reference"]["leaderboard"]}
    assert set(board) == {c["name"] for c in hw5.leaderboard}
    assert board["Accuracy"] == pytest.approx(accuracy_here(graded["root"] / "class" / "reference"), abs=1e-4)
    total = len(verified.read_image_set(hw5.test_set_path)[1])
    assert f"all {total:,}" in tests["accuracy.verified"]["output"]


@pytest.mark.slow
def test_blank_release_earns_no_point(graded):
    results = graded["results"]["blank_release"]
    assert results["score"] == 0 and results["leaderboard"] == []


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(samples.MUTANTS))
def test_each_mutant_fails_exactly_its_items(hw5, graded, name):
    mutant = samples.MUTANTS[name]
    tests = scores(graded["results"][name])
    failed = {i.id for i in hw5.items if not i.manual and i.id in tests and tests[i.id]["status"] == "failed"}
    assert failed == set(mutant.fails), {i: tests[i]["output"][:300] for i in failed ^ set(mutant.fails)}
    assert bool(graded["rows"][name]["flags"]) == (mutant.flagged or "rules.imports" in mutant.fails), graded["rows"][name]["flags"]


@pytest.mark.slow
def test_verdicts_name_their_cause(graded):
    message = lambda name, item: scores(graded["results"][name])[item]["output"]  # noqa: E731
    assert "missing from the file: mean, std, prep.0.weight" in message("other_architecture", "model.loads")
    assert "in the file but not in Net(): 0.weight" in message("other_architecture", "model.loads")
    assert "weights_only=True" in message("pickle_bomb", "model.loads")
    assert "expected (1, 10)" in message("wrong_class_count", "model.outputs")
    assert "too slow for the limits" in message("too_slow", "model.outputs")
    assert not list(graded["root"].rglob("PICKLE_BOMB_RAN"))


@pytest.mark.slow
def test_an_inflated_report_is_flagged_and_never_rewarded(hw5, graded):
    inflated = graded["results"]["inflated_report"]
    verified_accuracy = {c["name"]: c["value"] for c in inflated["leaderboard"]}["Accuracy"]
    item = next(i for i in hw5.items if i.id == "accuracy.verified")
    assert scores(inflated)["accuracy.verified"]["score"] == next((p for t, p in item.thresholds if verified_accuracy >= t), 0)
    assert f"differs from the verified {verified_accuracy:.2%}" in graded["rows"]["inflated_report"]["flags"]
    assert "flagged for a TA" in scores(inflated)["accuracy.verified"]["output"]


@pytest.mark.slow
def test_looking_for_the_labels_gains_nothing(graded):
    peek, reference = graded["results"]["peeks_at_labels"]["leaderboard"], graded["results"]["reference"]["leaderboard"]
    assert peek[0] == reference[0]   # the same verified accuracy: the child never has a label to find


@pytest.mark.slow
def test_the_class_leaderboard_ranks_by_verified_accuracy(hw5, graded):
    from autograder.batch import leaderboard_table

    lines = leaderboard_table(list(graded["rows"].values()), hw5).splitlines()
    ranked = [line.split()[1] for line in lines[1:]]
    measured = [s for s in ranked if graded["rows"][s].get("Accuracy") is not None]
    assert ranked[:len(measured)] == measured and "blank_release" in ranked[len(measured):]
    values = [graded["rows"][s]["Accuracy"] for s in measured]
    assert values == sorted(values, reverse=True)


@pytest.mark.slow
def test_a_short_budget_evaluates_a_secret_subset_with_its_interval(hw5, sandbox, graded):
    from autograder.pipeline import grade

    total = len(verified.read_image_set(hw5.test_set_path)[1])
    budget = 0.05  # seconds: the child evaluates a few batches of 10 before its budget runs out; by the grader's
                   # clock (building and loading included) no more fit, so those images are the secret subset

    def short(check):
        return dataclasses.replace(check, args={**check.args, "seconds": budget, "min_images": 0, "batch_size": 10}) \
            if check.test_set else check
    report = grade(graded["root"] / "class" / "reference", dataclasses.replace(hw5, checks=tuple(map(short, hw5.checks))), sandbox)
    result = {r.id: r for r in report.results}["accuracy.verified"]
    assert "Wilson 95% interval" in result.output and f"of the {total:,} test images" in result.output, result.output
    n = int(re.search(r"subset of ([\d,]+)", result.output).group(1).replace(",", ""))
    accuracy = {c["name"]: c["value"] for c in report.leaderboard}["Accuracy"]
    low, high = verified.wilson(round(accuracy * n), n)
    assert 0 < n < total and f"{high:.2%}" in result.output
    assert result.score == next(p for t, p in hw5.items[[i.id for i in hw5.items].index("accuracy.verified")].thresholds
                                if high >= t)
