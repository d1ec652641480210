"""The HW4 autograder: full marks for the reference, zero for the blank release,
exactly one rule's points lost per mutant, nothing gained by attacks."""
import dataclasses
import json
import os
import subprocess
import sys

import jsonschema
import nbformat
import pytest

from checklib.assignment import load_assignment
from autograder.pipeline import grade
from autograder.reporters import gradescope_results
from autograder.sandbox import KIT_ROOT, Limits, Sandbox, scratch_dir
from demo import hw4_samples as samples

SCHEMA = json.loads((KIT_ROOT / "autograder" / "gradescope_schema.json").read_text())


@pytest.fixture(scope="module")
def hw4():
    return load_assignment("hw4")


@pytest.fixture(scope="module")
def reference(hw4, sandbox, tmp_path_factory):
    return grade(samples.build(tmp_path_factory.mktemp("ref") / "sub"), hw4, sandbox)


def by_id(report):
    return {r.id: r for r in report.results}


@pytest.mark.slow
def test_reference_gets_every_automatic_point(reference):
    results = by_id(reference)
    assert {i for i, r in results.items() if r.status != "passed"} == {"conclusion"}
    assert results["training.best_accuracy"].score == 25          # 91% -> 15 + 10 bonus
    assert reference.score == 100 and reference.max_score == 100  # 90 automatic + 10 bonus; conclusion pending
    assert not reference.incidents


@pytest.mark.slow
def test_blank_release_scores_zero_without_crashing(hw4, sandbox, tmp_path):
    report = grade(samples.build_blank(tmp_path / "blank"), hw4, sandbox)
    assert report.score == 0
    results = by_id(report)
    assert "NotImplementedError" in results["block.output_shapes"].output
    assert "Missing from your submission: experiments.xlsx" in results["table.index"].output
    assert results["rules.imports"].status == "passed"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(samples.MUTANTS))
def test_each_mutant_loses_exactly_its_rules_points(hw4, sandbox, reference, tmp_path, name):
    mutant = samples.MUTANTS[name]
    report = grade(samples.build(tmp_path / name, mutant), hw4, sandbox)
    failed = {r.id for r in report.results if r.status == "failed"}
    assert failed == set(mutant.fails), by_id(report)
    lost = sum(by_id(reference)[i].score for i in mutant.fails) + sum(  # a broken rule costs its deduction
        i.deduction for i in hw4.items if i.id in mutant.fails)
    assert report.score == pytest.approx(reference.score - lost)
    for item in mutant.fails:  # every failure explains itself to the student
        assert len(by_id(report)[item].output) > 30


def _edit_cell(nb, old, new, grade_id="resnet", count=-1):
    """Replace `old` by `new` in the graded cell `grade_id` of notebook `nb`."""
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    assert old in cell.source
    cell.source = cell.source.replace(old, new, count)


def _prepend(code):
    """A notebook edit that puts `code` right after the resnet cell's '# AUTOGRADED' line."""
    return lambda nb: _edit_cell(nb, "# AUTOGRADED\n", "# AUTOGRADED\n" + code + "\n", count=1)


def _blank_with(folder, code):
    """The blank release with `code` at the top of its resnet cell."""
    sub = samples.build_blank(folder)
    nb = nbformat.read(sub / "HW4.ipynb", as_version=4)
    _prepend(code)(nb)
    nbformat.write(nb, sub / "HW4.ipynb")
    return sub


@pytest.mark.slow
def test_the_kernel_check_reports_the_1x1_shortcut_even_when_forward_crashes(hw4, sandbox, tmp_path):
    """Issue 12, class 5: the message names the layer, not a crash of another cause."""
    report = grade(samples.build(tmp_path / "s", samples.MUTANTS["one_by_one_shortcut_padded"]), hw4, sandbox)
    message = by_id(report)["block.kernels"].output
    assert "`shortcut_conv` has kernel size (1, 1)" in message and "Error" not in message


LIAR = """
    def named_modules(self, *args, **kwargs):
        return iter([("", self)])

    def modules(self):
        return iter([self])

    def named_parameters(self, *args, **kwargs):
        return iter([(n, torch.nn.Parameter(torch.zeros_like(p))) for n, p in super().named_parameters()])

    def parameters(self, *args, **kwargs):
        return iter([p for _, p in self.named_parameters()])

    def state_dict(self, *args, **kwargs):
        return {k: torch.zeros_like(v) for k, v in super().state_dict().items()}

"""


