"""HW1 (CNN basics on MNIST) on the same engine as HW2 and HW4: every automatic point
for the reference, none for the blank release, exactly its rubric items failed per
mutant, nothing gained by attacks, the provided training code correct, the source
notebook running top to bottom offline, and the Gradescope bundle grading HW1.
Expected points are derived from the rubric, never restated here."""
import json
import os
import re
import shutil
import subprocess
import sys
from types import SimpleNamespace

import nbformat
import pytest
import torch

from autograder.sandbox import KIT_ROOT
from checklib.assignment import load_assignment
from demo import hw1_samples as samples
from demo.mnist_like import mnist_like_arrays, write_mnist_pkl

SOURCE = KIT_ROOT / "source" / "hw1" / "HW1.ipynb"


@pytest.fixture(scope="module")
def hw1():
    return load_assignment("hw1")


def automatic_points(assignment) -> float:
    return sum(i.points for i in assignment.items if not i.manual)


def by_id(report):
    return {r.id: r for r in report.results}


def grade(*args):
    from autograder.pipeline import grade as run
    return run(*args)


@pytest.fixture(scope="module")
def reference(hw1, sandbox, tmp_path_factory):
    return grade(samples.build(tmp_path_factory.mktemp("ref") / "sub"), hw1, sandbox)


# --- the provided code and the data (fast: no sandbox) ------------------------------------------

def _provided(tmp_path):
    """The notebook's setup and provided cells, run here, in a namespace of their own."""
    nb = nbformat.read(SOURCE, as_version=4)
    ns = {"__name__": "hw1_provided"}
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") in ("setup", "provided"):
            exec(compile(cell.source, f"<{cell.metadata['nbgrader']['grade_id']}>", "exec"), ns)
    ns["plt"].switch_backend("Agg")
    return ns


def test_the_offline_data_has_the_course_layout(tmp_path):
    (x_train, y_train), (x_test, y_test) = mnist_like_arrays()
    assert x_train.dtype.name == "uint8" and x_train.shape[1:] == (32, 32) and x_train.max() == 255
    assert (x_train[:, :2].max(), x_train[:, :, :2].max()) == (0, 0)  # MNIST's black 2-pixel border
    assert sorted(set(y_train.tolist())) == list(range(10)) and len(x_test) == len(y_test) > 300
    ns = _provided(tmp_path)
    X_train, y_train2, X_test, _ = ns["load_dataset"](str(write_mnist_pkl(tmp_path / "Datasets" / "mnist.pkl")))
    assert X_train.shape == (len(x_train), 1, 32, 32) and X_train.dtype == torch.float32
    assert y_train2.dtype == torch.long and torch.equal(X_test[0, 0], torch.tensor(x_test[0], dtype=torch.float))


def _tiny(ns, n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ns["MnistDataset"](torch.rand(n, 1, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g))


def test_the_trainer_restores_a_copy_of_the_best_epochs_weights(tmp_path, monkeypatch):
    """The course's Trainer kept state_dict() by reference, so it 'restored' the last
    epoch's weights. Scripted validation losses make epoch 2 the best one."""
    ns = _provided(tmp_path)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32 * 32, 10))
    trainer = ns["Trainer"](model, "sgdm", 0.1, 8, 4, 0.0)
    seen, val_losses = [], iter([3.0, 1.0, 2.0, 1.5])
    real_evaluate = trainer.evaluate

    def scripted(data, print_acc=False):
        loss, acc = real_evaluate(data)
        if data is val:
            seen.append({k: v.clone() for k, v in model.state_dict().items()})
            return next(val_losses), acc
        return loss, acc
    train, val = _tiny(ns), _tiny(ns, 16, seed=1)
    monkeypatch.setattr(trainer, "evaluate", scripted)
    history = trainer.train(train, val, verbose=False, draw_curve=False)
    assert set(history) == {"train_loss_list", "train_acc_list", "val_loss_list", "val_acc_list"}
    assert history["val_loss_list"] == [3.0, 1.0, 2.0, 1.5] and len(history["train_acc_list"]) == 4
    assert not torch.equal(seen[1]["1.weight"], seen[3]["1.weight"])
    assert all(torch.equal(v, seen[1][k]) for k, v in model.state_dict().items())


