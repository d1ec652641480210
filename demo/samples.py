"""What every homework's sample submissions share: a notebook written from the
source (the reference solution) or the release (the blank one), with edits
applied to its graded cells, and zipping a submission folder."""
from __future__ import annotations

import shutil
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]


def edit_cells(nb, edits: dict) -> None:
    """Apply edits {grade_id: [(old, new), ...]} to the graded cells of `nb`."""
    for cell in nb.cells:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        for old, new in edits.get(gid, []):
            if old not in cell.source:
                raise ValueError(f"sample edit not applicable to cell {gid!r}: {old!r}")
            cell.source = cell.source.replace(old, new)


def write_notebook(source: Path, folder: Path, edits: dict | None = None, notebook_edit=None) -> Path:
    """Copy notebook `source` into `folder` with `edits` (see edit_cells) and an
    optional function applied to the whole notebook."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(source, as_version=4)
    edit_cells(nb, edits or {})
    if notebook_edit:
        notebook_edit(nb)
    path = folder / Path(source).name
    nbformat.write(nb, path)
    return path


def copy_release_notebook(release: Path, folder: Path) -> Path:
    """The untouched student notebook, as submitted without any work."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(release, folder / Path(release).name)
    return folder


def copy_release_folder(release_notebook: Path, dest: Path) -> Path:
    """A student's copy of a release folder (hw_utils/, the public checks, the
    Makefile) without the notebook, which the caller writes."""
    dest = Path(dest)
    shutil.copytree(Path(release_notebook).parent, dest,
                    ignore=shutil.ignore_patterns(Path(release_notebook).name, "__pycache__"))
    return dest


def zip_folder(folder: Path, zip_path: Path) -> Path:
    """Zip every file of `folder` under its path inside it (results/x.json stays in results/)."""
    from hw_utils.submit import write_zip

    write_zip(Path(zip_path), Path(folder), sorted(p for p in Path(folder).rglob("*") if p.is_file()))
    return zip_path
