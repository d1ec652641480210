"""Build a homework submission: `make submission`, or on Colab `!python -m hw_utils.submit`.

    python -m hw_utils.submit [--assignment hw4] [--notebook HW4.ipynb] [--pdf-engine auto|chromium|playwright|latex]
                              [--no-checks] [--no-zip] [--force]

In order, it
  1. checks the notebook: valid, saved after its last run, '# AUTOGRADED' cells
     intact and not duplicated, no new imports in them, every code cell run in
     order without errors;
  2. runs the public checks of the assignment (the same check definitions the
     autograder uses; hidden checks are not in the release) and prints a table;
  3. collects the files the assignment asks for, saying how to make a missing one;
  4. writes HWN_submission.zip (files at its root) and HWN.pdf (no LaTeX needed).
Problems marked ✗ stop it before anything is written (override with --force);
those marked ! are warnings.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Finding:
    level: str    # "error" stops the submission, "warning" does not
    message: str


def kit_root(start: Path) -> Path:
    """The folder holding assignments/ (a release folder, or the kit itself)."""
    for folder in [start, *start.parents, HERE.parent]:
        if (folder / "assignments").is_dir():
            return folder
    raise SystemExit("cannot find the assignment's files (an assignments/ folder next to hw_utils/)")


# --- 1. the notebook -------------------------------------------------------------------

def _timestamps(nb) -> list[dt.datetime]:
    """When cells last ran, as Jupyter (metadata.execution) or Colab (executionInfo) recorded it."""
    stamps = []
    for cell in nb.cells:
        meta = cell.get("metadata", {})
        idle = meta.get("execution", {}).get("iopub.status.idle")
        if idle:
            try:
                stamps.append(dt.datetime.fromisoformat(idle.replace("Z", "+00:00")))
            except ValueError:
                pass
        millis = meta.get("executionInfo", {}).get("timestamp")
        if isinstance(millis, (int, float)):
            stamps.append(dt.datetime.fromtimestamp(millis / 1000, dt.timezone.utc))
    return stamps


def check_saved(path: Path, nb) -> list[Finding]:
    stamps = _timestamps(nb)
    if not stamps:
        return []
    last_run = max(stamps)
    saved = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc)
    if saved < last_run - dt.timedelta(seconds=2):
        return [Finding("warning", f"{path.name} on disk is older than your last cell run ({last_run:%Y-%m-%d %H:%M} UTC): "
                                   "save the notebook (Ctrl+S) so the submission holds your latest work.")]
    return []


def check_execution(nb) -> list[Finding]:
    """Every code cell run, in order, without errors."""
    findings, last, unrun, errors = [], 0, [], []
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        count = cell.get("execution_count")
        if count is None:
            unrun.append(number)
            continue
        if count <= last:
            findings.append(Finding("warning", f"cell {number} ran before the cell above it (run counts {last} then {count}): "
                                               "restart the kernel and run all cells from the top."))
        last = max(last, count)
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                errors.append(f"cell {number} ({output.get('ename', 'Error')})")
    if unrun:
        findings.append(Finding("warning", f"code cells not run: {', '.join(map(str, unrun[:15]))}"
                                           f"{' ...' if len(unrun) > 15 else ''} (the PDF will miss their output)."))
    if errors:
        findings.append(Finding("warning", f"cells that ended with an error: {', '.join(errors[:10])}."))
    return findings


def check_notebook(path: Path, assignment) -> tuple[object, list[Finding]]:
    from checklib import cells as notebook

    if not path.is_file():
        return None, [Finding("error", f"{path} not found: save the notebook next to this folder's files "
                                       "(on Colab: File > Download > .ipynb, then upload it here).")]
    try:
        nb = notebook.read_notebook(path)
    except notebook.SubmissionError as err:
        return None, [Finding("error", str(err))]
    findings = check_saved(path, nb)
    cells, problems = notebook.extract_cells(nb, list(assignment.graded_cells))
    for problem in problems:
        level = "warning" if "appears twice" in problem else "error"
        findings.append(Finding(level, problem + " Copy the cell back from the original notebook if needed."))
    for gid, source in cells.items():
        bad = notebook.disallowed_imports(source, list(assignment.allowed_imports))
        if bad:
            findings.append(Finding("error", f"the graded cell '{gid}' imports {', '.join(bad)}; imports are only allowed "
                                             "in the first cell, and the autograder reports this as a rule violation."))
    return nb, findings + check_execution(nb)


# --- 3. the files ------------------------------------------------------------------------

def collect_files(folder: Path, assignment) -> tuple[list[Path], list[Finding]]:
    files, findings = [], []
    for spec in assignment.required_files:
        path = folder / spec["name"]
        if path.is_file():
            files.append(path)
        else:
            findings.append(Finding("error", f"{spec['name']} is missing. {spec.get('how', '')}".strip()))
    return files, findings


def _listing(folder: Path, files: list[Path], shown: int = 8) -> str:
    names = [f.relative_to(folder).as_posix() for f in files]
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def write_zip(zip_path: Path, folder: Path, files: list[Path]) -> None:
    """The zip the autograder reads: each file under its path inside `folder`
    (results/run.json stays in results/), uncompressed, written atomically."""
    import zipfile

    from hw_utils.io import atomic_write

    with atomic_write(zip_path, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
        for path in files:
            zf.write(path, arcname=path.relative_to(folder).as_posix())


# --- 2. the public checks ------------------------------------------------------------------

def run_public_checks(folder: Path, assignment) -> str:
    from autograder.pipeline import grade
    from autograder.reporters import text_table
    from autograder.sandbox import Sandbox

    with Sandbox() as sandbox:
        report = grade(folder, assignment, sandbox)
    return text_table(report) + "\n(public checks only: the autograder also runs hidden ones, and the conclusion is graded by hand)"


# --- all together ---------------------------------------------------------------------------

def _print(findings: list[Finding]) -> None:
    for f in findings:
        print(f"  {'✗' if f.level == 'error' else '!'} {f.message}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hw_utils.submit", description="Check and package a homework submission.")
    parser.add_argument("--assignment", help="e.g. hw4 (default: the only one in assignments/)")
    parser.add_argument("--notebook", help="the notebook (default: the assignment's, e.g. HW4.ipynb, here)")
    parser.add_argument("--pdf-engine", default="auto", choices=("auto", "chromium", "playwright", "latex"))
    parser.add_argument("--no-checks", action="store_true", help="skip running the public checks")
    parser.add_argument("--no-zip", action="store_true", help="only check; write no zip or PDF")
    parser.add_argument("--force", action="store_true", help="write the zip and PDF despite ✗ problems")
    args = parser.parse_args(argv)

    from checklib.assignment import available, load_assignment
    from hw_utils.pdf import PdfEngineMissing, notebook_to_pdf

    folder = Path(args.notebook).resolve().parent if args.notebook else Path.cwd()
    root = kit_root(folder)
    names = available(root)
    name = args.assignment or (names[0] if len(names) == 1 else None)
    if name not in names:
        print(f"error: say which assignment with --assignment (one of: {', '.join(names)})", file=sys.stderr)
        return 2
    assignment = load_assignment(name, root=root)
    nb_path = Path(args.notebook).resolve() if args.notebook else folder / assignment.notebook

    print(f"1. Notebook {nb_path.name}")
    nb, findings = check_notebook(nb_path, assignment)
    _print(findings) if findings else print("  ✓ valid, graded cells intact, every cell run in order")

    print("2. Public checks")
    if args.no_checks or nb is None:
        print("  (skipped)")
    else:
        print("\n".join("  " + line for line in run_public_checks(folder, assignment).splitlines()))

    print("3. Files")
    files, missing = collect_files(folder, assignment)
    findings += missing
    _print(missing) if missing else print(f"  ✓ {_listing(folder, files)}")

    errors = [f for f in findings if f.level == "error"]
    if args.no_zip:
        return 1 if errors else 0
    if errors and not args.force:
        print(f"\nNothing written: fix the {len(errors)} problem(s) marked ✗ above (or pass --force).")
        return 1
    print("4. Submission")
    zip_path = folder / assignment.submission_zip
    write_zip(zip_path, folder, files)
    print(f"  ✓ wrote {zip_path.name}: {_listing(folder, files)}")
    pdf_path = nb_path.with_suffix(".pdf")
    try:
        engine = notebook_to_pdf(nb_path, pdf_path, args.pdf_engine)
    except PdfEngineMissing as err:
        print(f"  ✗ no PDF written. {err}")
        return 1
    print(f"  ✓ wrote {pdf_path.name} (with {engine})")
    print(f"\nUpload {zip_path.name} to the code assignment and {pdf_path.name} to the PDF assignment on Gradescope.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
