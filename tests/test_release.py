"""The committed release is what nbgrader makes from source/, and leaks nothing."""
import filecmp
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted(p.name for p in (REPO / "source").iterdir() if p.is_dir())


def _code_cells(path):
    return [(c.cell_type, c.source, c.metadata.get("nbgrader")) for c in nbformat.read(path, as_version=4).cells]


@pytest.mark.slow
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_release_is_up_to_date(tmp_path, name):
    shutil.copytree(REPO / "source" / name, tmp_path / "source" / name, symlinks=False)
    shutil.copy(REPO / "nbgrader_config.py", tmp_path)
    nbgrader = Path(sys.executable).with_name("nbgrader")
    proc = subprocess.run([str(nbgrader), "generate_assignment", name, "--force"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    fresh, committed = tmp_path / "release" / name, REPO / "release" / name
    fresh_files = sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
    committed_files = sorted(p.relative_to(committed) for p in committed.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert fresh_files == committed_files, "release/ is stale: run `nbgrader generate_assignment %s --force`" % name
    for rel in fresh_files:
        if rel.suffix == ".ipynb":
            assert _code_cells(fresh / rel) == _code_cells(committed / rel), f"{rel} is stale: regenerate the release"
        else:
            assert filecmp.cmp(fresh / rel, committed / rel, shallow=False), f"{rel} is stale: regenerate the release"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_release_leaks_no_solution(name):
    source_nb = nbformat.read(next((REPO / "source" / name).glob("*.ipynb")), as_version=4)
    release_nb = nbformat.read(next((REPO / "release" / name).glob("*.ipynb")), as_version=4)
    text = json.dumps(release_nb)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "Grading notes"):
        assert marker not in text
    # No line written only inside solution regions survives in the release.
    inside_lines, outside_lines = set(), set()
    for cell in source_nb.cells:
        inside = False
        for line in cell.source.splitlines():
            if "### BEGIN SOLUTION" in line or "### END SOLUTION" in line:
                inside = "BEGIN" in line
            elif len(line.strip()) > 12:
                (inside_lines if inside else outside_lines).add(line.strip())
    release_lines = {line.strip() for c in release_nb.cells for line in c.source.splitlines()}
    leaked = (inside_lines - outside_lines) & release_lines
    assert not leaked, f"solution lines leaked into the release: {sorted(leaked)[:3]}"
    for cell in release_nb.cells:
        assert not cell.get("outputs") and cell.get("execution_count") is None


def test_release_ships_hw_utils_unchanged():
    for name in ASSIGNMENTS:
        for path in (REPO / "hw_utils").glob("*.py"):
            assert filecmp.cmp(path, REPO / "release" / name / "hw_utils" / path.name, shallow=False), path.name


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_release_ships_the_engine_and_public_checks_but_no_hidden_ones(name):
    release = REPO / "release" / name
    for path in [*(REPO / "autograder").glob("*.py"), REPO / "autograder" / "gradescope_schema.json"]:
        assert filecmp.cmp(path, release / "autograder" / path.name, shallow=False), path.name
    for path in (REPO / "checklib").glob("*.py"):
        assert filecmp.cmp(path, release / "checklib" / path.name, shallow=False), path.name
    for public in ("rubric.yaml", "checks.py", "probes.py"):
        assert filecmp.cmp(REPO / "assignments" / name / public, release / "assignments" / name / public, shallow=False)
    assert not (release / "assignments" / name / "hidden_checks.py").exists()
    hidden = [p for p in release.rglob("*") if "hidden" in p.name]
    assert not hidden, f"the release ships grader-only files: {hidden}"
    assert (release / "Makefile").is_file() and "hw_utils.submit" in (release / "Makefile").read_text()
