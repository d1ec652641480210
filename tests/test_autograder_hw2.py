"""The HW2 autograder, on the same engine as HW4: full marks for the reference, zero
for the blank release, exactly its rules' points lost per mutant, the stored
expected outputs reproducible, and nothing HW2-specific in the engine."""
import json
import os
import subprocess
import sys

import jsonschema
import nbformat
import pytest
import torch

from checklib.assignment import load_assignment
from autograder.pipeline import grade
from autograder.reporters import markdown_feedback
from autograder.sandbox import KIT_ROOT
from demo import hw2_samples as samples

SCHEMA = json.loads((KIT_ROOT / "autograder" / "gradescope_schema.json").read_text())
AUTOMATIC = 90  # 100 minus the two questions graded by hand


@pytest.fixture(scope="module")
def hw2():
    return load_assignment("hw2")


@pytest.fixture(scope="module")
def reference(hw2, sandbox, tmp_path_factory):
    return grade(samples.build(tmp_path_factory.mktemp("ref") / "sub"), hw2, sandbox)


def by_id(report):
    return {r.id: r for r in report.results}


@pytest.mark.slow
def test_reference_gets_every_automatic_point(reference):
    results = by_id(reference)
    assert {i for i, r in results.items() if r.status != "passed"} == {"question1", "question2"}
    assert reference.score == AUTOMATIC and reference.max_score == 100
    assert not reference.incidents


@pytest.mark.slow
def test_blank_release_scores_zero_without_crashing(hw2, sandbox, tmp_path):
    report = grade(samples.build_blank(tmp_path / "blank"), hw2, sandbox)
    assert report.score == 0 and not report.incidents
    results = by_id(report)
    assert "NotImplementedError" in results["conv.expected_output"].output
    assert "NotImplementedError" in results["trainer.train_batch"].output
    assert "Missing from your submission: results/exp1_1_K32_L2.json" in results["experiments.exp1_1"].output
    assert results["rules.imports"].status == "passed"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(samples.MUTANTS))
def test_each_mutant_loses_exactly_its_rules_points(hw2, sandbox, reference, tmp_path, name):
    mutant = samples.MUTANTS[name]
    report = grade(samples.build(tmp_path / name, mutant), hw2, sandbox)
    failed = {r.id for r in report.results if r.status == "failed"}
    assert failed == set(mutant.fails), {i: by_id(report)[i].output[:300] for i in failed}
    lost = sum(by_id(reference)[i].score for i in mutant.fails) + sum(  # a broken rule costs its deduction
        i.deduction for i in hw2.items if i.id in mutant.fails)
    assert report.score == pytest.approx(reference.score - lost)
    for item in mutant.fails:  # every failure explains itself to the student
        assert len(by_id(report)[item].output) > 30


@pytest.mark.slow
def test_messages_name_the_real_cause(hw2, sandbox, tmp_path):
    """Issue 12, class 5: a per-batch loss list is reported as such, not as a count of epochs."""
    report = grade(samples.build(tmp_path / "s", samples.MUTANTS["losses_per_batch"]), hw2, sandbox)
    message = by_id(report)["trainer.fit"].output
    assert "one number per epoch" in message and "epochs" not in message.split("expected")[0]


@pytest.mark.slow
def test_what_the_course_accepted_passes_with_a_note(hw2, sandbox, tmp_path):
    """Issue 12, class 7: SGD in run_experiment and a 0-d loss tensor computed under
    no_grad keep full marks, with a note in the feedback."""
    for name, item, note in (("sgd_optimizer", "experiments.run_experiment", "accepted your SGD"),
                             ("tensor_loss_without_grad", "trainer.test_batch", "accepted, as in the course")):
        result = by_id(grade(samples.build(tmp_path / name, samples.MUTANTS[name]), hw2, sandbox))[item]
        assert result.status == "passed" and note in result.output, result.output


def test_the_reference_reproduces_the_courses_printed_output():
    """The seed notebook printed these first values for the course's setting."""
    stored = torch.load(KIT_ROOT / "assignments" / "hw2" / "assets" / "expected_conv_out.pt", weights_only=True)
    course = torch.tensor([-0.0868, -0.3790, -0.4341, -0.1236, -0.2160, 0.1683, 0.4739])
    assert stored.shape == (1, 10)
    assert torch.allclose(stored[0, :7], course, atol=5e-5)


