"""Build a homework submission: `make submission`, or on Colab `!python -m hw_utils.submit`.

    python -m hw_utils.submit [--assignment hw4] [--notebook HW4.ipynb] [--pdf-engine auto|chromium|playwright|latex]
                              [--no-checks] [--no-zip] [--force]

In order, it
  1. checks the notebook: valid, saved after its last run, '# AUTOGRADED' cells
     intact and not duplicated, no new imports in them, every code cell run in
     order without errors;
  2. runs the public checks of the assignment with hw_utils.selfcheck (the same
     check definitions the autograder uses, in a plain subprocess; no part of the
     grader's engine; hidden checks are not in the release) and prints a table;
  3. collects the files the assignment asks for, saying how to make a missing one;
  4. writes HWN_submission.zip (files at its root) and HWN.pdf (no LaTeX needed).
Problems marked ✗ stop it before anything is written (override with --force);
those marked ! are warnings.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from hw_utils.selfcheck import Finding, find_files, find_notebook, kit_root, report_text, self_check


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


def check_saved(path: Path, nb, files: list[Path] = ()) -> list[Finding]:
    """The notebook on disk holds the latest run: no cell ran after it was saved (when the
    notebook records run times), and no submitted file was written after it was saved
    (the table cell that wrote experiments.xlsx ran, but its output was never saved)."""
    saved = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc)
    stamps = _timestamps(nb)
    if stamps and saved < max(stamps) - dt.timedelta(seconds=2):
        return [Finding("warning", f"{path.name} on disk is older than your last cell run ({max(stamps):%Y-%m-%d %H:%M} UTC): "
                                   "save the notebook (Ctrl+S) so the submission holds your latest work.")]
    newer = [f for f in files if f != path and f.stat().st_mtime > path.stat().st_mtime + 2]
    if newer:
        return [Finding("warning", f"{', '.join(f.name for f in newer[:3])} {'was' if len(newer) == 1 else 'were'} written "
                                   f"after {path.name} was last saved: save the notebook (Ctrl+S) so it holds the "
                                   "outputs of the cells that made them.")]
    return []


def describe_cell(cell, code_number: int) -> str:
    """A code cell as the student finds it: its number among code cells and how it starts."""
    first = next((line.strip() for line in cell.source.splitlines() if line.strip()), "")
    first = first if len(first) <= 50 else first[:47] + "..."
    return f"code cell {code_number} (the one that starts with `{first}`)"


def check_execution(nb) -> list[Finding]:
    """Every code cell run, in order, without errors: one finding per kind of problem."""
    findings, last, unrun, errors, out_of_order = [], 0, [], [], []
    code_number = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        code_number += 1
        if not cell.source.strip():
            continue
        count = cell.get("execution_count")
        if count is None:
            unrun.append(code_number)
            continue
        if count <= last:
            out_of_order.append(describe_cell(cell, code_number))
        last = max(last, count)
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                errors.append(f"{describe_cell(cell, code_number)}: {output.get('ename', 'Error')}")
    if out_of_order:
        more = f" and {len(out_of_order) - 1} more" if len(out_of_order) > 1 else ""
        findings.append(Finding("warning", f"cells ran out of order: {out_of_order[0]} ran before a cell above it{more}. "
                                           "Before submitting, restart the kernel and run all cells from the top "
                                           "(Kernel > Restart & Run All; on Colab Runtime > Restart and run all)."))
    if unrun:
        findings.append(Finding("warning", f"code cells not run: {', '.join(map(str, unrun[:15]))}"
                                           f"{' ...' if len(unrun) > 15 else ''} (counting code cells from the top; "
                                           "the PDF will miss their output)."))
    if errors:
        findings.append(Finding("warning", f"cells that ended with an error: {'; '.join(errors[:10])}."))
    return findings


def check_notebook(path: Path, assignment, files: list[Path] = ()) -> tuple[object, list[Finding]]:
    from checklib import cells as notebook
    from hw_utils.selfcheck import cell_titles, name_cells

    try:
        nb = notebook.read_notebook(path)
    except notebook.SubmissionError as err:
        return None, [Finding("error", str(err))]
    findings = check_saved(path, nb, files)
    titles = cell_titles(assignment)
    cells, problems = notebook.extract_cells(nb, list(assignment.graded_cells))
    for problem in problems:
        level = "warning" if "appears twice" in problem else "error"
        findings.append(Finding(level, name_cells(problem, titles) + " Copy the cell back from the original notebook if needed."))
    for gid, source in cells.items():
        bad = notebook.disallowed_imports(source, list(assignment.allowed_imports))
        if bad:
            findings.append(Finding("error", f"{name_cells(f'the graded cell {gid!r}', titles)} imports {', '.join(bad)}; "
                                             "imports are only allowed in the first cell, and the autograder reports "
                                             "this as a rule violation."))
    return nb, findings + check_execution(nb)


# --- 3. the files ------------------------------------------------------------------------

def collect_files(folder: Path, assignment, nb_path: Path) -> tuple[list[Path], list[Finding]]:
    """The notebook and every required file, in the rubric's order, as the grader finds them."""
    found, findings = find_files(folder, assignment)
    files = []
    for spec in assignment.required_files:
        if spec["name"] == assignment.notebook:
            files.append(nb_path)
        elif spec["name"] in found:
            files.append(found[spec["name"]])
    return files, findings


