"""Make a homework's student release: `python -m autograder release hwN`.

    source/hwN/  (HWN.ipynb with solutions, Makefile)   --nbgrader generate_assignment-->  the student notebook
    + hw_utils/*.py, checklib/*.py                      (the helpers and the check model students run)
    + assignments/hwN/ public part                      (checks.py, probes.py, a public rubric.yaml, public data)
    = release/hwN/                                      (replaced as a whole, committed)

What is public is derived, not listed by hand:
  - the rubric is rewritten without its `hidden: true` items;
  - of the assignment's Python files only checks.py and probes.py ship (never
    hidden_checks.py nor instructor tools such as make_assets.py);
  - every other file of assignments/hwN/ ships unless its path mentions
    "hidden" or hidden_checks.py names it (e.g. HIDDEN_ASSET = "x.pt").
Nothing of the grader's engine (autograder/) ships. The result depends only on
the files it reads (sorted walks, no timestamps), so running it twice gives the
same bytes, and tests/test_release.py regenerates it to compare.
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from checklib.assignment import KIT_ROOT

SHIPPED_PACKAGES = ("hw_utils", "checklib")
PUBLIC_CODE = ("checks.py", "probes.py")
RUBRIC_HEADER = ("# The public rubric of {name}, written by `python -m autograder release {name}` from the\n"
                 "# grader's rubric without its hidden items (the autograder grades with the full one).\n")


class ReleaseError(Exception):
    """The release cannot be made (the message says what is wrong)."""


def make_release(name: str, out: Path | None = None, root: Path = KIT_ROOT) -> Path:
    """Write release/<name>/ (or `out`/<name>/) from source/<name>/ and the public files."""
    source = root / "source" / name
    if not (source.is_dir() and any(source.glob("*.ipynb"))):
        raise ReleaseError(f"{source} holds no notebook; expected source/{name}/{name.upper()}.ipynb")
    target = (Path(out) if out else root / "release") / name
    with tempfile.TemporaryDirectory(prefix=f"release-{name}-") as tmp:
        made = _generate_assignment(name, root, Path(tmp))
        _add_packages(made, root)
        _add_public_assignment(made, root, name)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(made, target)
    return target


def _generate_assignment(name: str, root: Path, tmp: Path) -> Path:
    """nbgrader generate_assignment on a copy of source/<name>/ (its regular files only)."""
    course = tmp / "course"
    (course / "source" / name).mkdir(parents=True)
    for path in sorted((root / "source" / name).iterdir()):
        if path.is_file() and not path.is_symlink():
            shutil.copyfile(path, course / "source" / name / path.name)
    shutil.copyfile(root / "nbgrader_config.py", course / "nbgrader_config.py")
    nbgrader = Path(sys.executable).with_name("nbgrader")
    command = [str(nbgrader)] if nbgrader.exists() else [sys.executable, "-m", "nbgrader"]
    proc = subprocess.run([*command, "generate_assignment", name, "--force"], cwd=course,
                          capture_output=True, text=True, timeout=600)
    made = course / "release" / name
    if proc.returncode != 0 or not made.is_dir():
        raise ReleaseError(f"nbgrader generate_assignment {name} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return made


def _add_packages(made: Path, root: Path) -> None:
    for package in SHIPPED_PACKAGES:
        (made / package).mkdir()
        for path in sorted((root / package).glob("*.py")):
            shutil.copyfile(path, made / package / path.name)


def hidden_file_names(folder: Path) -> set[str]:
    """Files of an assignment folder that hidden_checks.py names in a string of its own
    (HIDDEN_ASSET = "expected_conv_out_hidden.pt"): its grader-only data."""
    hidden = folder / "hidden_checks.py"
    if not hidden.is_file():
        return set()
    strings = {node.value for node in ast.walk(ast.parse(hidden.read_text()))
               if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    return {p.name for p in folder.rglob("*") if p.is_file()
            and any(s == p.name or s.endswith("/" + p.name) for s in strings)}


GRADER_ONLY_KEYS = ("hidden_files",)  # rubric keys that name grader-only material


def public_files(folder: Path) -> list[Path]:
    """The files of an assignment folder that students may see: what its release ships
    and all that a sandboxed child's root holds of it. Left out: every .py but
    PUBLIC_CODE (hidden checks, a hidden reference, asset makers), anything named
    hidden, the files the rubric declares grader-only (`hidden_files`), and, as a
    safety net, the files hidden_checks.py names."""
    spec = yaml.safe_load((folder / "rubric.yaml").read_text()) if (folder / "rubric.yaml").is_file() else {}
    declared = set((spec or {}).get("hidden_files", ()))  # check-config verifies these exist
    grader_only = hidden_file_names(folder)
    found = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_symlink() or not path.is_file() or "__pycache__" in rel.parts:
            continue
        if path.suffix == ".py" and rel.as_posix() not in PUBLIC_CODE:
            continue
        if "hidden" in rel.as_posix() or rel.as_posix() in declared or path.name in grader_only:
            continue
        found.append(path)
    return found


def public_rubric(spec: dict) -> dict:
    """The rubric without its hidden items (and without sections left empty), and
    without the keys that name grader-only material (hidden_files, test_set's file)."""
    sections = []
    for section in spec["sections"]:
        items = [item for item in section["items"] if not item.get("hidden")]
        if items:
            sections.append({**section, "items": items})
    public = {**{k: v for k, v in spec.items() if k not in GRADER_ONLY_KEYS}, "sections": sections}
    if isinstance(spec.get("test_set"), dict):  # where the labelled test set lies is the grader's business
        public["test_set"] = {k: v for k, v in spec["test_set"].items() if k != "file"}
    return public


def _add_public_assignment(made: Path, root: Path, name: str) -> None:
    folder = root / "assignments" / name
    dest = made / "assignments" / name
    dest.mkdir(parents=True)
    spec = yaml.safe_load((folder / "rubric.yaml").read_text())
    text = yaml.safe_dump(public_rubric(spec), sort_keys=False, allow_unicode=True, width=120)
    (dest / "rubric.yaml").write_text(RUBRIC_HEADER.format(name=name) + text)
    for path in public_files(folder):
        rel = path.relative_to(folder)
        if rel.as_posix() == "rubric.yaml":
            continue  # written above, without its hidden items
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest / rel)
