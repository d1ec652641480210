"""Reporters: hand-graded items are pending (not failed) and the total says what is to
come; a submission without a notebook gets one message; feedback names the student;
the gradebook has a flags column; a damaged zip is called one. Fast: no sandbox."""
import json
import zipfile

import pytest

from autograder import batch
from autograder.notebook import unpack
from autograder.pipeline import Report, grade
from autograder.reporters import gradescope_results, html_feedback, markdown_feedback, text_table
from checklib.assignment import load_assignment
from checklib.cells import SubmissionError
from checklib.checks import Verdict
from checklib.scoring import resolve
from conftest import SCHEMA


class NoSandbox:
    """Without a notebook there is nothing to run: a sandbox that must not be asked."""

    def run(self, cells, probes, probes_path, files, limits):
        raise AssertionError("a submission without a notebook reached the sandbox")


@pytest.fixture(scope="module")
def hw4():
    return load_assignment("hw4")


def all_passed(assignment) -> Report:
    verdicts = {i.id: Verdict(True, "ok", value=1.0) for i in assignment.items}
    return Report(assignment.name, "ann.zip", resolve(list(assignment.items), verdicts), 1.0)


def test_hand_graded_items_are_pending_not_failed(hw4):
    import jsonschema

    report = all_passed(hw4)
    manual = [i for i in hw4.items if i.manual]
    assert manual, "the rubric has hand-graded items"
    data = gradescope_results(report)
    jsonschema.validate(data, SCHEMA)
    assert all(t["status"] == "passed" for t in data["tests"])
    assert not {t["tags"][1] for t in data["tests"]} & {i.id for i in manual}
    assert data["extra_data"]["pending"] == {i.id: i.points for i in manual}
    for item in manual:
        assert item.name in data["output"]
    later = sum(i.points for i in manual)
    assert f"{later:g} more points are graded by hand" in data["output"]
    feedback = markdown_feedback(report)
    assert "❌" not in feedback and "⏳" in feedback and f"{later:g} of these points are graded by hand" in feedback
    assert "failed" not in text_table(report).split("TOTAL")[0].replace("passed", "")


def test_a_submission_without_a_notebook_gets_one_message(hw4, tmp_path):
    folder = tmp_path / "pdf_only"
    folder.mkdir()
    (folder / "HW4.pdf").write_bytes(b"%PDF-1.4")
    report = grade(folder, hw4, NoSandbox())
    data = gradescope_results(report)
    assert data["tests"] == [] and data["score"] == 0
    assert data["output"].count("No notebook found") == 1 and "AUTOGRADED" not in data["output"]
    feedback = markdown_feedback(report)
    assert feedback.count("No notebook found") == 1 and "AUTOGRADED" not in feedback


def test_a_partly_broken_notebook_keeps_its_per_check_feedback(hw4):
    # A whole-submission note (a graded cell missing) does not hide the other checks' own messages.
    verdicts = {i.id: Verdict(False, f"{i.id} is wrong in its own way") for i in hw4.items}
    report = Report(hw4.name, "bo.zip", resolve(list(hw4.items), verdicts), 1.0,
                    notes=["The graded cell 'augmentation' was not found: its first line must be exactly '# AUTOGRADED'."])
    data = gradescope_results(report)
    assert data["tests"] and all("in its own way" in t["output"].splitlines()[0] for t in data["tests"])


def test_feedback_names_the_student_and_shows_flags(hw4):
    report = all_passed(hw4)
    report.flags.append("experiments.xlsx says test accuracy 0.91 for run 01; the notebook's log shows 0.62")
    assert markdown_feedback(report, "ann_lee").startswith("# Feedback: hw4 for ann_lee")
    page = html_feedback(report, "ann_lee")
    assert "<title>Feedback: hw4 for ann_lee</title>" in page and "0.62" in page
    assert "0.62" in markdown_feedback(report) and gradescope_results(report)["extra_data"]["flags"] == report.flags


def test_gradebook_has_a_flags_column(hw4, tmp_path):
    entries = [batch.Entry("ann", tmp_path / "ann.zip"), batch.Entry("bo", tmp_path / "bo.zip")]
    flagged = all_passed(hw4)
    flagged.flags += ["rule violation: frame walking in cell 'resnet'", "table mismatch"]
    for entry, report in zip(entries, (flagged, all_passed(hw4))):
        results = gradescope_results(report)
        results["extra_data"].update(status="graded")
        (tmp_path / entry.student).mkdir()
        (tmp_path / entry.student / "results.json").write_text(json.dumps(results))
    rows = batch.gradebook_rows(tmp_path, entries, hw4)
    assert [r["flags"] for r in rows] == ["rule violation: frame walking in cell 'resnet'; table mismatch", ""]
    assert rows[0]["pending"] == sum(i.points for i in hw4.items if i.manual)
    batch.write_gradebook(rows, tmp_path)
    assert "flags" in (tmp_path / "gradebook.csv").read_text().splitlines()[0]
    assert "flagged" in batch.gradebook_table(rows)


def test_a_damaged_zip_is_called_one(tmp_path):
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("HW4.ipynb", "{}" * 1000)
    damaged = tmp_path / "ann.zip"
    damaged.write_bytes(good.read_bytes()[:-40])  # cut short, as an interrupted upload
    with pytest.raises(SubmissionError, match="damaged zip"):
        unpack(damaged, tmp_path / "out")
    other = tmp_path / "ann.docx.txt"
    other.write_text("hello")
    with pytest.raises(SubmissionError, match="neither a zip file"):
        unpack(other, tmp_path / "out2")


def test_a_broken_rule_is_its_own_test_and_its_own_gradebook_column(hw4, tmp_path):
    """Issue 12, class 4: the import rule costs its rubric deduction, and students and TAs see why."""
    import jsonschema

    verdicts = {i.id: Verdict(True, "ok", value=1.0) for i in hw4.items}
    verdicts["rules.imports"] = Verdict(False, "Rule violation: cell 'resnet' imports math.")
    report = Report(hw4.name, "ann.zip", resolve(list(hw4.items), verdicts), 1.0)
    deduction = next(i.deduction for i in hw4.items if i.id == "rules.imports")
    assert deduction > 0 and report.score == all_passed(hw4).score - deduction
    results = gradescope_results(report)
    jsonschema.validate(results, SCHEMA)
    test = next(t for t in results["tests"] if "rules.imports" in t["tags"])
    assert test["score"] == -deduction and test["status"] == "failed" and "imports math" in test["output"]
    assert f"-{deduction:g}/0" in markdown_feedback(report) and results["score"] == report.score
    assert results["extra_data"]["rule_violations"] == {"rules.imports": -deduction}
    results["extra_data"].update(status="graded")
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "results.json").write_text(json.dumps(results))
    rows = batch.gradebook_rows(tmp_path, [batch.Entry("ann", tmp_path / "ann.zip"), batch.Entry("bo", tmp_path / "bo.zip")], hw4)
    assert [r["rule_violations"] for r in rows] == [f"rules.imports (-{deduction:g})", ""]
    batch.write_gradebook(rows, tmp_path)
    assert "rule_violations" in (tmp_path / "gradebook.csv").read_text().splitlines()[0]
