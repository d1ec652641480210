"""`python -m autograder check-config hwN`: an assignment's files agree with each other,
so that an instructor's mistake is reported to the instructor, not to every student.

What is verified (each problem names the file and the key at fault):
  - the rubric, checks and source notebook load (`load_assignment` already refuses a
    check without a rubric item and vice versa, a graded cell no check uses, and a graded
    cell the source notebook lacks);
  - the points add up to the rubric's `totals` (the course's stated points and bonus);
  - the release holds no hidden material: no hidden_checks.py, none of the files the
    rubric lists under `hidden_files` (grader-only assets), and no hidden rubric item's
    check defined in the released check files.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import yaml

from checklib.assignment import KIT_ROOT, ConfigError, load_assignment

HIDDEN_FILES = ("hidden_checks.py",)  # always hidden; a rubric adds its own with `hidden_files: [...]`


@dataclass(frozen=True)
class Problem:
    file: Path
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.message}"


def check_config(name: str, root: Path = KIT_ROOT) -> list[Problem]:
    """Every problem found in assignment `name` under `root` (empty when all is well)."""
    try:
        assignment = load_assignment(name, root)
    except ConfigError as err:
        return [Problem(err.file, err.key, str(err).split(": ", 2)[-1])]
    rubric = assignment.folder / "rubric.yaml"
    spec = yaml.safe_load(rubric.read_text())
    return [*_totals(rubric, spec, assignment), *_release(root, spec, assignment)]


def _totals(rubric: Path, spec: dict, assignment) -> list[Problem]:
    totals = spec.get("totals")
    if not isinstance(totals, dict) or "points" not in totals:
        return [Problem(rubric, "totals", "missing: state the course's totals, e.g. {points: 100, bonus: 10}")]
    points = sum(i.points for i in assignment.items)
    bonus = sum(max((p for _, p in i.thresholds), default=i.points) - i.points for i in assignment.items)
    problems = []
    if abs(points - float(totals["points"])) > 1e-9:
        by_section: dict[str, float] = {}
        for i in assignment.items:
            by_section[i.section] = by_section.get(i.section, 0) + i.points
        detail = ", ".join(f"{s} {p:g}" for s, p in by_section.items())
        problems.append(Problem(rubric, "totals.points", f"the items add up to {points:g}, not {totals['points']:g} ({detail})"))
    if abs(bonus - float(totals.get("bonus", 0))) > 1e-9:
        problems.append(Problem(rubric, "totals.bonus", f"the thresholds give {bonus:g} bonus points, "
                                                        f"not {totals.get('bonus', 0):g}"))
    return problems


def _release(root: Path, spec: dict, assignment) -> list[Problem]:
    """The student's release folder (beside the notebook the rubric names) holds nothing hidden."""
    release = root / "release" / assignment.name
    if not release.is_dir():
        return [Problem(release, "release", "missing: make the release (see docs/instructors.md)")]
    problems = []
    released = release / "assignments" / assignment.name
    rubric = assignment.folder / "rubric.yaml"
    for name in (*HIDDEN_FILES, *spec.get("hidden_files", ())):
        if name not in HIDDEN_FILES and not (assignment.folder / name).exists():
            problems.append(Problem(rubric, f"hidden_files {name!r}", f"no such file in {assignment.folder}"))
        for path in release.rglob(Path(name).name):
            if path.relative_to(release).as_posix().endswith(name):
                problems.append(Problem(path, name, "hidden material is in the student release; remove it and regenerate"))
    hidden_ids = {item["id"] for section in spec["sections"] for item in section["items"] if item.get("hidden")}
    for path in sorted(released.glob("*.py")) if released.is_dir() else []:
        for check_id in sorted(_check_ids(path) & hidden_ids):
            problems.append(Problem(path, f"Check({check_id!r})", "a hidden check is defined in the released "
                                                                  "check files; move it to hidden_checks.py"))
    return problems


def _check_ids(path: Path) -> set[str]:
    """The ids of the Check(...) calls written in a Python file (read, not run)."""
    try:
        tree = ast.parse(path.read_text())
    except SyntaxError:
        return set()
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "Check":
            first = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "id"), None)
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                ids.add(first.value)
    return ids