def test_evaluate_weights_every_sample_once_in_eval_mode(tmp_path):
    ns = _provided(tmp_path)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5), torch.nn.Linear(32 * 32, 10))
    trainer = ns["Trainer"](model, "adam", 1e-3, 7, 1, 0.0)  # 7 does not divide 40: uneven batches
    data = _tiny(ns)
    loss, acc = trainer.evaluate(data)
    with torch.no_grad():
        model.eval()
        scores = model(data.X)
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(scores, data.y).item(), rel=1e-5)
    assert acc == pytest.approx((scores.argmax(1) == data.y).float().mean().item())
    assert trainer.evaluate(data) == (loss, acc)  # eval mode, no shuffling: the same every time


def test_kfold_writes_the_folds_and_their_mean_and_std(tmp_path, hw1, capsys):
    """The file KFoldCrossValidation writes passes the grader's own results-file check."""
    ns = _provided(tmp_path)
    data = _tiny(ns, 30)
    path = tmp_path / "results" / "tiny.json"
    ns["KFoldCrossValidation"](lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32 * 32, 10)), 3,
                               data.X, data.y, data.X[:10], data.y[:10], epoch=1, results_file=str(path))
    assert "Final results:" in capsys.readouterr().out
    written = json.loads(path.read_text())
    written["model"] = "ShallowCNN"  # the lambda's name; the check wants the class's
    checks = {c.id: c for c in hw1.checks}
    verdict = checks["shallow.kfold"].judge({"value": written})
    assert verdict.passed, verdict.message
    assert len(written["folds"]) == 3 and written["parameters"] == 32 * 32 * 10 + 10


def test_expected_volumes_follow_the_formulas(hw1):
    from checklib.runner import load_module_from

    checks = load_module_from(KIT_ROOT / "assignments" / "hw1" / "checks.py", "hw1_checks_for_test")
    a = checks.expected_volumes((32, 32, 1), checks.LAYERS_A)
    b = checks.expected_volumes((32, 32, 1), checks.LAYERS_B)
    # The worked answers of (a) and the course's own first steps of (b) (seed 002).
    assert a == {"conv1": (16, 16, 3), "conv2": (16, 16, 5), "conv3": (16, 16, 7), "pool": (8, 8, 7)}
    assert (b["conv1"], b["conv2"]) == ((16, 16, 3), (14, 14, 5))
    assert checks.expected_volumes((33, 29, 3), {"c": ("conv", 4, 2, 2, 0)}) == {"c": (16, 14, 4)}  # rounds down


def test_notebook_states_the_rubrics_points(hw1):
    """The intro table and the manual answer cells say what the rubric says."""
    nb = nbformat.read(SOURCE, as_version=4)
    sections = {}
    for item in hw1.items:
        sections[item.section] = sections.get(item.section, 0) + item.points
    rows = [line for line in nb.cells[0].source.splitlines() if line.startswith("| Q")]
    stated = [float(row.rstrip(" |").rsplit("|", 1)[1]) for row in rows]
    assert stated == [v for v in sections.values() if v]
    manual = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"] for c in nb.cells
              if c.metadata.get("nbgrader", {}).get("grade")}
    assert manual == {i.id: i.points for i in hw1.items if i.manual}
    graded = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.source.startswith("# AUTOGRADED")]
    assert graded == list(hw1.graded_cells)
    written = sum(i.points for i in hw1.items if i.manual)
    assert f"The written answers ({written:g} points" in nb.cells[0].source


