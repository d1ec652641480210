"""Fast tests of the grader's protocol around the sandbox: fail closed, submission
unpacking (caps, symbolic links, damaged zips), batch ids and infrastructure
failures. No sandbox is started here (the attacks against a real one are in
test_attacks.py)."""
import json
from pathlib import Path
import zipfile

import pytest

from autograder import batch, container, notebook
from autograder.batch import discover, grade_all
from autograder.container import IsolationUnavailable
from autograder.sandbox import InfrastructureError, Sandbox
from checklib.cells import SubmissionError


# --- fail closed ---------------------------------------------------------------------------

@pytest.mark.parametrize("mechanism, named", [("cgroup", "cgroups"), ("root", "root")])
def test_a_missing_mechanism_refuses_with_what_and_how(monkeypatch, mechanism, named):
    monkeypatch.setenv(container.SIMULATE_ENV, mechanism)
    with pytest.raises(IsolationUnavailable) as refusal:
        Sandbox().start()
    message = str(refusal.value)
    assert named in message and "--unsafe-no-isolation" in message and "Refusing to grade" in message


def test_grade_all_refuses_before_grading_anything(monkeypatch, tmp_path):
    monkeypatch.setenv(container.SIMULATE_ENV, "cgroup")
    (tmp_path / "class").mkdir()
    (tmp_path / "class" / "ann.ipynb").write_text("{}")
    with pytest.raises(IsolationUnavailable):
        grade_all(tmp_path / "class", "hw4", tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "ann").exists()


def test_the_allow_list_root_holds_no_grader_only_file():
    from autograder.release import public_files
    from checklib.assignment import KIT_ROOT

    inside = [target for _, target in container.root_entries()]
    for target in inside:
        assert not target.startswith(str(KIT_ROOT / "source")) and "/.git" not in target
        assert not any(part in ("hidden_checks.py", "make_assets.py", "__pycache__") for part in target.split("/"))
        assert "hidden" not in target.rsplit("/", 1)[-1]
        if target.startswith(str(KIT_ROOT / "assignments")):
            folder = KIT_ROOT / "assignments" / target[len(str(KIT_ROOT / "assignments")) + 1:].split("/")[0]
            assert Path(target) in public_files(folder), target
    assert str(KIT_ROOT) not in inside and str(KIT_ROOT / "autograder") in inside


def test_the_child_sees_no_file_a_rubric_declares_grader_only(tmp_path):
    """A grader-only file the rubric declares (say, a hidden reference implementation next to
    probes.py) is kept out of the child's root by the same rule as the release's; so are every
    .py but probes.py and checks.py, and the full rubric (it names the hidden items)."""
    folder = tmp_path / "assignments" / "hwx"
    folder.mkdir(parents=True)
    (folder / "rubric.yaml").write_text("hidden_files: [reference.py, data/answers.npy]\n")
    for name in ("probes.py", "checks.py", "reference.py", "helpers.py", "data/answers.npy", "data/inputs.npy"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("x")
    inside = {target for _, target in container.root_entries(tmp_path / "assignments")}
    assert {str(folder / n) for n in ("probes.py", "checks.py", "data/inputs.npy")} <= inside
    assert not {str(folder / n) for n in ("reference.py", "helpers.py", "data/answers.npy", "rubric.yaml")} & inside


# --- unpacking a submission ------------------------------------------------------------------

def test_symbolic_links_are_refused(tmp_path):
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "model_config.yaml").symlink_to("/etc/passwd")
    with pytest.raises(SubmissionError, match="symbolic link"):
        notebook.unpack(folder, tmp_path / "x")
    (tmp_path / "HW4.ipynb").symlink_to(tmp_path / "elsewhere.ipynb")
    (tmp_path / "elsewhere.ipynb").write_text("{}")
    with pytest.raises(SubmissionError, match="symbolic link"):
        notebook.unpack(tmp_path / "HW4.ipynb", tmp_path / "x")


def test_a_damaged_zip_is_a_submission_error(tmp_path):
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("HW4.ipynb", "{}" * 1000)
    damaged = tmp_path / "damaged.zip"
    data = good.read_bytes()
    damaged.write_bytes(data[:40] + b"\0" * 30 + data[70:])
    with pytest.raises(SubmissionError, match="damaged zip file|neither a zip"):
        notebook.unpack(damaged, tmp_path / "out")


def test_notebooks_are_capped_before_parsing(tmp_path, monkeypatch):
    cell = '{"cell_type": "code", "metadata": {}, "source": [], "outputs": [], "execution_count": null}'
    nb = tmp_path / "HW4.ipynb"
    nb.write_text('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [' + ",".join([cell] * 6000) + "]}")
    with pytest.raises(SubmissionError, match="cells"):
        notebook.read_capped(nb)
    monkeypatch.setattr(notebook, "MAX_NOTEBOOK_BYTES", 1000)
    with pytest.raises(SubmissionError, match="MB"):
        notebook.read_capped(nb)


# --- the batch ---------------------------------------------------------------------------------

def test_colliding_and_reserved_ids_are_made_unique(tmp_path):
    for name in ("ann lee.zip", "ann_lee.zip", "Ann_Lee.ipynb", "gradebook.csv.zip", "gradebook.xlsx"):
        (tmp_path / name).write_bytes(b"x")
    ids = sorted(e.student for e in discover(tmp_path, "hw4"))
    assert len(ids) == len(set(i.lower() for i in ids)) == 5
    assert not {"gradebook.csv", "gradebook.xlsx"} & set(ids)


def test_an_infrastructure_failure_is_recorded_and_regraded(tmp_path, monkeypatch):
    root = tmp_path / "class"
    root.mkdir()
    (root / "ann.zip").write_bytes(b"not a zip")  # graded without a sandbox: the notebook stage refuses it

    def broken(*args, **kwargs):
        raise InfrastructureError("the sandbox's worker process died")

    monkeypatch.setattr(batch, "grade", broken)
    rows = grade_all(root, "hw4", tmp_path / "out", progress=False, unsafe_no_isolation=True)
    assert rows[0]["status"] == "infrastructure error"
    saved = json.loads((tmp_path / "out" / "ann" / "results.json").read_text())
    assert "graded again" in saved["output"]
    monkeypatch.undo()
    rows = grade_all(root, "hw4", tmp_path / "out", progress=False, unsafe_no_isolation=True)  # the next run regrades
    assert rows[0]["status"] == "graded with problems"
