"""The committed release is what `python -m autograder release hwN` makes, and it leaks
nothing: no solution, no grader engine file, no hidden check material."""
import ast
import filecmp
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from autograder.release import public_rubric
from checklib.assignment import load_assignment
from checklib.runner import load_module_from

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted(p.name for p in (REPO / "source").iterdir() if p.is_dir())


def release_files(folder: Path) -> list[Path]:
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """Every release made again by the command, in a temporary folder."""
    out = tmp_path_factory.mktemp("release")
    for name in ASSIGNMENTS:
        proc = subprocess.run([sys.executable, "-m", "autograder", "release", name, "--out", str(out)], cwd=REPO,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_release_is_byte_identical_to_what_the_command_makes(fresh, name):
    made, committed = fresh / name, REPO / "release" / name
    assert release_files(made) == release_files(committed), f"release/{name} is stale: run `python -m autograder release {name}`"
    for rel in release_files(made):
        assert filecmp.cmp(made / rel, committed / rel, shallow=False), \
            f"release/{name}/{rel} is stale: run `python -m autograder release {name}`"


def test_release_command_is_deterministic(tmp_path):
    """Run twice into the same folder (it replaces it) and into another: the same bytes."""
    name = ASSIGNMENTS[0]
    from autograder.release import make_release

    first = make_release(name, tmp_path / "a")
    (first / "stray.txt").write_text("left from an older release")
    make_release(name, tmp_path / "a")
    second = make_release(name, tmp_path / "b")
    assert not (first / "stray.txt").exists()
    assert release_files(first) == release_files(second)
    assert all(filecmp.cmp(first / rel, second / rel, shallow=False) for rel in release_files(first))


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


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_release_ships_hw_utils_checklib_and_the_public_checks(name):
    release = REPO / "release" / name
    for package in ("hw_utils", "checklib"):
        for path in (REPO / package).glob("*.py"):
            assert filecmp.cmp(path, release / package / path.name, shallow=False), f"{package}/{path.name}"
    for public in ("checks.py", "probes.py"):
        assert filecmp.cmp(REPO / "assignments" / name / public, release / "assignments" / name / public, shallow=False)
    assert (release / "Makefile").is_file() and "hw_utils.submit" in (release / "Makefile").read_text()
    # The public rubric is the grader's without its hidden items, and the release loads as an assignment.
    grader = yaml.safe_load((REPO / "assignments" / name / "rubric.yaml").read_text())
    assert yaml.safe_load((release / "assignments" / name / "rubric.yaml").read_text()) == public_rubric(grader)
    public = load_assignment(name, root=release)
    assert [i.id for i in public.items] == [i.id for i in load_assignment(name).items if i.id in {c.id for c in public.checks}
                                           or i.manual or i.id.startswith("rules.")]


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_release_holds_no_grader_engine_file(name):
    release = REPO / "release" / name
    assert not (release / "autograder").exists()
    engine = {path.read_bytes() for path in (REPO / "autograder").iterdir() if path.is_file()}
    shipped = [rel for rel in release_files(release) if (release / rel).read_bytes() in engine]
    assert not shipped, f"engine files in the release: {shipped}"
    for rel in release_files(release):
        if rel.suffix == ".py":
            tree = ast.parse((release / rel).read_text())
            imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
            imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
            assert not any(m == "autograder" or m.startswith("autograder.") for m in imported), f"{rel} imports autograder"


# --- hidden material, read from the grader's own files -----------------------------------------

def hidden_material(name: str) -> dict[str, set[str]]:
    """What must not reach students, derived from the grader's rubric and hidden_checks.py:
    hidden rubric ids and names, the hidden checks' judge names, the names hidden_checks.py
    defines, the files it names, and the settings (probe arguments) only hidden checks use."""
    folder = REPO / "assignments" / name
    spec = yaml.safe_load((folder / "rubric.yaml").read_text())
    items = [item for section in spec["sections"] for item in section["items"] if item.get("hidden")]
    material = {"rubric id": {i["id"] for i in items}, "rubric name": {i.get("name", i["id"]) for i in items},
                "judge": set(), "name": set(), "file": set(), "setting": set()}
    hidden_path = folder / "hidden_checks.py"
    if not hidden_path.is_file():
        return material
    public = load_module_from(folder / "checks.py", f"release_test_{name}_checks")
    hidden = load_module_from(hidden_path, f"release_test_{name}_hidden", public=public)
    public_args = [json.dumps(dict(c.args), sort_keys=True) for c in public.CHECKS]
    # Words the public material itself uses ('conv', 'Model') are not secrets of a hidden setting.
    public_text = "".join(p.read_text(errors="replace") for p in
                          [folder / "checks.py", folder / "probes.py", *(REPO / "checklib").glob("*.py"),
                           *(REPO / "source" / name).glob("*.ipynb")])
    public_judges = {judge_name(c.judge) for c in public.CHECKS}  # e.g. a factory both kinds of check use
    for check in hidden.CHECKS:
        if judge_name(check.judge) not in public_judges:
            material["judge"].add(judge_name(check.judge))
        if json.dumps(dict(check.args), sort_keys=True) not in public_args:
            material["setting"] |= {t for t in settings_text(dict(check.args)) if t not in public_text}
    tree = ast.parse(hidden_path.read_text())
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        material["name"] |= {t.id for t in targets if isinstance(t, ast.Name) and t.id not in ("CHECKS", "public")}
        material["name"] |= {node.name} if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else set()
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    material["file"] = {p.name for p in folder.rglob("*") if p.is_file() and p.name in strings}
    material["judge"] -= {"", "<lambda>"}
    for kind in ("judge", "name"):  # the library's own names (other_input_sizes, SETTINGS) are public
        material[kind] = {n for n in material[kind] if n not in public_text}
    return material


def _hidden_checks(name: str) -> list:
    folder = REPO / "assignments" / name
    if not (folder / "hidden_checks.py").is_file():
        return []
    public = load_module_from(folder / "checks.py", f"release_test_{name}_checks_again")
    return list(load_module_from(folder / "hidden_checks.py", f"release_test_{name}_hidden_again", public=public).CHECKS)


def judge_name(judge) -> str:
    """The name a judge is defined under (a closure: the function that made it)."""
    return getattr(judge, "__qualname__", "").split(".")[0]


def settings_text(value) -> set[str]:
    """How a hidden setting would appear in a file: its strings, and its lists of numbers
    as Python or JSON writes them ('3, 64, 48')."""
    found = set()
    if isinstance(value, str) and len(value) >= 4:
        found.add(value)
    elif isinstance(value, dict):
        for v in value.values():
            found |= settings_text(v)
    elif isinstance(value, (list, tuple)):
        if len(value) >= 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            found.add(", ".join(map(str, value)))
        for v in value:
            found |= settings_text(v)
    return found


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_release_holds_no_hidden_material(name):
    material = hidden_material(name)
    assert material["rubric id"], f"{name}: the rubric has no hidden item to look for"
    release = REPO / "release" / name
    texts = {}
    for rel in release_files(release):
        data = (release / rel).read_bytes()
        texts[rel] = data.decode("utf-8", "replace")
    found = []
    for kind, needles in material.items():
        for needle in needles:
            if kind == "file":
                found += [f"{kind} {needle!r}" for rel in texts if rel.name == needle]
            found += [f"{kind} {needle!r} in {rel}" for rel, text in texts.items() if needle in text]
    assert not found, f"hidden material in release/{name}: {found[:10]}"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_hidden_material_is_found_where_the_grader_keeps_it(name):
    """The search above is not vacuous: each kind of hidden material it derives is present in
    the grader's own files (so a copy of them in the release would be caught)."""
    material = hidden_material(name)
    grader_text = "".join(p.read_text(errors="replace") for p in (REPO / "assignments" / name).rglob("*")
                          if p.is_file() and p.suffix in (".py", ".yaml"))
    for kind in ("rubric id", "judge", "name"):
        assert all(needle in grader_text for needle in material[kind]), kind
    hidden_args = [c for c in _hidden_checks(name) if c.args]
    assert not hidden_args or material["setting"], f"{name}: the hidden checks' settings gave nothing to look for"
    assert material["name"] or material["judge"] or material["setting"], \
        f"{name}: hidden_checks.py defines nothing to look for"


def test_files_the_rubric_declares_grader_only_stay_out_of_the_release(tmp_path):
    """A rubric's `hidden_files` are left out even when hidden_checks.py does not name them."""
    from autograder.release import _add_public_assignment

    folder = tmp_path / "kit" / "assignments" / "hwx"
    (folder / "assets").mkdir(parents=True)
    (folder / "rubric.yaml").write_text(yaml.safe_dump(
        {"assignment": "hwx", "hidden_files": ["assets/answers.pt"], "sections": [{"name": "A", "items": []}]}))
    for name in ("checks.py", "probes.py", "assets/answers.pt", "assets/images.json"):
        (folder / name).write_text("x")
    _add_public_assignment(tmp_path / "made", tmp_path / "kit", "hwx")
    shipped = release_files(tmp_path / "made" / "assignments" / "hwx")
    assert Path("assets/images.json") in shipped and Path("assets/answers.pt") not in shipped
    assert "hidden_files" not in (tmp_path / "made" / "assignments" / "hwx" / "rubric.yaml").read_text()
