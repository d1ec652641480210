"""Stage 1, notebook: open a submission and pull out the cells to grade.

A submission is a zip, a folder, or a bare .ipynb. Its graded cells are read
with `checklib.cells` (the same reader the students' self-check uses). The
setup (imports) cell always comes from the instructor's source notebook, never
from the student's copy.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from checklib.cells import SubmissionError, extract_cells, find_file, find_required, read_notebook

MAX_UNZIPPED_BYTES = 512 * 2**20
MAX_MEMBERS = 2000
MAX_NOTEBOOK_BYTES = 64 * 2**20   # a notebook is capped before any parser sees it
MAX_NOTEBOOK_CELLS = 5000
MAX_FOLDER_FILES = 5000


@dataclass
class Submission:
    folder: Path                                   # where the submitted files lie
    notebook: nbformat.NotebookNode | None = None
    cells: dict[str, str] = field(default_factory=dict)   # grade_id -> source
    files: dict[str, Path] = field(default_factory=dict)  # required file name -> path
    problems: list[str] = field(default_factory=list)     # notebook-level problems
    accepted: list[str] = field(default_factory=list)     # notes: files found under a name the rubric also accepts


def unpack(path: Path, into: Path) -> Path:
    """The folder holding the submission's files: `path` itself, its parent for a
    bare notebook, or `into` after a checked extraction of a zip."""
    path = Path(path)
    if not path.exists():
        raise SubmissionError(f"{path} does not exist.")
    if path.is_symlink():
        raise SubmissionError(f"{path.name} is a symbolic link; submit the file itself.")
    if path.is_dir():
        _check_folder(path)
        return path
    if path.suffix == ".ipynb":
        return path.parent
    try:
        if not zipfile.is_zipfile(path):
            with open(path, "rb") as f:
                looks_zipped = f.read(2) == b"PK"
            if looks_zipped or path.suffix.lower() == ".zip":
                raise SubmissionError(f"{path.name} is a damaged zip file (it cannot be opened, e.g. an interrupted "
                                      "upload or download); make the zip again, check that it opens, and submit it again.")
            raise SubmissionError(f"{path.name} is neither a zip file, a folder nor a notebook (.ipynb).")
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
            if len(members) > MAX_MEMBERS or sum(m.file_size for m in members) > MAX_UNZIPPED_BYTES:
                raise SubmissionError(f"{path.name} is too large once unzipped; submit only the files the assignment asks for.")
            for m in members:
                target = (into / m.filename).resolve()
                if not target.is_relative_to(into.resolve()) or m.filename.startswith("/"):
                    raise SubmissionError(f"{path.name} contains a file with an unsafe path: {m.filename!r}.")
            zf.extractall(into)
    except SubmissionError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, RuntimeError, ValueError, EOFError, NotImplementedError) as err:
        raise SubmissionError(f"{path.name} is a damaged zip file ({type(err).__name__}: {str(err)[:200]}); "
                              "make the zip again and submit it again.") from None
    return into


def _check_folder(folder: Path) -> None:
    """A submitted folder may hold no symbolic link (it could point at a solution or
    another student's files) and no more than MAX_FOLDER_FILES files."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            if os.path.islink(os.path.join(dirpath, name)):
                raise SubmissionError(f"{folder.name} contains a symbolic link ({os.path.relpath(os.path.join(dirpath, name), folder)}); "
                                      "submit plain files.")
        count += len(filenames)
        if count > MAX_FOLDER_FILES:
            raise SubmissionError(f"{folder.name} holds more than {MAX_FOLDER_FILES} files; submit only the files the assignment asks for.")


def read_capped(nb_path: Path) -> nbformat.NotebookNode:
    """The notebook, refused before parsing when its bytes or cells exceed the caps."""
    if nb_path.is_symlink():
        raise SubmissionError(f"{nb_path.name} is a symbolic link; submit the notebook itself.")
    size = nb_path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        raise SubmissionError(f"{nb_path.name} is {size / 2**20:.0f} MB, more than the {MAX_NOTEBOOK_BYTES // 2**20} MB "
                              "a notebook may be; clear large outputs (Edit > Clear outputs of big cells) and save it again.")
    # An upper bound on the cells without parsing: each cell has one unescaped "cell_type" key.
    cells = nb_path.read_bytes().count(b'"cell_type"')
    if cells > MAX_NOTEBOOK_CELLS:
        raise SubmissionError(f"{nb_path.name} has {cells} cells, more than the {MAX_NOTEBOOK_CELLS} a notebook may have.")
    return read_notebook(nb_path)


def open_submission(path: Path, into: Path, notebook_name: str, graded_ids: list[str],
                    required_files: list[str | dict]) -> Submission:
    """A bare notebook is the whole submission: files beside it are not its own
    (in a class folder they belong to other students)."""
    bare = Path(path).suffix == ".ipynb"
    folder = unpack(path, into)
    sub = Submission(folder=folder)
    nb_path = Path(path) if bare else find_file(folder, notebook_name) or find_file(folder, "*.ipynb")
    if nb_path is None:
        sub.problems.append(f"No notebook found: the submission must contain {notebook_name}.")
    else:
        sub.notebook = read_capped(nb_path)
        sub.cells, problems = extract_cells(sub.notebook, graded_ids)
        sub.problems += problems
        sub.files[notebook_name] = nb_path
    for entry in required_files:  # rubric entries ({name, also}) or names
        name = entry if isinstance(entry, str) else entry["name"]
        if name == notebook_name or bare:
            continue
        found = find_required([nb_path.parent, folder] if nb_path else [folder], entry)
        if found is not None:
            sub.files[name] = found[0]  # delivered to the sandbox under `name`, whatever it was called
            if found[1] != name:
                sub.accepted.append(f"{found[1]} is graded as {name}: the rubric accepts that name too, as the course did.")
    return sub
