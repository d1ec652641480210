"""Stage 1, notebook: open a submission and pull out the cells to grade.

A submission is a zip, a folder, or a bare .ipynb. Only code cells whose first
line is `# AUTOGRADED` are graded; they are matched to the rubric's graded
cells by their nbgrader `grade_id` (kept in the cell metadata), or by order
when a student's editor lost the metadata. The setup (imports) cell always
comes from the instructor's source notebook, never from the student's copy.
"""
from __future__ import annotations

import ast
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

TAG = "# AUTOGRADED"
MAX_UNZIPPED_BYTES = 512 * 2**20
MAX_MEMBERS = 2000


class SubmissionError(Exception):
    """The submission cannot be graded at all (the message says why, for the student)."""


@dataclass
class Submission:
    folder: Path                                   # where the submitted files lie
    notebook: nbformat.NotebookNode | None = None
    cells: dict[str, str] = field(default_factory=dict)   # grade_id -> source
    files: dict[str, Path] = field(default_factory=dict)  # required file name -> path
    problems: list[str] = field(default_factory=list)     # notebook-level problems


def unpack(path: Path, into: Path) -> Path:
    """The folder holding the submission's files: `path` itself, its parent for a
    bare notebook, or `into` after a checked extraction of a zip."""
    path = Path(path)
    if not path.exists():
        raise SubmissionError(f"{path} does not exist.")
    if path.is_dir():
        return path
    if path.suffix == ".ipynb":
        return path.parent
    if not zipfile.is_zipfile(path):
        raise SubmissionError(f"{path.name} is neither a zip file, a folder nor a notebook (.ipynb).")
    with zipfile.ZipFile(path) as zf:
        members = zf.infolist()
        if len(members) > MAX_MEMBERS or sum(m.file_size for m in members) > MAX_UNZIPPED_BYTES:
            raise SubmissionError(f"{path.name} is too large once unzipped; submit only the files the assignment asks for.")
        for m in members:
            target = (into / m.filename).resolve()
            if not target.is_relative_to(into.resolve()) or m.filename.startswith("/"):
                raise SubmissionError(f"{path.name} contains a file with an unsafe path: {m.filename!r}.")
        try:
            zf.extractall(into)
        except (zipfile.BadZipFile, OSError, RuntimeError) as err:
            raise SubmissionError(f"{path.name} could not be unzipped: {err}.") from None
    return into


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


def imports_in(source: str) -> list[str]:
    """Top-level module names imported anywhere in `source` (empty if it does not parse)."""
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
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            names.append("__import__")
    return names


def disallowed_imports(source: str, allowed: list[str]) -> list[str]:
    def ok(name: str) -> bool:
        return any(name == a or name.startswith(a + ".") for a in allowed)
    return sorted({n for n in imports_in(source) if not ok(n)})


def open_submission(path: Path, into: Path, notebook_name: str, graded_ids: list[str],
                    required_files: list[str]) -> Submission:
    """A bare notebook is the whole submission: files beside it are not its own
    (in a class folder they belong to other students)."""
    bare = Path(path).suffix == ".ipynb"
    folder = unpack(path, into)
    sub = Submission(folder=folder)
    nb_path = Path(path) if bare else find_file(folder, notebook_name) or find_file(folder, "*.ipynb")
    if nb_path is None:
        sub.problems.append(f"No notebook found: the submission must contain {notebook_name}.")
    else:
        sub.notebook = read_notebook(nb_path)
        sub.cells, problems = extract_cells(sub.notebook, graded_ids)
        sub.problems += problems
        sub.files[notebook_name] = nb_path
    for name in required_files:
        if name == notebook_name or bare:
            continue
        found = find_file(nb_path.parent if nb_path else folder, name) or find_file(folder, name)
        if found is not None:
            sub.files[name] = found
    return sub