@pytest.mark.slow
def test_a_block_that_lies_about_its_modules_and_weights_gains_nothing(hw4, sandbox, tmp_path):
    """Issue 11, "lie without touching the grader": overriding named_modules, modules,
    named_parameters and state_dict to report zero weights changes no verdict."""
    mutant = samples.MUTANTS["no_shortcut_activation"]
    honest = grade(samples.build(tmp_path / "honest", mutant), hw4, sandbox)
    edit = lambda nb: _edit_cell(nb, "class Block(nn.Module):\n", "class Block(nn.Module):\n" + LIAR, count=1)
    lying = grade(samples.build(tmp_path / "lying", mutant, edit), hw4, sandbox)
    assert lying.score <= honest.score < 100
    assert by_id(lying)["block.matches_reference"].status == "failed"
    assert {r.id: r.status for r in lying.results} == {r.id: r.status for r in honest.results}


@pytest.mark.slow
def test_patched_allclose_gains_nothing(hw4, sandbox, tmp_path):
    sub = samples.build(tmp_path / "s", samples.MUTANTS["no_shortcut_activation"],
                        _prepend("torch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True"))
    assert by_id(grade(sub, hw4, sandbox))["block.matches_reference"].status == "failed"


@pytest.mark.slow
def test_always_equal_object_gains_nothing(hw4, sandbox, tmp_path):
    code = ("class _Eq:\n    shape = (2, 10)\n    def __eq__(self, other): return True\n"
            "    def __getattr__(self, name): return lambda *a, **k: self\n")
    def edit(nb):
        _prepend(code)(nb)
        _edit_cell(nb, "return self.fc(x)  ", "return _Eq()  ")
    results = by_id(grade(samples.build(tmp_path / "s", notebook_edit=edit), hw4, sandbox))
    for item in ("model.layer0", "model.blocks", "model.output_sizes", "model.logits", "model.from_config"):
        assert results[item].status == "failed", item


@pytest.mark.slow
@pytest.mark.parametrize("code", ["sys.exit(0)", "os._exit(0)", "raise SystemExit(0)"])
def test_exiting_early_gains_nothing(hw4, sandbox, tmp_path, code):
    report = grade(_blank_with(tmp_path / "s", code), hw4, sandbox)
    assert report.score == 0


@pytest.mark.slow
def test_crash_inside_a_probe_fails_only_what_needed_it(hw4, sandbox, tmp_path):
    edit = lambda nb: _edit_cell(nb, "        out = self.conv1(x)\n", "        os._exit(0)\n        out = self.conv1(x)\n")
    report = grade(samples.build(tmp_path / "s", notebook_edit=edit), hw4, sandbox)
    results = by_id(report)
    assert results["block.output_shapes"].status == "failed"
    assert "ended unexpectedly" in results["block.output_shapes"].output
    for item in ("augmentation.random", "table.index", "training.best_accuracy"):
        assert results[item].status == "passed", item


@pytest.mark.slow
def test_endless_loop_is_cut_off(hw4, sandbox, tmp_path):
    fast = dataclasses.replace(hw4, limits=Limits(cells_timeout=20, probe_timeout=2, cpu_seconds=60))
    edit = lambda nb: _edit_cell(nb, "        super().__init__()\n", "        super().__init__()\n        while True: pass\n", count=1)
    report = grade(samples.build(tmp_path / "s", notebook_edit=edit), fast, sandbox)
    results = by_id(report)
    assert results["block.output_shapes"].status == "failed"
    assert "did not finish within 2 seconds" in results["block.output_shapes"].output
    assert results["augmentation.random"].status == "passed" and results["table.values"].status == "passed"
    assert report.execution_time < 60