@pytest.mark.slow
def test_stored_assets_match_the_reference_solution():
    proc = subprocess.run([sys.executable, "assignments/hw2/make_assets.py", "--check"], cwd=KIT_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "match the reference solution" in proc.stdout


def test_the_asset_check_notices_a_changed_tensor(tmp_path, monkeypatch):
    sys.path.insert(0, str(KIT_ROOT / "assignments" / "hw2"))
    try:
        import make_assets
    finally:
        sys.path.pop(0)
    built = make_assets.build()
    assert make_assets.differences(built) == []
    built["assets/expected_conv_out.pt"] = built["assets/expected_conv_out.pt"] + 1e-3
    assert make_assets.differences(built) == ["assets/expected_conv_out.pt differs from the reference's output"]


@pytest.mark.slow
def test_hardcoding_the_public_tensor_gains_only_the_public_check(hw2, sandbox, tmp_path):
    """A forward() that returns the course's published output passes that one test
    and nothing that uses another setting."""
    stored = torch.load(KIT_ROOT / "assignments" / "hw2" / "assets" / "expected_conv_out.pt", weights_only=True)
    values = stored.flatten().tolist()

    def edit(nb):
        cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "conv_classifier")
        old = "        features = self.feature_extractor(x)\n"
        cell.source = cell.source.replace(old, f"        return torch.tensor([{values}]) + 0 * x.sum()\n" + old)
    results = by_id(grade(samples.build(tmp_path / "s", notebook_edit=edit), hw2, sandbox))
    assert results["conv.expected_output"].status == "passed"
    assert results["conv.expected_output_hidden"].status == "failed"
    assert results["conv.other_sizes"].status == "failed"


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="hiding files needs a grader running as root")
def test_the_child_cannot_read_the_hidden_expected_outputs(hw2, sandbox, tmp_path):
    hidden = KIT_ROOT / "assignments" / "hw2" / "assets" / "expected_conv_out_hidden.pt"
    code = (f"try:\n    _stolen = torch.load({str(hidden)!r}, weights_only=True); print('READ HIDDEN')\n"
            f"except Exception as _err:\n    print('NOT READABLE', type(_err).__name__)\n")

    def edit(nb):
        cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "conv_classifier")
        cell.source = cell.source.replace("# AUTOGRADED\n", "# AUTOGRADED\n" + code, 1)
    report = grade(samples.build(tmp_path / "s", notebook_edit=edit), hw2, sandbox)
    assert "NOT READABLE" in report.output and "READ HIDDEN" not in report.output


def test_the_release_holds_no_hidden_checks_or_hidden_outputs():
    release = KIT_ROOT / "release" / "hw2" / "assignments" / "hw2"
    assert (release / "assets" / "expected_conv_out.pt").is_file()  # the notebook's own self-test needs it
    assert not (release / "hidden_checks.py").exists()
    assert not (release / "assets" / "expected_conv_out_hidden.pt").exists()
    public = load_assignment("hw2", root=KIT_ROOT / "release" / "hw2")
    assert "conv.expected_output_hidden" not in {i.id for i in public.items}
    assert sum(i.points for i in public.items) == 94


def test_the_engine_has_no_hw2_specific_code():
    proc = subprocess.run(["git", "grep", "-n", "-i", "hw2", "--", "autograder/"], cwd=KIT_ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stdout == "", proc.stdout  # git grep: 1 means no match


@pytest.mark.slow
def test_cli_grades_a_zip_with_results_in_a_folder(tmp_path):
    folder = samples.build(tmp_path / "sub", samples.MUTANTS["softmax_output"])
    archive = samples.zip_folder(folder, tmp_path / "HW2_submission.zip")
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", str(archive), "--assignment", "hw2",
                           "--results", str(out)], cwd=KIT_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Returns logits (no softmax)" in proc.stdout and f"TOTAL {AUTOMATIC - 16} / 100" in proc.stdout
    data = json.loads(out.read_text())
    jsonschema.validate(data, SCHEMA)
    assert data["score"] == AUTOMATIC - 16