def test_the_engine_has_no_hw1_specific_code():
    proc = subprocess.run(["git", "grep", "-n", "-i", "-E", r"hw1|ShallowCNN|DeepCNN|SkipCNN", "--",
                           "autograder/", "checklib/"], cwd=KIT_ROOT, capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stdout == "", proc.stdout


def test_public_files_hold_no_hidden_settings():
    """The hidden networks live in hidden_checks.py only (checks.py and probes.py ship to students)."""
    from checklib.runner import load_module_from

    hidden = load_module_from(KIT_ROOT / "assignments" / "hw1" / "hidden_checks.py", "hw1_hidden_for_test",
                              public=load_module_from(KIT_ROOT / "assignments" / "hw1" / "checks.py", "hw1_c"))
    public = "".join((KIT_ROOT / "assignments" / "hw1" / f).read_text() for f in ("checks.py", "probes.py"))
    assert "OTHER_NETWORK" not in public and "volumes_hidden" not in public
    for shape, _ in hidden.NETWORKS:
        if tuple(shape) != (32, 32, 1):
            assert str(tuple(shape)) not in public and str(list(shape)) not in public


def _judge_in_process(assignment, folder):
    """The checks of `assignment` on a submission folder, with the job run in this
    process (no sandbox: for our own samples only): {item id: Verdict}."""
    from checklib import job
    from checklib.cells import extract_cells, read_notebook
    from checklib.runner import run_job

    cells, _ = extract_cells(read_notebook(folder / assignment.notebook), list(assignment.graded_cells))
    files = {f["name"]: folder / f["name"] for f in assignment.required_files if (folder / f["name"]).is_file()}
    to_run, probes = job.plan(assignment, cells, files)
    run = SimpleNamespace(cells={}, probes={})

    def emit(record):
        if record["event"] == "cell":
            run.cells[record["id"]] = {"ok": record["ok"], "error": record.get("error", "")}
        elif record["event"] in ("result", "error"):
            run.probes[record["key"]] = {"ok": record["event"] == "result", **{k: v for k, v in record.items()
                                                                               if k in ("data", "error")}}
    cwd = os.getcwd()
    os.chdir(folder)  # the probes read results/ from the submission's folder, as in the sandbox
    try:
        run_job({"cells": to_run, "probes": probes, "probes_path": str(assignment.probes_path)}, emit)
    finally:
        os.chdir(cwd)
    return job.judge_checks(assignment, cells, files, run)


@pytest.mark.parametrize("name", [None, pytest.param("skip_missing", marks=pytest.mark.slow)])
def test_checks_judge_samples_in_process(hw1, tmp_path, name):
    """Without the sandbox (fast): the reference passes every check, a mutant fails its own."""
    folder = samples.build(tmp_path / "s", samples.MUTANTS.get(name))
    verdicts = _judge_in_process(hw1, folder)
    wrong = {i for i, v in verdicts.items() if not v.passed}
    wrong |= {i.id for i in hw1.items if i.thresholds and i.id in verdicts and verdicts[i.id].value is not None
              and verdicts[i.id].value < max(t[0] for t in i.thresholds)}
    assert wrong == (set(samples.MUTANTS[name].fails) if name else set()), {i: verdicts[i].message[:200] for i in wrong}


# --- grading in the sandbox ---------------------------------------------------------------------

@pytest.mark.slow
def test_reference_gets_every_automatic_point(hw1, reference):
    results = by_id(reference)
    assert {i for i, r in results.items() if r.status != "passed"} == {i.id for i in hw1.items if i.manual}
    assert {r.status for r in reference.results if r.id in {i.id for i in hw1.items if i.manual}} == {"pending"}
    assert reference.score == automatic_points(hw1) and reference.max_score == 100
    assert not reference.incidents


@pytest.mark.slow
def test_blank_release_earns_no_point(hw1, sandbox, tmp_path):
    report = grade(samples.build_blank(tmp_path / "blank"), hw1, sandbox)
    assert report.score == 0 and not report.incidents
    results = by_id(report)
    for item in ("q1.volumes", "shallow.layers", "deep.output", "ablation.skip"):
        assert "NotImplementedError" in results[item].output, item
    assert "gives None" in results["q1.a"].output
    assert "Missing from your submission: results/shallow_cnn.json" in results["shallow.accuracy"].output
    assert results["rules.imports"].status == "passed" and results["rules.graded_cells"].status == "passed"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(samples.MUTANTS))
