"""The student's submission flow: `make submission` in a release folder, and each validation."""
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

from demo import hw2_samples, hw4_samples as samples
from hw_utils.pdf import PdfEngineMissing, notebook_to_pdf, shorten_outputs
from hw_utils.submit import check_execution, check_saved

needs_chromium = pytest.mark.skipif(not shutil.which("chromium") or not shutil.which("pdftotext"),
                                    reason="needs Debian's chromium and poppler-utils (.ci/run installs them)")


def run_submit(folder: Path, *args):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(["make", "-s", "submission", f"PYTHON={sys.executable}", *args] if not args else
                          [sys.executable, "-m", "hw_utils.submit", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def submitted(tmp_path_factory):
    folder = samples.build_student_folder(tmp_path_factory.mktemp("student") / "hw4")
    return folder, run_submit(folder)


@pytest.mark.slow
@needs_chromium
def test_make_submission_writes_the_zip_and_a_pdf(submitted):
    folder, proc = submitted
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with zipfile.ZipFile(folder / "HW4_submission.zip") as zf:
        assert zf.namelist() == ["HW4.ipynb", "model_config.yaml", "train_config.yaml", "experiments.xlsx"]
    info = subprocess.run(["pdfinfo", str(folder / "HW4.pdf")], capture_output=True, text=True).stdout
    pages = int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))
    assert pages >= 5
    text = subprocess.run(["pdftotext", str(folder / "HW4.pdf"), "-"], capture_output=True, text=True).stdout
    assert "HW4: A Convolutional ResNet on" in text and "CIFAR-10" in text
    assert "Out[" in text and "OneCyc" in text and "0.91" in text  # the experiments table's output
    assert "lines cut for the PDF" in text                          # the 120-line training log was shortened


def flat(text: str) -> str:
    """Messages are wrapped for the terminal: compare them with whitespace collapsed."""
    return " ".join(text.split())


@pytest.mark.slow
@needs_chromium
def test_make_submission_runs_the_public_checks_only(submitted):
    _, proc = submitted
    out = flat(proc.stdout)
    assert "Block: computes the specified function" in out
    # 87 points checked here (the hidden check's 3 are not in the release), 10 of them bonus; the conclusion pending
    assert "TOTAL checked here: 97 / 87 (with 10 bonus)" in out
    assert "PENDING: 10 more points graded by hand after the deadline (Conclusion (graded by hand))" in out
    assert "other image sizes" not in out


@pytest.mark.slow
def test_missing_files_are_named_with_how_to_make_them(tmp_path):
    folder = samples.build_student_folder(tmp_path / "hw4")
    (folder / "experiments.xlsx").unlink()
    proc = run_submit(folder, "--no-checks")
    assert proc.returncode == 1
    assert "✗ experiments.xlsx is missing. Run the table cell of part 1.4" in flat(proc.stdout)
    assert "Nothing written" in proc.stdout and not (folder / "HW4_submission.zip").exists()


@pytest.mark.slow
def test_invalid_notebook_is_refused(tmp_path):
    folder = samples.build_student_folder(tmp_path / "hw4")
    (folder / "HW4.ipynb").write_text('{"cells": [ this is not json')
    proc = run_submit(folder, "--no-checks")
    assert proc.returncode == 1 and "HW4.ipynb is not a readable notebook" in proc.stdout


def _edit(folder, edit):
    nb = nbformat.read(folder / "HW4.ipynb", as_version=4)
    edit(nb)
    nbformat.write(nb, folder / "HW4.ipynb")


def _graded(nb, gid):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)


@pytest.mark.parametrize("case, edit, message", [
    ("tag removed", lambda nb: setattr(_graded(nb, "augmentation"), "source", _graded(nb, "augmentation").source.replace("# AUTOGRADED\n", "")),
     "The graded cell of part 1.2 Data augmentation was not found: its first line must be exactly '# AUTOGRADED'"),
    ("new import", lambda nb: setattr(_graded(nb, "resnet"), "source", _graded(nb, "resnet").source.replace("# AUTOGRADED\n", "# AUTOGRADED\nimport numpy as np\n")),
     "the graded cell of part 1.1 ResNet Block and Model imports numpy"),
])
@pytest.mark.slow
def test_graded_cell_problems_stop_the_submission(tmp_path, case, edit, message):
    folder = samples.build_student_folder(tmp_path / "hw4")
    _edit(folder, edit)
    proc = run_submit(folder, "--no-checks")
    assert proc.returncode == 1, case
    assert message in flat(proc.stdout)


@pytest.mark.slow
def test_duplicated_graded_cell_is_a_warning(tmp_path):
    folder = samples.build_student_folder(tmp_path / "hw4")
    def paste_copy(nb):  # as Jupyter's copy and paste does: same content, a new cell id
        copy = nbformat.from_dict(json.loads(json.dumps(_graded(nb, "resnet"))))
        copy["id"] = "pasted-copy"
        nb.cells.append(copy)
    _edit(folder, paste_copy)
    proc = run_submit(folder, "--no-checks", "--no-zip")
    assert "! The graded cell of part 1.1 ResNet Block and Model appears twice" in flat(proc.stdout) and proc.returncode == 0


def test_execution_order_unrun_cells_and_errors_are_reported():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("a = 1"), nbformat.v4.new_code_cell("b = 2"),
                                         nbformat.v4.new_code_cell("c = 3"), nbformat.v4.new_code_cell("1/0")])
    nb.cells[0].execution_count, nb.cells[1].execution_count, nb.cells[3].execution_count = 5, 2, 6
    nb.cells[3].outputs = [nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="", traceback=[])]
    findings = check_execution(nb)
    messages = " ".join(f.message for f in findings)
    assert "code cell 2 (the one that starts with `b = 2`) ran before a cell above it" in messages
    assert "code cells not run: 3" in messages
    assert "code cell 4 (the one that starts with `1/0`): ZeroDivisionError" in messages


