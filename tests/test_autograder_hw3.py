"""HW3 (ResNet from the ground up, seed 003) on the same engine as the other homeworks:
every automatic point for the reference, none for the blank release, exactly its rubric
items failed per mutant (the classic mistakes of real student code among them), nothing
gained by forged outputs, the reader on CIFAR-format files written offline, the source
notebook running top to bottom on them, and the Gradescope bundle grading HW3.
Expected points are derived from the rubric, never restated here."""
import pickle
import re
import shutil
import subprocess

import nbformat
import numpy as np
import pytest
import torch

from autograder.sandbox import KIT_ROOT
from checklib.assignment import load_assignment
from checklib.runner import load_module_from
from demo import hw3_samples as samples
from demo.cifar_like import write_cifar_python

SOURCE = KIT_ROOT / "source" / "hw3" / "HW3.ipynb"
FOLDER = KIT_ROOT / "assignments" / "hw3"


@pytest.fixture(scope="module")
def hw3():
    return load_assignment("hw3")


def automatic_points(assignment) -> float:
    return sum(i.points for i in assignment.items if not i.manual)


def by_id(report):
    return {r.id: r for r in report.results}


def grade(*args):
    from autograder.pipeline import grade as run
    return run(*args)


def _cell(grade_id: str) -> str:
    nb = nbformat.read(SOURCE, as_version=4)
    return next(c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _solution_namespace(*grade_ids) -> dict:
    """The setup cell and the given graded cells of the source notebook, run here."""
    ns = {"__name__": "hw3_solution"}
    for gid in ("setup",) + grade_ids:
        exec(compile(_cell(gid), f"<{gid}>", "exec"), ns)
    return ns


# --- fast: the notebook, the reference and the data (no sandbox) -----------------------------------

def test_the_reference_network_is_the_notebooks_solution():
    """reference.py (grader only) holds the network cell's solution, markers removed."""
    network = [line for line in _cell("network").splitlines()[1:] if "### " not in line]
    reference = (FOLDER / "reference.py").read_text().splitlines()
    start = reference.index("class batch_norm_relu_layer(nn.Module):")
    assert reference[start:] == network[network.index("class batch_norm_relu_layer(nn.Module):"):]


def test_the_specifications_counts_are_the_reference_networks():
    checks = load_module_from(FOLDER / "checks.py", "hw3_checks_for_test")
    reference = load_module_from(FOLDER / "reference.py", "hw3_reference_for_test")
    for version, size, classes, filters in ((1, 1, 10, 16), (1, 3, 7, 8), (2, 1, 10, 16), (2, 2, 5, 8)):
        net = reference.ResNet(version, size, classes, filters)
        assert sum(p.numel() for p in net.parameters()) == checks.spec_parameters(version, size, classes, filters)
        kernels = [tuple(m.kernel_size) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
        main = kernels.count((3, 3)) + 1 + (kernels.count((1, 1)) - 3 if version == 2 else 0)
        assert (main, kernels.count((1, 1)) - (2 * 3 * size if version == 2 else 0)) == checks.weighted_calls(version, size)
    # The numbers the notebook gives students to compare with.
    assert "272,282" in _cell_text_before("network") and checks.spec_parameters(1, 3, 10, 16) == 272_282
    assert "312,218" in _cell_text_before("network") and checks.spec_parameters(2, 3, 10, 16) == 312_218


def _cell_text_before(grade_id: str) -> str:
    nb = nbformat.read(SOURCE, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    return nb.cells[index - 1].source


@pytest.mark.slow
def test_load_data_reads_the_offline_cifar_files(tmp_path):
    """The solution reads demo/cifar_like's python batches (written as Python 2 did) in the dataset's layout."""
    folder = write_cifar_python(tmp_path, n_train=50, n_test=12)
    ns = _solution_namespace("data_reader")
    x_train, y_train, x_test, y_test = ns["load_data"](str(folder))
    assert (x_train.shape, y_train.shape, x_test.shape, y_test.shape) == ((50, 3072), (50,), (12, 3072), (12,))
    assert x_train.dtype == np.uint8
    with open(folder / "data_batch_2", "rb") as f:
        second = pickle.load(f, encoding="bytes")
    assert np.array_equal(x_train[10:20], second[b"data"]) and list(y_train[10:20]) == second[b"labels"]
    assert ns["train_vaild_split"] is ns["train_valid_split"]


def test_the_graders_files_open_like_the_real_batches(tmp_path):
    """The probe's CIFAR files open with encoding='bytes' (b'data') and 'latin1' ('data'), as the real ones do."""
    probes = load_module_from(FOLDER / "probes.py", "hw3_probes_for_test")
    probes.write_batches(str(tmp_path), [3, 2, 2, 2, 2, 4], seed=1)
    rows, labels = probes.batch_arrays([3, 2, 2, 2, 2, 4], 1)[5]
    for encoding, key in (("bytes", b"data"), ("latin1", "data")):
        with open(tmp_path / "test_batch", "rb") as f:
            batch = pickle.load(f, encoding=encoding)
        assert np.array_equal(batch[key], rows) and batch[key].dtype == np.uint8
    assert batch["labels"] == labels


def test_notebook_states_the_rubrics_points(hw3):
    nb = nbformat.read(SOURCE, as_version=4)
    sections = {}
    for item in hw3.items:
        sections[item.section] = sections.get(item.section, 0) + item.points
    rows = [line for line in nb.cells[0].source.splitlines() if re.match(r"\| \d\.", line)]
    assert [float(row.rstrip(" |").rsplit("|", 1)[1]) for row in rows] == [v for v in sections.values() if v]
    manual = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"] for c in nb.cells
              if c.metadata.get("nbgrader", {}).get("grade")}
    assert manual == {i.id: i.points for i in hw3.items if i.manual}
    graded = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.source.startswith("# AUTOGRADED")]
    assert graded == list(hw3.graded_cells)
    written = sum(i.points for i in hw3.items if i.manual)
    assert f"The written answers ({written:g} points" in nb.cells[0].source


def test_the_engine_has_no_hw3_specific_code():
    proc = subprocess.run(["git", "grep", "-n", "-i", "-E", r"hw3|parse_record|preprocess_image|bottleneck_block|train_vaild",
                           "--", "autograder/", "checklib/"], cwd=KIT_ROOT, capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stdout == "", proc.stdout


def test_public_files_hold_no_hidden_settings_and_no_reference_network(hw3):
    """The hidden settings (read from the loaded hidden checks) and the reference network appear in no public file."""
    public = "".join((FOLDER / f).read_text() for f in ("checks.py", "probes.py"))
    assert "HIDDEN" not in public and "reference.py" not in public and "class ResNet" not in public
    checks = {c.id: c for c in hw3.checks}
    assert str(checks["reader.hidden"].args["sizes"]) not in public
    for s in checks["net.hidden"].args["settings"]:
        assert f"network({s['version']}, {s['size']}, classes={s['classes']}" not in public


@pytest.mark.slow
def test_the_preprocessing_judges_tell_a_horizontal_flip_from_a_vertical_one():
    """The reference's own outputs pass the crop, flip and testing judges; the same
    outputs flipped upside down fail only the flip judge (and say so)."""
    checks = load_module_from(FOLDER / "checks.py", "hw3_checks_for_flip")
    ns = _solution_namespace("preprocess")
    probes = load_module_from(FOLDER / "probes.py", "hw3_probes_for_flip")
    record = probes.preprocess(ns, **checks.PREPROCESS["args"])
    from checklib.probes import decode, encode
    record = decode(encode(record))
    judged = {name: getattr(checks, f"_{name}_judge")(record) for name in ("crop", "flip", "testing", "standardize")}
    assert all(v.passed for v in judged.values()), {k: v.message for k, v in judged.items()}
    images = torch.from_numpy(checks.seeded_pixels((checks.DRAWS, 32, 32, 3), checks.PREPROCESS["args"]["seed"]))
    flipped = [out.flip(1).flip(0) if checks._locate(out.double(), image.double())[1] == 1 else out
               for out, image in zip(record["train"]["value"], images)]
    record["train"] = {"value": torch.stack(flipped)}
    assert checks._crop_judge(record).passed
    verdict = checks._flip_judge(record)
    assert not verdict.passed and "upside down" in verdict.message


# --- grading in the sandbox -------------------------------------------------------------------

@pytest.fixture(scope="module")
def reference(hw3, sandbox, tmp_path_factory):
    return grade(samples.build(tmp_path_factory.mktemp("ref") / "sub"), hw3, sandbox)


@pytest.mark.slow
def test_reference_gets_every_automatic_point(hw3, reference):
    results = by_id(reference)
    assert {i for i, r in results.items() if r.status != "passed"} == {i.id for i in hw3.items if i.manual}
    assert reference.score == automatic_points(hw3) and reference.max_score == 100
    assert not reference.incidents


@pytest.mark.slow
def test_blank_release_earns_no_point(hw3, sandbox, tmp_path):
    report = grade(samples.build_blank(tmp_path / "blank"), hw3, sandbox)
    assert report.score == 0 and not report.incidents
    results = by_id(report)
    for item in ("reader.arrays", "parse.layout", "preprocess.crop", "net.output", "net.function", "model.checkpoints"):
        assert "NotImplementedError" in results[item].output, (item, results[item].output[:300])
    assert "Missing from your submission: results/test_results.json" in results["model.accuracy"].output


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(samples.MUTANTS))
def test_each_mutant_fails_exactly_its_items(hw3, sandbox, reference, tmp_path, name):
    mutant = samples.MUTANTS[name]
    report = grade(samples.build(tmp_path / name, mutant), hw3, sandbox)
    results, ref = by_id(report), by_id(reference)
    failed = {r.id for r in report.results if r.status == "failed" or (r.score < ref[r.id].score)}
    assert failed == set(mutant.fails), {i: results[i].output[:300] for i in failed ^ set(mutant.fails)}
    for item, result in results.items():
        if item in mutant.fails:
            assert result.score < ref[item].score or ref[item].max_score == 0, item
            assert len(result.output) > 30  # every failure explains itself to the student
        else:
            assert result.score == ref[item].score, item


QUICK_EDITS = [  # (old, new) in the training cell: a small, fast run on the offline data
    ("EPOCHS = 60", "EPOCHS = 2"), ("SAVE_INTERVAL = 10", "SAVE_INTERVAL = 1"), ("resnet_size=3", "resnet_size=1"),
    ("first_num_filters=16", "first_num_filters=8"),
]


@pytest.mark.slow
def test_source_notebook_runs_top_to_bottom_offline_and_its_results_grade(hw3, sandbox, tmp_path):
    """Every cell of the instructor's notebook runs on CIFAR-format files made offline
    (600 images, two epochs of a small v2); the results file it writes is graded like a
    student's: all automatic points but the accuracy thresholds, which need real CIFAR-10."""
    from nbclient import NotebookClient

    work = tmp_path / "hw3"
    shutil.copytree(KIT_ROOT / "hw_utils", work / "hw_utils", ignore=shutil.ignore_patterns("__pycache__"))
    write_cifar_python(work, n_train=600, n_test=100)
    nb = nbformat.read(SOURCE, as_version=4)
    edits = QUICK_EDITS + [("train_valid_split(x_train, y_train)", "train_valid_split(x_train, y_train, 500)")]
    for old, new in edits:
        cell = next(c for c in nb.cells if c.cell_type == "code" and old in c.source)
        cell.source = cell.source.replace(old, new)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "train (600, 3072) uint8, test (100, 3072); split: 500 train, 100 valid" in text
    assert "ResNet v1, n=3: 272,282 parameters" in text and "Restored model parameters from model_v2/model-" in text
    assert re.search(r"Test accuracy: \d\.\d{4} \(results written to results/test_results.json\)", text)
    nbformat.write(nb, work / "HW3.ipynb")
    shutil.rmtree(work / "cifar-10-batches-py")
    report = grade(work, hw3, sandbox)
    wrong = [(r.id, r.output[:200]) for r in report.results if r.status == "failed" and r.id != "model.accuracy"]
    assert not wrong
    accuracy = next(i for i in hw3.items if i.id == "model.accuracy")
    assert report.score >= automatic_points(hw3) - accuracy.points


@pytest.mark.slow
def test_forged_outputs_gain_nothing(hw3, sandbox, tmp_path):
    """A network whose output does not come from its layers (a constant that still
    depends on the input's shape), and a tensor whose comparisons always say yes."""
    def edit(nb):
        cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "network")
        cell.source = cell.source.replace(
            "class batch_norm_relu_layer(nn.Module):",
            "class _Liar(torch.Tensor):\n    def __eq__(self, other): return True\n    def __ne__(self, other): return False\n\n\n"
            "class batch_norm_relu_layer(nn.Module):", 1)
        cell.source = cell.source.replace(
            "        return self.output_layer(outputs)\n",
            "        return (self.output_layer(outputs) * 0 + 1).as_subclass(_Liar)\n")
    results = by_id(grade(samples.build(tmp_path / "s", notebook_edit=edit), hw3, sandbox))
    assert results["net.function"].status == "failed"
    assert results["net.params"].status == "passed" and results["net.output"].status == "passed"