def test_each_mutant_fails_exactly_its_items(hw1, sandbox, reference, tmp_path, name):
    mutant = samples.MUTANTS[name]
    report = grade(samples.build(tmp_path / name, mutant), hw1, sandbox)
    results, ref = by_id(report), by_id(reference)
    failed = {r.id for r in report.results if r.status == "failed"}
    assert failed == set(mutant.fails), {i: results[i].output[:300] for i in failed}
    for item, result in results.items():
        if item in mutant.fails:
            assert result.score < ref[item].score or ref[item].max_score == 0, item
            assert len(result.output) > 30  # every failure explains itself to the student
        else:
            assert result.score == ref[item].score, item


def _edit(nb, grade_id, old, new, count=-1):
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    assert old in cell.source, (grade_id, old)
    cell.source = cell.source.replace(old, new, count)


@pytest.mark.slow
def test_patched_comparisons_and_always_equal_answers_gain_nothing(hw1, sandbox, tmp_path):
    class_code = ("class _Eq(tuple):\n    def __eq__(self, other): return True\n    def __ne__(self, other): return False\n"
                  "torch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n")

    def edit(nb):
        _edit(nb, "q1_answers", "# AUTOGRADED\n", "# AUTOGRADED\n" + class_code, 1)
        _edit(nb, "q1_answers", "### END SOLUTION", "q1a = {k: _Eq((0, 0, 0)) for k in q1a}\n### END SOLUTION")
    sub = samples.build(tmp_path / "s", samples.MUTANTS["shallow_skips_relu"], notebook_edit=edit)
    report = grade(sub, hw1, sandbox)
    results = by_id(report)
    assert results["q1.a"].score == 0 and results["shallow.forward"].status == "failed"
    # Replacing torch's functions reaches into the grading process: flagged for a TA, no automatic points.
    assert any(f.startswith("tampering:") and "torch.allclose" in f for f in report.flags), report.flags


@pytest.mark.slow
def test_forged_outputs_gain_nothing(hw1, sandbox, tmp_path):
    """Outputs that do not come from the layers: a constant, or a tensor whose
    comparisons always say yes."""
    def edit(nb):
        _edit(nb, "shallow_cnn", "        for layer in self.layers:\n",
              "        return torch.zeros(len(x), 10) + 0 * x.sum()\n        for layer in self.layers:\n")
        _edit(nb, "ablation", "x = F.relu(x + block(x))", "x = F.relu(block(x))")
        _edit(nb, "ablation", "class PlainCNN(nn.Module):",
              "class _Liar(torch.Tensor):\n    def __eq__(self, other): return True\n    def __ne__(self, other): return False\n\n\n"
              "class PlainCNN(nn.Module):")
        _edit(nb, "ablation", "            x = F.relu(block(x))\n        return self.head(x)",
              "            x = F.relu(block(x))\n        return self.head(x).as_subclass(_Liar)")
    results = by_id(grade(samples.build(tmp_path / "s", notebook_edit=edit), hw1, sandbox))
    assert results["shallow.forward"].status == "failed" and results["ablation.skip"].status == "failed"
    assert results["shallow.layers"].status == "passed"


@pytest.mark.slow
def test_hardcoded_public_answers_fail_the_hidden_variants(hw1, sandbox, tmp_path):
    def edit(nb):
        _edit(nb, "q1_volumes", "    ### BEGIN SOLUTION\n    height, width, channels = input_shape",
              "    return q1a if layers == LAYERS_A else q1b\n    ### BEGIN SOLUTION\n    height, width, channels = input_shape")
    results = by_id(grade(samples.build(tmp_path / "s", notebook_edit=edit), hw1, sandbox))
    assert results["q1.volumes"].status == "passed" and results["q1.volumes_hidden"].status == "failed"