@pytest.mark.slow
def test_forged_results_and_writes_outside_the_sandbox_gain_nothing(hw4, sandbox, tmp_path):
    target = KIT_ROOT / "assignments" / "hw4" / "forged.txt"
    code = (f"import json as _j\nopen('results.json', 'w').write(_j.dumps({{'score': 100, 'tests': []}}))\n"
            f"try:\n    open({str(target)!r}, 'w').write('x')\nexcept OSError:\n    pass\n")
    sub = _blank_with(tmp_path / "s", code)
    try:
        report = grade(sub, hw4, sandbox)
        assert report.score == 0
        assert not target.exists() or any("tampering" in i for i in report.incidents)
        assert not (KIT_ROOT / "results.json").exists()
    finally:
        target.unlink(missing_ok=True)


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="read-only mounts and PID namespaces need a grader running as root")
def test_as_root_the_child_can_write_only_its_work_folder_and_cannot_reach_the_grader(hw4, sandbox, tmp_path):
    code = (f"for _path in ({str(KIT_ROOT / 'hw_utils' / 'x.py')!r}, {str(tmp_path / 'x')!r}, 'mine.txt'):\n"
            f"    try:\n        open(_path, 'w').write('x'); print('WROTE', _path)\n"
            f"    except OSError as _err:\n        print('REFUSED', _path, _err.strerror)\n"
            f"try:\n    os.kill({os.getpid()}, 0); print('GRADER REACHABLE')\n"
            f"except OSError:\n    print('GRADER UNREACHABLE')\n")
    report = grade(_blank_with(tmp_path / "s", code), hw4, sandbox)
    assert report.isolation == []
    assert "REFUSED " + str(KIT_ROOT / "hw_utils" / "x.py") + " Read-only file system" in report.output
    assert "REFUSED " + str(tmp_path / "x") in report.output
    assert "WROTE mine.txt" in report.output and "GRADER UNREACHABLE" in report.output
    assert not (KIT_ROOT / "hw_utils" / "x.py").exists() and not (tmp_path / "x").exists()
    assert not report.incidents


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="hiding files needs a grader running as root")
def test_the_child_cannot_read_solutions_hidden_checks_or_other_submissions(hw4, tmp_path):
    other = tmp_path / "classmates" / "zoe"
    samples.build(other)
    secrets = [KIT_ROOT / "source" / "hw4" / "HW4.ipynb", KIT_ROOT / "assignments" / "hw4" / "hidden_checks.py",
               KIT_ROOT / ".git" / "HEAD", other / "HW4.ipynb", scratch_dir() / "kept-by-the-grader.txt"]
    secrets[-1].write_text("another job's files")
    code = (f"for _path in {[str(p) for p in secrets]!r}:\n"
            f"    try:\n        print('READ' if open(_path).read() else 'NOT READABLE', _path)\n"
            f"    except OSError as _err:\n        print('NOT READABLE', _path)\n")
    with Sandbox(hide=(tmp_path / "classmates",)) as sandbox:
        report = grade(_blank_with(tmp_path / "s", code), hw4, sandbox)
    secrets[-1].unlink()
    assert "READ " not in report.output, report.output
    assert report.output.count("NOT READABLE") == len(secrets)


@pytest.mark.slow
def test_cpu_limit_stops_a_busy_child(hw4, sandbox, tmp_path):
    tight = dataclasses.replace(hw4, limits=Limits(cpu_seconds=2, cells_timeout=30))
    report = grade(_blank_with(tmp_path / "s", "while True: pass"), tight, sandbox)
    assert report.score == 0
    assert any("CPU seconds" in i for i in report.incidents), report.incidents


@pytest.mark.slow
def test_results_json_matches_the_gradescope_schema(reference):
    data = gradescope_results(reference)
    jsonschema.validate(data, SCHEMA)
    pending = [r for r in reference.results if r.status == "pending"]  # graded by hand: not a Gradescope test
    assert data["score"] == 100 and len(data["tests"]) == len(reference.results) - len(pending)


@pytest.mark.slow
def test_cli_grades_a_zip_and_writes_results(tmp_path):
    folder = samples.build(tmp_path / "sub", samples.MUTANTS["softmax_output"])
    archive = samples.zip_folder(folder, tmp_path / "HW4_submission.zip")
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", str(archive), "--assignment", "hw4",
                           "--results", str(out)], cwd=KIT_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Model: returns logits (no softmax)" in proc.stdout and "TOTAL 98 / 100" in proc.stdout
    data = json.loads(out.read_text())
    jsonschema.validate(data, SCHEMA)
    assert data["score"] == 98


@pytest.mark.parametrize("args", [["grade", "nowhere.zip", "--assignment", "hw4"],
                                  ["grade", ".", "--assignment", "hw99"], ["grade"]])
@pytest.mark.slow
def test_cli_usage_errors_exit_2(args):
    proc = subprocess.run([sys.executable, "-m", "autograder", *args], cwd=KIT_ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip()


@pytest.mark.slow
def test_bare_notebook_is_graded_without_its_files(hw4, sandbox, tmp_path):
    folder = samples.build(tmp_path / "s")
    for name in ("experiments.xlsx", "model_config.yaml", "train_config.yaml"):
        (folder / name).unlink()
    results = by_id(grade(folder / "HW4.ipynb", hw4, sandbox))
    assert results["block.matches_reference"].status == "passed"
    assert "Missing from your submission" in results["table.columns"].output


@pytest.mark.slow
def test_pytest_entry_grades_a_submission(hw4, tmp_path):
    folder = samples.build(tmp_path / "sub", samples.MUTANTS["softmax_output"])
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "pytest", "autograder/", "--submission", str(folder),
                           "--assignment", "hw4", "--results", str(out), "-q", "-p", "no:cacheprovider"],
                          cwd=KIT_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1  # one rubric item failed
    automatic = sum(not i.manual for i in hw4.items)  # one skipped: the conclusion, graded by hand
    assert f"1 failed, {automatic - 1} passed, 1 skipped" in proc.stdout and "test_rubric_item[model.logits]" in proc.stdout
    data = json.loads(out.read_text())
    jsonschema.validate(data, SCHEMA)
    assert data["score"] == 98
