"""The students' self-check client (hw_utils/selfcheck.py): no grader engine, no
Linux-only call, the grader's own check definitions, messages in full."""
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from checklib.assignment import Limits, load_assignment
from checklib.checks import Verdict
from checklib.scoring import ItemResult
from demo import hw4_samples as samples
from hw_utils import selfcheck
from hw_utils.selfcheck import SelfCheck, cell_titles, find_files, find_notebook, name_cells, report_text

REPO = Path(__file__).resolve().parents[1]
needs_chromium = pytest.mark.skipif(not shutil.which("chromium") or not shutil.which("pdftotext"),
                                    reason="needs Debian's chromium and poppler-utils (.ci/run installs them)")


def flat(text: str) -> str:
    """Messages are wrapped for the terminal: compare them with whitespace collapsed."""
    return " ".join(text.split())


# --- a machine without Linux's calls (macOS, Windows) ---------------------------------------------

# Loaded by every Python started with this folder on PYTHONPATH (the submit process and the
# self-check's subprocess alike): the calls the grader's sandbox needs fail as they would
# off Linux: `import resource` fails (Windows), os.unshare raises, and libc has no prctl,
# unshare or mount through ctypes (macOS).
OFF_LINUX = textwrap.dedent('''
    import ctypes, os, sys

    class _NoResource:
        def find_spec(self, name, path=None, target=None):
            if name == "resource":
                raise ImportError("No module named 'resource' (standing in for Windows)")
            return None

    sys.meta_path.insert(0, _NoResource())

    def _unshare(*args, **kwargs):
        raise OSError("unshare is not available here (standing in for macOS)")

    os.unshare = _unshare

    class _CDLL(ctypes.CDLL):
        def __getattr__(self, name):
            if name in ("prctl", "unshare", "mount", "setns"):
                raise AttributeError(f"{name}: symbol not found (standing in for macOS)")
            return super().__getattr__(name)

    ctypes.CDLL = _CDLL
''')

SUBMIT_AND_REPORT_MODULES = textwrap.dedent('''
    import sys
    from hw_utils.submit import main
    code = main([])
    engine = sorted(m for m in sys.modules if m == "autograder" or m.startswith("autograder."))
    print("ENGINE MODULES:", engine)
    sys.exit(code)
''')