@pytest.mark.slow
def test_results_flattened_by_zip_files_are_found(hw2, sandbox, tmp_path):
    """A student who zipped with hw_utils.zip_files (which keeps base names) still gets graded."""
    from hw_utils import zip_files

    folder = samples.build(tmp_path / "sub")
    archive = tmp_path / "flat.zip"
    zip_files(archive, folder / "HW2.ipynb", *sorted((folder / "results").glob("*.json")))
    results = by_id(grade(archive, hw2, sandbox))
    assert results["experiments.exp1_1"].status == "passed" and results["experiments.exp1_2"].status == "passed"


@pytest.mark.slow
def test_pytest_entry_grades_a_submission(tmp_path):
    folder = samples.build(tmp_path / "sub", samples.MUTANTS["early_stopping_late"])
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "pytest", "autograder/", "--submission", str(folder),
                           "--assignment", "hw2", "--results", str(out), "-q", "-p", "no:cacheprovider"],
                          cwd=KIT_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1  # one rubric item failed
    assert "1 failed, 19 passed, 2 skipped" in proc.stdout, proc.stdout[-2000:]
    assert "test_rubric_item[trainer.early_stopping]" in proc.stdout
    data = json.loads(out.read_text())
    jsonschema.validate(data, SCHEMA)
    assert data["score"] == AUTOMATIC - 4


def test_notebook_points_table_matches_the_rubric(hw2):
    """The point split the notebook states is the rubric's."""
    intro = nbformat.read(KIT_ROOT / "source" / "hw2" / "HW2.ipynb", as_version=4).cells[0].source
    sections = {}
    for item in hw2.items:
        sections[item.section] = sections.get(item.section, 0) + item.points
    stated = {"1. ConvClassifier": 40, "2. TorchTrainer": 30, "3. Experiments": 20, "4. Questions": 10}
    assert {k: v for k, v in sections.items() if v} == stated
    for part, points in zip(("`ConvClassifier`", "`TorchTrainer`", "`run_experiment`", "Questions 1 and 2"), stated.values()):
        row = next(line for line in intro.splitlines() if part in line)
        assert row.rstrip(" |").endswith(f"| {points}"), row


@pytest.mark.slow
def test_gradescope_bundle_grades_hw2_with_its_hidden_checks(gradescope):
    names = gradescope.install("hw2")
    assert {"assignments/hw2/hidden_checks.py", "assignments/hw2/assets/expected_conv_out_hidden.pt",
            "assignments/hw2/digits50.json", "source/hw2/HW2.ipynb"} <= names
    samples.build(gradescope.submission, samples.MUTANTS["wrong_in_features"])
    proc, data = gradescope.run()
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert data["score"] == AUTOMATIC - 16  # classifier 6, other sizes 4, hidden expected outputs 6
    hidden = next(t for t in data["tests"] if "hidden" in t["name"])
    assert hidden["visibility"] == "after_published" and hidden["score"] == 0


FAKE_CIFAR = '''
class _SmallRandomCIFAR(torch.utils.data.Dataset):
    """Stands in for CIFAR-10 (no network here): a few random 16x16 images."""
    def __init__(self, root=None, train=True, transform=None, download=False):
        g = torch.Generator().manual_seed(0 if train else 1)
        n = 60 if train else 20
        self.x, self.y = torch.rand(n, 3, 16, 16, generator=g), torch.randint(0, 10, (n,), generator=g)
    def __len__(self):
        return len(self.y)
    def __getitem__(self, i):
        return self.x[i], int(self.y[i])
torchvision.datasets.CIFAR10 = _SmallRandomCIFAR
'''