def test_cells_are_counted_as_students_see_them_and_rerunning_warns_once():
    """Markdown cells are not counted; re-running one cell in the middle gives one warning, not one per cell below."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title")] +
                                  [nbformat.v4.new_code_cell(f"x{i} = {i}") for i in range(8)])
    for i, cell in enumerate(nb.cells[1:]):
        cell.execution_count = i + 1
    nb.cells[2].execution_count = 20  # the second code cell run again at the end
    findings = check_execution(nb)
    assert len(findings) == 1
    assert "code cell 3 (the one that starts with `x2 = 2`) ran before a cell above it and 5 more" in findings[0].message


def test_unsaved_notebook_is_reported(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("a = 1")])
    nb.cells[0].metadata["execution"] = {"iopub.status.idle": "2031-01-01T10:00:00.000Z"}  # ran after the save
    path = tmp_path / "HW4.ipynb"
    nbformat.write(nb, path)
    findings = check_saved(path, nb)
    assert findings and "older than your last cell run" in findings[0].message
    nb.cells[0].metadata["execution"] = {"iopub.status.idle": "2001-01-01T10:00:00.000Z"}
    assert check_saved(path, nb) == []
    nb.cells[0].metadata = {"executionInfo": {"timestamp": (time.time() + 3600) * 1000}}  # Colab's record
    assert check_saved(path, nb)


def test_no_pdf_engine_says_what_to_install(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title")])
    nbformat.write(nb, tmp_path / "n.ipynb")
    monkeypatch.setenv("PATH", str(tmp_path))  # no browser, no xelatex on this PATH
    with pytest.raises(PdfEngineMissing, match="(?s)apt-get install chromium.*playwright install chromium"):
        notebook_to_pdf(tmp_path / "n.ipynb", tmp_path / "n.pdf", engine="chromium")
    with pytest.raises(PdfEngineMissing, match="needs xelatex"):
        notebook_to_pdf(tmp_path / "n.ipynb", tmp_path / "n.pdf", engine="latex")


def test_long_outputs_keep_their_ends():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x")])
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="".join(f"line {i}\n" for i in range(200)))]
    text = shorten_outputs(nb).cells[0].outputs[0]["text"]
    assert text.startswith("line 0\n") and text.endswith("line 199\n") and "[... 150 lines cut for the PDF ...]" in text
    assert len(nb.cells[0].outputs[0]["text"].splitlines()) == 200  # the original is untouched


@pytest.mark.slow
@needs_chromium
def test_hw2_submission_keeps_the_results_folder(tmp_path):
    folder = hw2_samples.build_student_folder(tmp_path / "hw2")
    proc = run_submit(folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the public checks: the hidden expected outputs (6 points) stay with the grader, the questions are pending
    assert "TOTAL checked here: 84 / 84" in flat(proc.stdout) and "PENDING: 10 more points" in flat(proc.stdout)
    with zipfile.ZipFile(folder / "HW2_submission.zip") as zf:
        names = zf.namelist()
    assert names[0] == "HW2.ipynb" and len(names) == 21
    assert "results/exp1_1_K32_L2.json" in names and "results/exp1_2_L8_K256.json" in names
    assert (folder / "HW2.pdf").stat().st_size > 10_000


@pytest.mark.slow
def test_hw2_missing_result_file_is_named_with_how_to_make_it(tmp_path):
    folder = hw2_samples.build_student_folder(tmp_path / "hw2", hw2_samples.MUTANTS["run_missing"])
    proc = run_submit(folder, "--no-checks")
    assert proc.returncode == 1
    assert "✗ results/exp1_1_K64_L16.json is missing. Run the experiment 1.1 cell" in flat(proc.stdout)


def test_progress_bars_appear_in_their_final_state():
    bar = "".join(f"\rtrain_batch ({i}/25)" for i in range(26)) + "\rtrain_batch (Avg. Loss 0.1, Accuracy 96.0): 100%\n"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x")])
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="--- EPOCH 1/2 ---\r\n" + bar + "done\n")]
    text = shorten_outputs(nb).cells[0].outputs[0]["text"]
    assert text == "--- EPOCH 1/2 ---\ntrain_batch (Avg. Loss 0.1, Accuracy 96.0): 100%\ndone\n"


def test_pieces_of_one_stream_are_merged_before_long_outputs_are_cut():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x")])
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"line {i}\n") for i in range(200)]
    outputs = shorten_outputs(nb).cells[0].outputs
    assert len(outputs) == 1 and "[... 150 lines cut for the PDF ...]" in outputs[0]["text"]


def test_a_file_written_after_the_last_save_is_reported(tmp_path):
    """Jupyter records no run times unless asked to: a result file newer than the saved
    notebook still shows that the notebook was not saved after the cell that wrote it."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("a = 1")])
    path = tmp_path / "HW4.ipynb"
    nbformat.write(nb, path)
    table = tmp_path / "experiments.xlsx"
    table.write_bytes(b"x")
    os.utime(path, (time.time() - 600, time.time() - 600))
    findings = check_saved(path, nb, [path, table])
    assert findings and "experiments.xlsx was written after HW4.ipynb was last saved" in findings[0].message
    os.utime(path, None)
    assert check_saved(path, nb, [path, table]) == []


def test_files_written_by_the_helpers_are_readable_by_others(tmp_path):
    from hw_utils.io import save_yaml

    old = os.umask(0o022)
    try:
        save_yaml({"a": 1}, tmp_path / "c.yaml")
    finally:
        os.umask(old)
    assert (tmp_path / "c.yaml").stat().st_mode & 0o777 == 0o644