def _listing(names: list[str], shown: int = 8) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def zip_names(folder: Path, files: list[Path], nb_path: Path, notebook: str) -> list[str]:
    """Each file's name inside the zip: its path inside `folder` (results/run.json stays in
    results/); the notebook under the assignment's name (HW4.ipynb, even if saved as 'HW4 (1).ipynb')."""
    return [notebook if path == nb_path else path.relative_to(folder).as_posix() for path in files]


def write_zip(zip_path: Path, folder: Path, files: list[Path], names: list[str] | None = None) -> None:
    """The zip the autograder reads, uncompressed, written atomically."""
    import zipfile

    from hw_utils.io import atomic_write

    names = names or [path.relative_to(folder).as_posix() for path in files]
    with atomic_write(zip_path, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
        for path, name in zip(files, names):
            zf.write(path, arcname=name)


# --- all together ---------------------------------------------------------------------------

def _print(findings: list[Finding]) -> None:
    import textwrap

    for f in findings:
        print(textwrap.fill(f.message, 100, initial_indent=f"  {'✗' if f.level == 'error' else '!'} ",
                            subsequent_indent="    "))


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
    if args.notebook:
        nb_path, findings = Path(args.notebook).resolve(), []
        if not nb_path.is_file():
            nb_path, findings = None, [Finding("error", f"{args.notebook} not found.")]
    else:
        nb_path, findings = find_notebook(folder, assignment.notebook)

    print(f"1. Notebook {nb_path.name if nb_path else assignment.notebook}")
    nb = None
    if nb_path is not None:
        nb, more = check_notebook(nb_path, assignment, list(find_files(folder, assignment)[0].values()))
        findings += more
    _print(findings) if findings else print("  ✓ valid, graded cells intact, every cell run in order")

    print("2. Public checks")
    if args.no_checks or nb is None:
        print("  (skipped)")
    else:
        report = self_check(folder, assignment, nb_path, root)
        print("\n".join("  " + line for line in report_text(report).splitlines()))

    print("3. Files")
    files, missing = collect_files(folder, assignment, nb_path) if nb_path else ([], [])
    if nb_path is None:
        _, missing = find_files(folder, assignment)
    findings += missing
    listing = _listing(zip_names(folder, files, nb_path, assignment.notebook)) if files else ""
    _print(missing) if missing else print(f"  ✓ {listing}")

    errors = [f for f in findings if f.level == "error"]
    if args.no_zip:
        return 1 if errors else 0
    if errors and not args.force:
        print(f"\nNothing written: fix the {len(errors)} problem(s) marked ✗ above (or pass --force).")
        return 1
    if nb_path is None:
        print("\nNothing written: there is no notebook to submit.")
        return 1
    print("4. Submission")
    zip_path = folder / assignment.submission_zip
    write_zip(zip_path, folder, files, zip_names(folder, files, nb_path, assignment.notebook))
    print(f"  ✓ wrote {zip_path.name}: {listing}")
    pdf_path = folder / Path(assignment.notebook).with_suffix(".pdf").name
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
