"""Grading a class: mixed submissions, resuming after a kill, layouts, the Gradescope bundle, Dask."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import nbformat
import pandas as pd
import pytest

from autograder.batch import discover, grade_all
from autograder.sandbox import KIT_ROOT
from demo import hw4_samples as samples

SCHEMA = json.loads((KIT_ROOT / "autograder" / "gradescope_schema.json").read_text())
MUTANTS = ["softmax_output", "no_shortcut_activation", "fixed_pooling", "two_augmentations", "index_unnamed"]
LOST = {"softmax_output": 2, "no_shortcut_activation": 10, "fixed_pooling": 3, "two_augmentations": 3, "index_unnamed": 3}


def make_class(root: Path) -> dict:
    """A class of 12 submissions and the total each must get."""
    root.mkdir(parents=True)
    work = root.parent / (root.name + "-work")
    expected = {}
    samples.zip_folder(samples.build(work / "ref"), root / "alice.zip")
    expected["alice"] = 100
    shutil.copy(samples.build_blank(work / "blank") / "HW4.ipynb", root / "bob.ipynb")
    expected["bob"] = 0
    for i, name in enumerate(MUTANTS):
        folder = samples.build(work / name, samples.MUTANTS[name])
        student = f"m{i}_{name}"
        if i % 2:
            samples.zip_folder(folder, root / f"{student}.zip")
        else:
            shutil.copytree(folder, root / student)
        expected[student] = 100 - LOST[name]
    (root / "carol.zip").write_bytes(b"PK\x03\x04 this is not really a zip")
    expected["carol"] = 0
    (root / "dave.txt").write_text("I did not do the homework.")
    expected["dave"] = 0
    attacker = samples.build_blank(work / "eve")
    nb = nbformat.read(attacker / "HW4.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "resnet")
    cell.source = cell.source.replace("# AUTOGRADED\n", "# AUTOGRADED\nopen('results.json', 'w').write('{\"score\": 100}')\nos._exit(0)\n", 1)
    nbformat.write(nb, attacker / "HW4.ipynb")
    shutil.copytree(attacker, root / "eve")
    expected["eve"] = 0
    frank = samples.build(work / "frank")
    (frank / "experiments.xlsx").unlink()
    shutil.copytree(frank, root / "frank")
    expected["frank"] = 100 - 25 - 5 - 15  # accuracy (with bonus), experiments, table: all need the xlsx
    return expected


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    base = tmp_path_factory.mktemp("class")
    expected = make_class(base / "submissions")
    rows = grade_all(base / "submissions", "hw4", base / "out", jobs=2, progress=False)
    return base, expected, rows


@pytest.mark.slow
def test_batch_gradebook_has_the_expected_totals(graded_class):
    base, expected, rows = graded_class
    totals = {r["student"]: r["total"] for r in rows}
    assert totals == pytest.approx(expected)
    book = pd.read_csv(base / "out" / "gradebook.csv", index_col="student")
    assert sorted(book.index) == sorted(expected)
    for column in ("1.1 ResNet Block and Model", "1.2 Data augmentation", "1.3 Training", "1.4 Experiments table",
                   "total", "grading_seconds", "status"):
        assert column in book.columns
    assert book.loc["alice", "1.1 ResNet Block and Model"] == 50
    assert "not a zip" in book.loc["carol", "reason"] or "neither a zip" in book.loc["carol", "reason"]
    assert "neither a zip file, a folder nor a notebook" in book.loc["dave", "reason"]
    assert (base / "out" / "gradebook.xlsx").stat().st_size > 0


@pytest.mark.slow
def test_every_student_gets_results_and_feedback(graded_class):
    base, expected, _ = graded_class
    for student in expected:
        folder = base / "out" / student
        data = json.loads((folder / "results.json").read_text())
        jsonschema.validate(data, SCHEMA)
        assert data["extra_data"]["student"] == student
        assert (folder / "feedback.md").read_text().startswith("# Feedback: hw4")
        assert "<h1>Feedback: hw4</h1>" in (folder / "feedback.html").read_text()
    softmax = (base / "out" / "m0_softmax_output" / "feedback.md").read_text()
    assert "that is a softmax" in softmax


@pytest.mark.slow
def test_killed_batch_resumes_without_regrading(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    for i in range(6):
        samples.build(subs / f"s{i}", samples.MUTANTS[MUTANTS[i % len(MUTANTS)]] if i else None)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "autograder", "grade-all", str(subs), "--assignment", "hw4", "--out", str(out), "--jobs", "1"]
    proc = subprocess.Popen(cmd, cwd=KIT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while len(list(out.glob("*/results.json"))) < 2:
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/results.json")}
    assert 2 <= len(done_before) < 6

    rerun = subprocess.run(cmd, cwd=KIT_ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/results.json")}
    assert sorted(after) == [f"s{i}" for i in range(6)]
    for student, mtime in done_before.items():
        assert after[student] == mtime  # not graded twice
    book = pd.read_csv(out / "gradebook.csv", index_col="student")
    assert len(book) == 6 and book.loc["s0", "total"] == 100 and book["status"].eq("graded").all()

    # --force regrades everyone
    forced = subprocess.run(cmd + ["--force"], cwd=KIT_ROOT, capture_output=True, text=True, timeout=300)
    assert forced.returncode == 0
    assert all(p.stat().st_mtime_ns != after[p.parent.name] for p in out.glob("*/results.json"))


@pytest.mark.slow
def test_changed_submission_is_regraded(tmp_path):
    subs = tmp_path / "subs"
    samples.build(subs / "ann", samples.MUTANTS["softmax_output"])
    rows = grade_all(subs, "hw4", tmp_path / "out", jobs=1, progress=False)
    assert rows[0]["total"] == 98
    samples.build(subs / "ann")  # the student resubmits the fixed version
    rows = grade_all(subs, "hw4", tmp_path / "out", jobs=1, progress=False)
    assert rows[0]["total"] == 100


@pytest.mark.slow
def test_discovers_nbgrader_and_gradescope_layouts(tmp_path):
    nbg = tmp_path / "course" / "submitted"
    for student in ("s1", "s2"):
        (nbg / student / "hw4").mkdir(parents=True)
    (nbg / "s3" / "hw3").mkdir(parents=True)  # another assignment: not ours
    assert [(e.student, e.path.name) for e in discover(tmp_path / "course", "hw4")] == [("s1", "hw4"), ("s2", "hw4")]

    export = tmp_path / "export"
    (export / "submission_111").mkdir(parents=True)
    (export / "submission_222").mkdir(parents=True)
    (export / "submission_metadata.yml").write_text(
        "submission_111:\n  :submitters:\n  - :name: Ada L\n    :sid: '1001'\n    :email: ada@example.edu\n"
        "submission_222:\n  :submitters:\n  - :name: Bo\n    :email: bo@example.edu\n")
    assert [(e.student, e.path.name) for e in discover(export, "hw4")] == [("1001", "submission_111"),
                                                                           ("bo@example.edu", "submission_222")]


@pytest.mark.slow
def test_gradescope_bundle_runs_for_real(gradescope):
    names = gradescope.install("hw4")
    assert {"setup.sh", "run_autograder", "requirements.txt", "autograder/__main__.py",
            "assignments/hw4/rubric.yaml", "source/hw4/HW4.ipynb", "hw_utils/train.py"} <= names
    assert not any("__pycache__" in n for n in names)
    samples.build(gradescope.submission, samples.MUTANTS["softmax_output"])
    proc, data = gradescope.run()
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert data["score"] == 98

    # Anything broken still leaves a valid zero-score results.json with the reason.
    broken, data = gradescope.run(python="/bin/false")
    assert broken.returncode == 0
    assert data["score"] == 0 and "stopped with status 1" in data["output"]


@pytest.mark.slow
def test_grade_all_on_a_dask_cluster(tmp_path):
    from distributed import LocalCluster

    subs = tmp_path / "subs"
    samples.build(subs / "ann")
    samples.build(subs / "ben", samples.MUTANTS["fixed_pooling"])
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        rows = grade_all(subs, "hw4", tmp_path / "out", dask_address=cluster.scheduler_address, progress=False)
    assert {r["student"]: r["total"] for r in rows} == {"ann": 100, "ben": 97}
    assert (tmp_path / "out" / "ben" / "feedback.html").is_file()
