"""Reading a notebook: its graded cells, the instructor's setup cell, imports.

Only code cells whose first line is `# AUTOGRADED` are graded; they are matched
to the rubric's graded cells by their nbgrader `grade_id` (kept in the cell
metadata), or by order when a student's editor lost the metadata. Shared by the
grader and the students' self-check, so both read a notebook the same way.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat

TAG = "# AUTOGRADED"


class SubmissionError(Exception):
    """The submission cannot be graded at all (the message says why, for the student)."""


def read_notebook(path: Path) -> nbformat.NotebookNode:
    try:
        return nbformat.read(path, as_version=4)
    except Exception as err:
        raise SubmissionError(f"{path.name} is not a readable notebook ({type(err).__name__}: {str(err)[:200]}); "
                              "save it again from Jupyter or Colab.") from None


def is_graded(cell) -> bool:
    return cell.cell_type == "code" and cell.source.lstrip().startswith(TAG)


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def extract_cells(nb, wanted: list[str]) -> tuple[dict[str, str], list[str]]:
    """Sources of the graded cells named in `wanted` (grade_ids, in notebook order)."""
    graded = [c for c in nb.cells if is_graded(c)]
    problems = []
    by_id: dict[str, str] = {}
    for cell in graded:
        gid = grade_id(cell)
        if gid in wanted:
            if gid in by_id:
                problems.append(f"The graded cell '{gid}' appears twice; only the first copy is graded.")
                continue
            by_id[gid] = cell.source
    if len(by_id) < len(wanted) and len(graded) == len(wanted) and not by_id:
        by_id = {gid: cell.source for gid, cell in zip(wanted, graded)}  # metadata lost: match by order
    for gid in wanted:
        if gid not in by_id:
            problems.append(f"The graded cell '{gid}' was not found: its first line must be exactly '{TAG}'.")
    return by_id, problems


def setup_source(source_notebook: Path, setup_id: str) -> str:
    nb = read_notebook(source_notebook)
    for cell in nb.cells:
        if cell.cell_type == "code" and grade_id(cell) == setup_id:
            return cell.source
    raise LookupError(f"{source_notebook} has no code cell with grade_id {setup_id!r}")



_MAGIC = re.compile(r"^(\s*)([%!].*)$")


def strip_magics(source: str) -> str:
    """Turn IPython-only lines (%magic, !shell) into no-ops, keeping line numbers."""
    return "\n".join(_MAGIC.sub(r"\1pass  # \2", line) for line in source.splitlines())


DYNAMIC_IMPORTS = {"import_module", "__import__", "reload", "find_spec", "spec_from_file_location", "run_module",
                   "run_path", "load_module", "exec_module"}
CODE_FROM_TEXT = {"exec", "eval", "compile", "__import__"}


def imports_in(source: str) -> list[str]:
    """Modules imported anywhere in `source`, by any means (empty if it does not parse):
    import statements; __import__ / importlib.import_module (and the like) with a constant
    name, reported as that module; with a computed name, or code run from a string
    (exec, eval, compile), or a module taken from sys.modules, reported as the construct
    itself (e.g. "importlib.import_module(...)"), which no allow-list names."""
    try:
        tree = ast.parse(strip_magics(source))
    except SyntaxError:
        return []
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            first = node.args[0] if node.args else None
            if called in DYNAMIC_IMPORTS and isinstance(first, ast.Constant) and isinstance(first.value, str) \
                    and called in ("import_module", "__import__"):
                names.append(first.value)
            elif called in DYNAMIC_IMPORTS or (isinstance(func, ast.Name) and called in CODE_FROM_TEXT):
                names.append(f"{ast.unparse(func)}(...)")
        elif isinstance(node, ast.Attribute) and node.attr == "modules" and isinstance(node.value, (ast.Name, ast.Attribute)) \
                and (node.value.id if isinstance(node.value, ast.Name) else node.value.attr) == "sys":
            names.append("sys.modules")  # also through another module, e.g. os.sys.modules
    return names


def disallowed_imports(source: str, allowed: list[str]) -> list[str]:
    def ok(name: str) -> bool:
        return any(name == a or name.startswith(a + ".") for a in allowed)
    return sorted({n for n in imports_in(source) if not ok(n)})


def find_file(folder: Path, name: str, depth: int = 2) -> Path | None:
    """`name` at the top of `folder`, or in a subfolder (students zip folders too).
    A name with a folder in it (results/run.json) is also found without its folder,
    as a zip that flattened it holds it."""
    for pattern in dict.fromkeys([name, Path(name).name]):
        for level in range(depth + 1):
            hits = sorted(p for p in folder.glob("/".join(["*"] * level + [pattern]))
                          if p.is_file() and "__MACOSX" not in p.parts)
            if hits:
                return hits[0]
    return None


def find_required(folders: list[Path], entry: str | dict) -> tuple[Path, str] | None:
    """A required file (a rubric `required_files` entry, or just its name) and the name it
    was found under: its own name in any of `folders` (searched in order, as find_file
    does), else one of the entry's `also` names (names the course itself asked for or
    accepted, e.g. a run name its notebook misspelt). None if neither is there."""
    entry = {"name": entry} if isinstance(entry, str) else entry
    for name in [entry["name"], *entry.get("also", ())]:
        for folder in folders:
            found = find_file(folder, name)
            if found is not None:
                return found, name
    return None