@pytest.mark.slow
@pytest.mark.parametrize("crash", ["raise RuntimeError('broken forward')", "os._exit(0)"])
def test_a_crashing_forward_fails_only_what_needed_it(hw1, sandbox, tmp_path, crash):
    edit = lambda nb: _edit(nb, "ablation", "        x = self.stem(x)\n", f"        {crash}\n        x = self.stem(x)\n")
    report = grade(samples.build(tmp_path / "s", notebook_edit=edit), hw1, sandbox)
    failed = {r.id for r in report.results if r.status == "failed"}
    assert failed and all(item.startswith("ablation.") for item in failed), failed
    if crash.startswith("raise"):  # the child lives on: the structure is measured without forward
        assert "ablation.plain" not in failed and "broken forward" in by_id(report)["ablation.shapes"].output


@pytest.mark.slow
@pytest.mark.parametrize("code", ["sys.exit(0)", "raise SystemExit(1)"])
def test_exiting_in_a_cell_fails_only_that_cells_items(hw1, sandbox, tmp_path, code):
    edit = lambda nb: _edit(nb, "q1_answers", "# AUTOGRADED\n", f"# AUTOGRADED\n{code}\n", 1)
    report = grade(samples.build(tmp_path / "s", notebook_edit=edit), hw1, sandbox)
    assert {r.id for r in report.results if r.status == "failed"} == {"q1.a", "q1.b"}
    assert "`q1a` is not defined" in by_id(report)["q1.a"].output


@pytest.mark.slow
def test_cli_grades_a_submission_zip_with_its_results_folder(hw1, tmp_path):
    mutant = samples.MUTANTS["shallow_softmax"]
    archive = samples.zip_folder(samples.build(tmp_path / "sub", mutant), tmp_path / "HW1_submission.zip")
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", str(archive), "--assignment", "hw1",
                           "--results", str(out)], cwd=KIT_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lost = sum(i.points + i.deduction for i in hw1.items if i.id in mutant.fails)
    assert f"TOTAL {automatic_points(hw1) - lost:g} / 100" in proc.stdout, proc.stdout[-1500:]
    assert json.loads(out.read_text())["score"] == automatic_points(hw1) - lost


@pytest.mark.slow
def test_gradescope_bundle_grades_hw1_with_its_hidden_checks(gradescope, hw1):
    names = gradescope.install("hw1")
    assert {"assignments/hw1/hidden_checks.py", "assignments/hw1/probes.py", "source/hw1/HW1.ipynb"} <= names
    mutant = samples.MUTANTS["volumes_true_division"]
    samples.build(gradescope.submission, mutant)
    proc, data = gradescope.run()
    assert proc.returncode == 0, proc.stderr[-2000:]
    lost = sum(i.points + i.deduction for i in hw1.items if i.id in mutant.fails)
    assert data["score"] == automatic_points(hw1) - lost
    hidden = next(t for t in data["tests"] if "hidden" in t["name"])
    assert hidden["visibility"] == "after_published" and hidden["score"] == 0


@pytest.mark.slow
def test_the_release_leaks_no_solution_and_keeps_the_graded_cells(hw1):
    release = nbformat.read(samples.RELEASE, as_version=4)
    text = json.dumps(release)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "Grading notes", "(16, 16, 7)", "// stride + 1"):
        assert marker not in text, marker
    graded = [c.metadata["nbgrader"]["grade_id"] for c in release.cells if c.source.startswith("# AUTOGRADED")]
    assert graded == list(hw1.graded_cells)