@pytest.fixture()
def off_linux(tmp_path):
    folder = tmp_path / "off_linux"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(OFF_LINUX)
    return {**os.environ, "PYTHONPATH": str(folder), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


PROBE_STAND_IN = textwrap.dedent('''
    import ctypes, os
    failed = []
    try:
        import resource
    except ImportError:
        failed.append("resource")
    try:
        os.unshare(0)
    except OSError:
        failed.append("unshare")
    try:
        ctypes.CDLL(None).prctl
    except AttributeError:
        failed.append("prctl")
    print(",".join(failed))
''')


def test_the_stand_in_makes_the_linux_calls_fail(off_linux, tmp_path):
    """Proof that the stand-in bites, in any Python started with it (as the self-check's subprocess is)."""
    proc = subprocess.run([sys.executable, "-c", PROBE_STAND_IN], cwd=tmp_path, env=off_linux,
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "resource,unshare,prctl", proc.stderr


@pytest.mark.slow
@needs_chromium
def test_make_submission_works_without_linux_calls_and_without_the_engine(tmp_path, off_linux, hw4):
    folder = samples.build_student_folder(tmp_path / "hw4")
    assert not (folder / "autograder").exists()  # the release carries no engine
    proc = subprocess.run([sys.executable, "-c", SUBMIT_AND_REPORT_MODULES], cwd=folder, env=off_linux,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = flat(proc.stdout)
    assert "ENGINE MODULES: []" in out
    reference_check = next(i.name for i in hw4.items if i.id == "block.matches_reference")
    assert f"passed {reference_check}" in out  # the public checks ran
    assert "TOTAL checked here: 97 / 87 (with 10 bonus)" in out
    assert "PENDING: 10 more points graded by hand" in out
    with zipfile.ZipFile(folder / "HW4_submission.zip") as zf:
        assert zf.namelist() == ["HW4.ipynb", "model_config.yaml", "train_config.yaml", "experiments.xlsx"]
    assert (folder / "HW4.pdf").stat().st_size > 10_000


# --- what students read ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hw4():
    return load_assignment("hw4")


def test_cells_are_named_by_the_part_students_see(hw4):
    titles = cell_titles(hw4)
    assert titles["resnet"] == next(i.section for i in hw4.items if i.id.startswith("block."))
    message = name_cells("Your cell 'resnet' raised an error when it ran:\n  File \"<resnet cell>\", line 3", titles)
    assert "'resnet'" not in message and f"cell of part {titles['resnet']}" in message


def test_messages_are_shown_in_full_and_hand_graded_points_as_pending():
    cause = "every output row is non-negative and sums to 1: that is a softmax. Return the linear layer's output."
    long_message = "Model output is logits: with base_channels=8, expands=[1, 2, 2], activation='relu', " + cause
    report = SelfCheck("hw4", [
        ItemResult("model.logits", "Model: returns logits", "1.1 Model", 0, 2, "failed", long_message, "visible"),
        ItemResult("block.kernels", "Block: kernels", "1.1 Model", 3, 3, "passed", "fine", "visible"),
        ItemResult("conclusion", "Conclusion", "1.5 Conclusion", 0, 10, "pending", "Graded by hand.", "visible"),
    ], [], 1.0)
    text = report_text(report, width=80)
    assert all(len(line) <= 80 for line in text.splitlines())
    assert cause in flat(text)                    # wrapped, not cut
    assert "TOTAL checked here: 3 / 5" in text    # the conclusion is not counted as if it were earned or lost
    assert "PENDING: 10 more points graded by hand after the deadline (Conclusion)" in flat(text)


def test_a_downloaded_copy_of_the_notebook_is_accepted_with_a_warning(tmp_path):
    (tmp_path / "HW4 (1).ipynb").write_text("{}")
    path, findings = find_notebook(tmp_path, "HW4.ipynb")
    assert path == tmp_path / "HW4 (1).ipynb"
    assert findings[0].level == "warning" and "rename it to HW4.ipynb" in findings[0].message


def test_no_notebook_says_what_the_folder_holds(tmp_path):
    (tmp_path / "notes.ipynb").write_text("{}")
    (tmp_path / "scratch.ipynb").write_text("{}")
    path, findings = find_notebook(tmp_path, "HW4.ipynb")
    assert path is None and findings[0].level == "error"
    assert "HW4.ipynb not found" in findings[0].message and "This folder has: notes.ipynb, scratch.ipynb" in findings[0].message


def test_near_miss_file_names_get_a_did_you_mean(tmp_path, hw4):
    (tmp_path / "model_config.yml").write_text("a: 1\n")
    (tmp_path / "train_config.yaml").write_text("a: 1\n")
    files, findings = find_files(tmp_path, hw4)
    assert "train_config.yaml" in files and "model_config.yaml" not in files
    message = next(f.message for f in findings if f.message.startswith("model_config.yaml"))
    assert "Did you mean model_config.yml? Rename it to model_config.yaml" in message


def test_rules_are_judged_as_the_grader_judges_them(hw4):
    from checklib.job import judge_rules

    verdicts = judge_rules(["The graded cell 'augmentation' was not found."],
                           {"resnet": "# AUTOGRADED\nimport numpy\n"}, hw4)
    assert verdicts["rules.imports"].passed is False and "numpy" in verdicts["rules.imports"].message
    assert verdicts["rules.graded_cells"] == Verdict(False, "The graded cell 'augmentation' was not found.")


@pytest.mark.slow
def test_a_probe_that_hangs_is_stopped_and_the_rest_still_run(tmp_path, monkeypatch):
    probes = tmp_path / "probes.py"
    probes.write_text("def hang(ns):\n    while True:\n        pass\n\ndef answer(ns):\n    return ns['x'] * 2\n")
    cells = [{"id": "setup", "source": "x = 21"}]
    jobs = [{"key": "hang", "probe": "hang", "args": {}}, {"key": "answer", "probe": "answer", "args": {}}]
    run = selfcheck.run_in_subprocess(cells, jobs, probes, {}, Limits(cells_timeout=60, probe_timeout=1), REPO)
    assert run.cells["setup"]["ok"]
    assert run.probes["hang"]["ok"] is False and "took more than 2 s here (the autograder allows 1 s)" in run.probes["hang"]["error"]
    assert run.probes["answer"] == {"ok": True, "data": 42}


@pytest.mark.slow
@pytest.mark.parametrize("case", ["blank", "softmax_output"])
def test_the_cause_of_a_failure_reaches_the_student(tmp_path, case, hw4):
    if case == "blank":
        folder = samples.copy_release_folder(samples.RELEASE, tmp_path / "hw4")
        shutil.copyfile(samples.RELEASE, folder / "HW4.ipynb")
    else:
        folder = samples.build_student_folder(tmp_path / "hw4", samples.MUTANTS[case])
    proc = subprocess.run([sys.executable, "-m", "hw_utils.submit", "--no-zip"], cwd=folder, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONPATH": ""})
    out = flat(proc.stdout)
    if case == "blank":
        assert "NotImplementedError" in out and f"cell of part {cell_titles(hw4)['resnet']}" in out
        assert "experiments.xlsx is missing" in out and proc.returncode == 1
    else:
        assert "is non-negative and sums to 1: that is a softmax" in out