@pytest.mark.slow
def test_source_notebook_runs_top_to_bottom_and_its_own_results_get_full_marks(hw2, sandbox, tmp_path):
    """Every cell of the instructor's notebook runs (CIFAR-10 replaced by small random
    images): the self-test, the overfitting test, the test run, all 20 experiment runs
    and the plots. The result files it writes are then graded like a student's."""
    import shutil

    from nbclient import NotebookClient

    work = tmp_path / "hw2"
    shutil.copytree(KIT_ROOT / "release" / "hw2", work, ignore=shutil.ignore_patterns("HW2.ipynb"))
    nb = nbformat.read(KIT_ROOT / "source" / "hw2" / "HW2.ipynb", as_version=4)
    nb.cells.insert(2, nbformat.v4.new_code_cell(FAKE_CIFAR))
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    nb.cells.pop(2)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "matches the expected output (norm of the difference" in text
    assert "overfitting works" in text and "*** Output file ./results/exp1_2_L8_K256.json written" in text
    plots = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert plots == 6  # the test run, two for experiment 1.1, three for experiment 1.2
    nbformat.write(nb, work / "HW2.ipynb")
    report = grade(work, hw2, sandbox)
    assert report.score == AUTOMATIC, [(r.id, r.output[:200]) for r in report.results if r.status == "failed"]


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["flatten_in_classifier", "flatten_module_in_forward"])
def test_harmless_variations_keep_full_marks(hw2, sandbox, tmp_path, variant):
    """An nn.Flatten, in the classifier or as its own module, changes nothing that is graded."""
    edits = {
        "flatten_in_classifier": [("        layers = []\n        ### BEGIN SOLUTION\n        num_pools",
                                   "        layers = [nn.Flatten()]\n        ### BEGIN SOLUTION\n        num_pools"),
                                  ("return self.classifier(features.flatten(start_dim=1))", "return self.classifier(features)")],
        "flatten_module_in_forward": [("        self.classifier = self._make_classifier()\n",
                                       "        self.classifier = self._make_classifier()\n        self.flatten = nn.Flatten()\n"),
                                      ("return self.classifier(features.flatten(start_dim=1))",
                                       "return self.classifier(self.flatten(features))")],
    }[variant]
    report = grade(samples.build(tmp_path / variant, samples.Sample(variant, {"conv_classifier": edits})), hw2, sandbox)
    assert report.score == AUTOMATIC, [(r.id, r.output[:300]) for r in report.results if r.status == "failed"]


def _course_run_name(sub, filters):
    """Rename exp1_2_L8_K256's result file and run to the course notebook's K=[258] spelling."""
    old = sub / "results" / "exp1_2_L8_K256.json"
    run = json.loads(old.read_text())
    run["config"].update(run_name="exp1_2_L8_K258", filters_per_layer=filters)
    (sub / "results" / "exp1_2_L8_K258.json").write_text(json.dumps(run))
    old.unlink()
    return sub


@pytest.mark.slow
def test_the_courses_k258_run_name_keeps_full_marks(hw2, sandbox, reference, tmp_path):
    """Issue 12, class 7: the course's notebook asks for a run named with K=[258] once; a
    student who followed it keeps every point, with a note in the feedback."""
    report = grade(_course_run_name(samples.build(tmp_path / "s"), [258]), hw2, sandbox)
    assert {r.id: r.score for r in report.results} == {r.id: r.score for r in by_id(reference).values()}
    assert report.accepted == ["results/exp1_2_L8_K258.json is graded as results/exp1_2_L8_K256.json: "
                               "the rubric accepts that name too, as the course did."]
    assert "exp1_2_L8_K258.json is graded as" in markdown_feedback(report)


def test_the_k258_name_is_accepted_for_that_run_only(hw2, tmp_path):
    """Judged in process: found under the 258 name, the run may use K=[256] or [258]; another width fails."""
    from autograder.notebook import open_submission

    judge = next(c for c in hw2.checks if c.id == "experiments.exp1_2").judge
    for filters, ok in (([258], True), ([256], True), ([128], False)):
        sub = _course_run_name(samples.build(tmp_path / f"s{filters[0]}"), filters)
        opened = open_submission(sub, sub, hw2.notebook, list(hw2.graded_cells), list(hw2.required_files))
        assert "results/exp1_2_L8_K256.json" in opened.files and len(opened.accepted) == 1
        runs = {f"exp1_2_{n}": {"value": json.loads(opened.files[f"results/exp1_2_{n}.json"].read_text())}
                for n in (f"L{l}_K{k}" for l in (2, 4, 8) for k in (32, 64, 128, 256))}
        assert judge(runs).passed == ok, judge(runs).message
