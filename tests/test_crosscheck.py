"""Self-reported results cross-checked: the submitted table against the table the
notebook displayed and the per-epoch log it printed (rubric data: `cross_checks`).
A mismatch is a flag for a TA in the report, results.json and the gradebook; it
never changes a score. Fast: the sandbox is stood in for (nothing is measured)."""
import nbformat
import pandas as pd
import pytest

from autograder.crosscheck import mismatches, parse_html_table
from autograder.pipeline import grade
from autograder.reporters import gradescope_results
from checklib.assignment import load_assignment
from demo import hw4_samples


class NoSandbox:
    def run(self, cells, probes, probes_path, files, limits):
        from autograder.sandbox import RunResult

        return RunResult()


@pytest.fixture(scope="module")
def hw4():
    return load_assignment("hw4")


def executed(folder, table: pd.DataFrame, logged: list[float]):
    """The submission's notebook with saved outputs: `table` displayed, `logged` test accuracies printed by train."""
    nb = nbformat.read(folder / "HW4.ipynb", as_version=4)
    hw4_samples.mark_executed(nb, folder, table, logged)
    nbformat.write(nb, folder / "HW4.ipynb")
    return folder


def submitted_table(folder) -> pd.DataFrame:
    return pd.read_excel(folder / "experiments.xlsx", index_col=0, dtype={0: str})


def test_pandas_html_table_is_read_back():
    table = pd.DataFrame({"test_acc": [0.8, 0.91], "optim_config": [{"lr": 0.1}, {"lr": 0.2}]},
                         index=pd.Index(["00", "01"], name="name"))
    assert parse_html_table(table.to_html()) == {"00": {"test_acc": "0.80", "optim_config": "{'lr': 0.1}"},
                                                 "01": {"test_acc": "0.91", "optim_config": "{'lr': 0.2}"}}


def test_honest_submission_is_not_flagged(hw4, tmp_path):
    folder = hw4_samples.build(tmp_path / "ann")
    table = submitted_table(folder)
    executed(folder, table, [0.35, 0.5, *table["test_acc"]])
    nb = nbformat.read(folder / "HW4.ipynb", as_version=4)
    assert mismatches(hw4.cross_checks, nb, {"experiments.xlsx": folder / "experiments.xlsx"}) == []


def test_fabricated_table_is_flagged_for_a_ta_without_changing_the_score(hw4, tmp_path):
    # The notebook really reached 0.62 at best; the submitted table claims more.
    folder = hw4_samples.build(tmp_path / "bo")
    claimed = submitted_table(folder)
    real = claimed.assign(test_acc=claimed["test_acc"] * 0.62 / claimed["test_acc"].max())
    executed(folder, real, list(real["test_acc"]))
    honest = grade(hw4_samples.build(tmp_path / "same_without_outputs", executed=False), hw4, NoSandbox())
    report = grade(folder, hw4, NoSandbox())
    assert report.score == honest.score  # a flag never changes a score
    shown, logged = report.flags
    best = claimed["test_acc"].idxmax()
    assert "experiments.xlsx" in shown and f"row {best}, test_acc" in shown and "table cell 'table'" in shown
    assert f"row {best}, test_acc = {claimed.loc[best, 'test_acc']}" in logged and "never logged" in logged
    assert "0.62" in logged  # the logged range
    assert gradescope_results(report)["extra_data"]["flags"] == report.flags


def test_notebook_without_outputs_is_flagged(hw4, tmp_path):
    # An empty or never-run notebook beside fabricated files (today: 45 points unexamined).
    report = grade(hw4_samples.build(tmp_path / "cy", executed=False), hw4, NoSandbox())
    assert len(report.flags) == len(hw4.cross_checks)
    assert all("is not supported by the notebook" in f for f in report.flags)


def test_unreadable_table_is_flagged_not_a_crash(hw4, tmp_path):
    folder = hw4_samples.build(tmp_path / "di")
    (folder / "experiments.xlsx").write_bytes(b"PK\x03\x04 not a workbook")
    report = grade(folder, hw4, NoSandbox())
    assert report.flags and all("could not be read" in f for f in report.flags)
