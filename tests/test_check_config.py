"""check-config and load-time validation: an instructor's mistake is reported to the
instructor, naming the file and the key, before any student is graded.

The mistakes are planted in a copy of the example homework of docs/instructors.md
(tests/example_course/, never shipped to students); the kit's own homeworks must pass.
"""
import re
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from autograder.__main__ import main
from autograder.config_check import check_config
from checklib.assignment import ConfigError, available, load_assignment

EXAMPLE = Path(__file__).parent / "example_course"
SOLUTION = re.compile(r"### BEGIN SOLUTION.*?### END SOLUTION", re.S)


def make_release(root: Path, name: str = "hw0") -> Path:
    """A minimal student release of an example homework: the notebook without its
    solutions and the public assignment files (what the release command makes)."""
    release = root / "release" / name
    (release / "assignments").mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(root / "source" / name / f"{name.upper()}.ipynb", as_version=4)
    for cell in nb.cells:
        cell.source = SOLUTION.sub("raise NotImplementedError()", cell.source)
    nbformat.write(nb, release / f"{name.upper()}.ipynb")
    shutil.copytree(root / "assignments" / name, release / "assignments" / name,
                    ignore=shutil.ignore_patterns("hidden_checks.py", "__pycache__"))
    return release


@pytest.fixture
def course(tmp_path):
    root = tmp_path / "course"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("__pycache__"))
    make_release(root)
    return root


def edit_rubric(root: Path, edit) -> None:
    path = root / "assignments" / "hw0" / "rubric.yaml"
    spec = yaml.safe_load(path.read_text())
    edit(spec)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


@pytest.mark.parametrize("name", available())
def test_every_homework_of_the_kit_passes_check_config(name):
    assert check_config(name) == []


def test_the_example_homework_passes(course):
    assert check_config("hw0", course) == []


def test_unknown_graded_cell_is_blamed_on_the_rubric_not_the_students(course):
    # A graded cell the rubric names but the source notebook lacks: load time, naming the notebook and the key.
    def rename(spec):
        spec["graded_cells"] = {"relu_fn": {}}
    edit_rubric(course, rename)
    checks = course / "assignments" / "hw0" / "checks.py"
    checks.write_text(checks.read_text().replace('cells=("relu",)', 'cells=("relu_fn",)'))
    hidden = course / "assignments" / "hw0" / "hidden_checks.py"
    hidden.write_text(hidden.read_text().replace('cells=("relu",)', 'cells=("relu_fn",)'))
    with pytest.raises(ConfigError) as err:
        load_assignment("hw0", course)
    assert err.value.file == course / "source" / "hw0" / "HW0.ipynb" and "relu_fn" in err.value.key
    [problem] = check_config("hw0", course)
    assert "relu_fn" in problem.key and "AUTOGRADED" in problem.message


def test_graded_cell_that_no_check_uses(course):
    edit_rubric(course, lambda spec: spec["graded_cells"].update(extra={}))
    [problem] = check_config("hw0", course)
    assert problem.file.name == "rubric.yaml" and "'extra'" in problem.key and "no check uses" in problem.message


def test_check_without_rubric_item(course):
    def drop(spec):
        spec["sections"][0]["items"] = [i for i in spec["sections"][0]["items"] if i["id"] != "relu.shape"]
    edit_rubric(course, drop)
    [problem] = check_config("hw0", course)
    assert problem.file.name == "checks.py" and "relu.shape" in problem.key and "no rubric item" in problem.message


def test_rubric_item_without_check(course):
    edit_rubric(course, lambda spec: spec["sections"][0]["items"].append({"id": "relu.speed", "points": 1}))
    [problem] = check_config("hw0", course)
    assert problem.file.name == "rubric.yaml" and "relu.speed" in problem.key and "no check" in problem.message


def test_points_not_adding_up(course):
    def inflate(spec):
        spec["sections"][0]["items"][0]["points"] += 3
    edit_rubric(course, inflate)
    problems = check_config("hw0", course)
    stated = yaml.safe_load((course / "assignments" / "hw0" / "rubric.yaml").read_text())["totals"]["points"]
    assert [p.key for p in problems] == ["totals.points"]
    assert f"not {stated:g}" in problems[0].message


def test_hidden_id_in_the_release(course):
    # The hidden check defined in the released checks.py (an instructor moved it by mistake).
    released = course / "release" / "hw0" / "assignments" / "hw0" / "checks.py"
    released.write_text(released.read_text().replace(
        "CHECKS = [", 'CHECKS = [\n    Check("relu.large", judge=judge_values, **VALUES),'))
    [problem] = check_config("hw0", course)
    assert problem.file == released and "relu.large" in problem.key


def test_hidden_file_in_the_release(course):
    shutil.copy(course / "assignments" / "hw0" / "hidden_checks.py", course / "release" / "hw0" / "assignments" / "hw0")
    problems = check_config("hw0", course)
    assert problems and all(p.file.name == "hidden_checks.py" for p in problems)
    assert any("hidden material is in the student release" in p.message for p in problems)


def test_rubric_errors_name_the_file_and_key(course):
    edit_rubric(course, lambda spec: spec.update(limits={"cpu_secs": 5}))
    with pytest.raises(ConfigError) as err:
        load_assignment("hw0", course)
    assert err.value.key == "limits" and "cpu_secs" in str(err.value) and "rubric.yaml" in str(err.value)


def test_cli_exit_status(capsys):
    assert main(["check-config", *available()]) == 0
    out = capsys.readouterr().out
    assert all(f"{name}: ok" in out for name in available())
    assert main(["check-config", "no-such-homework"]) == 2


def test_cross_check_naming_a_missing_cell_or_file(course):
    edit_rubric(course, lambda spec: spec.update(cross_checks=[{"file": "HW0.ipynb", "columns": ["x"], "shown_in": "tabel"}]))
    [problem] = check_config("hw0", course)
    assert problem.file.name == "HW0.ipynb" and "tabel" in problem.key
    edit_rubric(course, lambda spec: spec.update(cross_checks=[{"file": "results.xlsx", "columns": ["x"], "shown_in": "relu"}]))
    [problem] = check_config("hw0", course)
    assert problem.file.name == "rubric.yaml" and problem.key == "cross_checks[0].file"