VARIANTS = {  # correct solutions written another way: (old, new) per graded cell
    "data_reader": [  # only the starter's spelling
        ("def train_valid_split(x_train, y_train, split_index=45000):", "def train_vaild_split(x_train, y_train, split_index=45000):"),
        ("train_vaild_split = train_valid_split  # the starter's spelling: either name works\n", "")],
    "preprocess": [  # per-channel standardization, with numpy's population std
        ("    std = max(float(image.std()), 1.0 / np.sqrt(image.size))\n    return ((image - image.mean()) / std).astype(np.float32)\n",
         "    mean, std = image.mean(axis=(0, 1)), image.std(axis=(0, 1))\n    return ((image - mean) / std).astype(np.float32)\n")],
    "network": [
        # the blocks named by strings (compared with ==), F.relu instead of a module after the sum
        ("        block_fn = standard_block if resnet_version == 1 else bottleneck_block\n",
         "        block_fn = \"standard_block\" if resnet_version == 1 else \"bottleneck_block\"\n"),
        ("        return self.relu(outputs + shortcut)\n", "        return F.relu(outputs + shortcut)\n"),
        # the seed's bottleneck: the stride on the first 1x1 convolution, the projection computed last
        ("        self.conv1 = nn.Conv2d(first_num_filters, width, 1, bias=False)\n",
         "        self.conv1 = nn.Conv2d(first_num_filters, width, 1, stride=strides, bias=False)\n"),
        ("        self.conv2 = nn.Conv2d(width, width, 3, stride=strides, padding=1, bias=False)\n",
         "        self.conv2 = nn.Conv2d(width, width, 3, stride=1, padding=1, bias=False)\n"),
        ("        shortcut = inputs if self.projection_shortcut is None else self.projection_shortcut(preactivated)\n"
         "        outputs = self.conv1(preactivated)\n",
         "        outputs = self.conv1(preactivated)\n"),
        ("        outputs = self.conv3(self.bn_relu3(outputs))\n        return outputs + shortcut\n",
         "        outputs = self.conv3(self.bn_relu3(outputs))\n"
         "        return outputs + (inputs if self.projection_shortcut is None else self.projection_shortcut(preactivated))\n")],
}


@pytest.mark.slow
def test_other_correct_ways_keep_full_marks(hw3, sandbox, tmp_path):
    """The starter's train_vaild_split alone, per-channel standardization, blocks passed by
    name, a functional ReLU, the stride on the bottleneck's first 1x1 convolution and the
    projection computed after the main path: nothing graded depends on these choices."""
    report = grade(samples.build(tmp_path / "s", samples.Sample("variants", VARIANTS)), hw3, sandbox)
    assert report.score == automatic_points(hw3), [(r.id, r.output[:300]) for r in report.results if r.status == "failed"]
