"""Stage 1, notebook: open a submission and pull out the cells to grade.

A submission is a zip, a folder, or a bare .ipynb. Its graded cells are read
with `checklib.cells` (the same reader the students' self-check uses). The
setup (imports) cell always comes from the instructor's source notebook, never
from the student's copy.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from checklib.cells import SubmissionError, extract_cells, find_file, read_notebook

MAX_UNZIPPED_BYTES = 512 * 2**20
MAX_MEMBERS = 2000


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
        with open(path, "rb") as f:
            looks_zipped = f.read(2) == b"PK"
        if looks_zipped or path.suffix.lower() == ".zip":
            raise SubmissionError(f"{path.name} is a damaged zip file (it cannot be opened, e.g. an interrupted upload "
                                  "or download); make the zip again, check that it opens, and submit it again.")
        raise SubmissionError(f"{path.name} is neither a zip file, a folder nor a notebook (.ipynb).")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise SubmissionError(f"{path.name} is a damaged zip file ({err}); make the zip again and submit it again.") from None
    with zf:
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