QUICK = '''
_full_load_dataset, _full_kfold = load_dataset, KFoldCrossValidation
def load_dataset(path):  # the test's data are small: 300 training and 100 test images
    X_train, y_train, X_test, y_test = _full_load_dataset(path)
    return X_train[:300], y_train[:300], X_test[:100], y_test[:100]
def KFoldCrossValidation(*args, **kwargs):  # one epoch per fold
    return _full_kfold(*args, **{**kwargs, "epoch": 1})
'''


@pytest.mark.slow
def test_source_notebook_runs_top_to_bottom_offline_and_its_results_files_grade(hw1, sandbox, tmp_path):
    """Every cell of the instructor's notebook runs on MNIST-format data made offline
    (small, one epoch per fold); the results files it writes are graded like a
    student's: all automatic points but the accuracy thresholds, which need real MNIST."""
    from nbclient import NotebookClient

    work = tmp_path / "hw1"
    shutil.copytree(KIT_ROOT / "hw_utils", work / "hw_utils", ignore=shutil.ignore_patterns("__pycache__"))
    write_mnist_pkl(work / "Datasets" / "mnist.pkl")
    nb = nbformat.read(SOURCE, as_version=4)
    provided = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "provided")
    nb.cells.insert(provided + 1, nbformat.v4.new_code_cell(QUICK))
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    nb.cells.pop(provided + 1)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert text.count("agrees") == 8 and "DIFFERS" not in text
    assert "results written to results/shallow_cnn.json" in text and "results written to results/deep_cnn.json" in text
    assert re.search(r"SkipCNN: test accuracy \d\.\d{4}", text)
    nbformat.write(nb, work / "HW1.ipynb")
    shutil.rmtree(work / "Datasets")
    report = grade(work, hw1, sandbox)
    thresholds = {i.id for i in hw1.items if i.thresholds and not i.id.startswith("q1.")}
    wrong = [(r.id, r.output[:200]) for r in report.results
             if r.status == "failed" and r.id not in thresholds]
    assert not wrong
    assert report.score >= automatic_points(hw1) - sum(i.points for i in hw1.items if i.id in thresholds)


VARIANTS = {
    "shallow_cnn": '''# AUTOGRADED
class ShallowCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 5, padding=2)
        self.fc1 = nn.Linear(3 * 32 * 32, 120)
        self.fc2 = nn.Linear(120, 10)

    def forward(self, x):
        x = F.relu(self.conv(x))
        return self.fc2(F.relu(self.fc1(x.view(x.size(0), -1))))
''',
    "ablation": '''# AUTOGRADED
class Block(nn.Module):
    def __init__(self, batchnorm, skip):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(16, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16) if batchnorm else nn.Identity()
        self.bn2 = nn.BatchNorm2d(16) if batchnorm else nn.Identity()
        self.skip = skip

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + x if self.skip else out)


class _Net(nn.Module):
    batchnorm, skip = False, False

    def __init__(self, depth=3):
        super().__init__()
        self.conv = nn.Conv2d(1, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16) if self.batchnorm else nn.Identity()
        self.blocks = nn.Sequential(*[Block(self.batchnorm, self.skip) for _ in range(depth)])
        self.fc = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x):
        x = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(F.max_pool2d(x, 4).flatten(1))


class PlainCNN(_Net):
    pass


class BatchNormCNN(_Net):
    batchnorm = True


class SkipCNN(_Net):
    batchnorm, skip = True, True
''',
}


@pytest.mark.slow
def test_other_ways_of_writing_the_networks_keep_full_marks(hw1, sandbox, tmp_path):
    """Named layers with F.relu and view; one block class shared by the three networks,
    pooling in forward: nothing graded depends on how the modules are arranged."""
    def edit(nb):
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if gid in VARIANTS:
                cell.source = VARIANTS[gid]
    report = grade(samples.build(tmp_path / "s", notebook_edit=edit), hw1, sandbox)
    assert report.score == automatic_points(hw1), [(r.id, r.output[:300]) for r in report.results if r.status == "failed"]
