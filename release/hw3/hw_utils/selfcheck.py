"""The students' self-check: the public checks of a homework, run on their notebook.

    python -m hw_utils.selfcheck [--assignment hw4] [--notebook HW4.ipynb]   # prints the table
    from hw_utils.selfcheck import check; check()                          # the same, in a notebook

It uses the grader's own check definitions (checklib/ and assignments/hwN/ as
released; the hidden checks stay with the grader) and nothing of the grader's
engine: no sandbox, no Linux-only call. The graded cells and the probes run in
a plain subprocess of this interpreter (`python -m hw_utils.selfcheck --run
JOB`), in a temporary folder holding copies of the submitted files, stopped
when a step takes longer than the grader would allow (twice its limit, as a
laptop may be slower than the grader). The student's process reports its
measurements as JSON lines in a file; they are judged here, by the same
functions the grader uses (checklib.job), and scored with checklib.scoring.
Nothing here decides a grade: the autograder does, in its sandbox.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SLOWER_LAPTOP = 2.0     # a step may take this many times the grader's limit here
STARTUP_SECONDS = 60.0  # importing torch in a fresh process, on a slow laptop


@dataclass(frozen=True)
class Finding:
    level: str    # "error" stops the submission, "warning" does not
    message: str


@dataclass
class Run:
    """What came back from the student's process, in the form checklib.job expects."""
    cells: dict = field(default_factory=dict)    # cell id -> {"ok", "error"}
    probes: dict = field(default_factory=dict)   # probe key -> {"ok", "data" | "error"}
    output: str = ""                             # what the student's code printed (the end of it)


@dataclass
class SelfCheck:
    assignment: str
    results: list        # checklib.scoring.ItemResult, in rubric order
    notes: list[str]     # problems with the notebook as a whole
    seconds: float


# --- where the files are -------------------------------------------------------------------

def kit_root(start: Path) -> Path:
    """The folder holding assignments/ (a release folder, or the kit itself)."""
    for folder in [start, *start.parents, HERE.parent]:
        if (folder / "assignments").is_dir():
            return folder
    raise SystemExit("cannot find the assignment's files (an assignments/ folder next to hw_utils/)")


def find_notebook(folder: Path, expected: str) -> tuple[Path | None, list[Finding]]:
    """The notebook to check, with the grader's tolerance: `expected` (e.g. HW4.ipynb), else
    a copy of it ('HW4 (1).ipynb' after a download, 'Copy of HW4.ipynb' on Colab), else the
    folder's only notebook (the grader, too, takes a submission's notebook by any name)."""
    exact = folder / expected
    if exact.is_file():
        return exact, []
    others = sorted(p for p in folder.glob("*.ipynb") if not p.name.endswith(".nbconvert.ipynb"))
    stem = Path(expected).stem.lower()
    copies = [p for p in others if stem in p.stem.lower()]
    if copies or len(others) == 1:
        found = (copies or others)[0]
        guess = "Did you mean it? " if copies else "It is the only notebook here. "
        return found, [Finding("warning", f"{expected} not found; checking {found.name} instead. {guess}"
                                          f"The autograder accepts it too, but rename it to {expected} to be safe.")]
    listing = f" This folder has: {', '.join(p.name for p in others)}." if others else ""
    return None, [Finding("error", f"{expected} not found in {folder}.{listing} Save the notebook here under that name "
                                   "(on Colab: File > Download > .ipynb, then upload it next to this folder's files).")]


def find_files(folder: Path, assignment) -> tuple[dict[str, Path], list[Finding]]:
    """The required files (not the notebook), found as the grader finds them, and a
    'did you mean' for each missing one that has a near miss (model_config.yml)."""
    from checklib.cells import find_required

    files, findings = {}, []
    present = [p.relative_to(folder).as_posix() for p in folder.rglob("*")
               if p.is_file() and not any(part.startswith(".") or part in ("hw_utils", "checklib", "assignments", "data")
                                          for part in p.relative_to(folder).parts)]
    required = {n for spec in assignment.required_files for n in (spec["name"], *spec.get("also", ()))}
    strays = [name for name in present if name not in required]  # a required file is never another's near miss
    for spec in assignment.required_files:
        name = spec["name"]
        if name == assignment.notebook:
            continue
        found = find_required([folder], spec)  # its own name, or a name the course also accepted
        if found is not None:
            files[name] = found[0]
            continue
        close = difflib.get_close_matches(name, strays, n=1, cutoff=0.75)
        hint = f" Did you mean {close[0]}? Rename it to {name}: the autograder looks for that exact name." if close else ""
        findings.append(Finding("error", f"{name} is missing.{hint} {spec.get('how', '')}".rstrip()))
    return files, findings


# --- naming things as the student sees them ------------------------------------------------

def cell_titles(assignment) -> dict[str, str]:
    """grade_id -> the part of the homework that cell belongs to ('1.1 ResNet Block and Model'),
    taken from the rubric section of the first check that runs the cell."""
    section = {item.id: item.section for item in assignment.items}
    titles = {}
    for check in assignment.checks:
        for gid in check.cells:
            if check.id in section:
                titles.setdefault(gid, section[check.id])
    return titles


def name_cells(message: str, titles: dict[str, str]) -> str:
    """Say which part a graded cell belongs to where a message names its grade_id."""
    for gid, title in titles.items():
        message = message.replace(f"cell '{gid}'", f"cell of part {title}")
        message = message.replace(f"<{gid} cell>", f"<cell of part {title}>")
    return message


# --- running the job ---------------------------------------------------------------------

def _read_records(path: Path, offset: int) -> tuple[list[dict], int]:
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1  # a line still being written is read next time
    records = [json.loads(line) for line in data[:end].splitlines() if line.strip()]
    return records, offset + end


def run_in_subprocess(cells: list[dict], probes: list[dict], probes_path: Path, files: dict[str, Path],
                      limits, kit: Path) -> Run:
    """Run the cells, then the probes, in a fresh `python -m hw_utils.selfcheck --run`
    of this interpreter; a probe that runs out of time is reported and the rest run
    in a new process (as the grader does)."""
    run, todo = Run(), list(probes)
    with tempfile.TemporaryDirectory(prefix="selfcheck-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        for name, src in files.items():  # a name may hold a folder, e.g. results/run.json
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, work / name)
        for attempt in range(len(probes) + 1):
            stopped = _run_once(Path(tmp), attempt, cells, todo, probes_path, limits, kit, run)
            todo = [p for p in todo if p["key"] not in run.probes]
            if not todo or stopped is None:
                break
    for probe in todo:
        run.probes.setdefault(probe["key"], {"ok": False, "error": "This check did not run (the checks before it "
                                                                     "stopped the process)."})
    return run


def _run_once(tmp: Path, attempt: int, cells, probes, probes_path, limits, kit: Path, run: Run) -> str | None:
    """One process: returns what it was stopped in (a cell id or probe key), or None."""
    job_path, records_path = tmp / f"job{attempt}.json", tmp / f"records{attempt}.jsonl"
    job_path.write_text(json.dumps({"cells": cells, "probes": probes, "probes_path": str(probes_path),
                                    "records": str(records_path)}))
    records_path.write_bytes(b"")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(kit), *filter(None, [os.environ.get("PYTHONPATH")])]),
           "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    output = open(tmp / f"output{attempt}.txt", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "hw_utils.selfcheck", "--run", str(job_path)], cwd=tmp / "work",
                            env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
    offset, current, kind = 0, None, None
    deadline = time.monotonic() + STARTUP_SECONDS + SLOWER_LAPTOP * limits.cells_timeout
    try:
        while True:
            exited = proc.poll() is not None
            records, offset = _read_records(records_path, offset)
            for record in records:
                event = record["event"]
                if event == "cell_start" and kind != "cells":
                    current, kind = record["id"], "cells"
                elif event == "cell_start":
                    current = record["id"]
                elif event == "cell":
                    run.cells[record["id"]] = {"ok": record["ok"], "error": record.get("error", "")}
                elif event == "start":
                    current, kind = record["key"], "probe"
                    deadline = time.monotonic() + SLOWER_LAPTOP * limits.probe_timeout
                elif event == "result":
                    run.probes[record["key"]] = {"ok": True, "data": record["data"]}
                elif event == "error":
                    run.probes[record["key"]] = {"ok": False, "error": record["error"]}
                elif event == "done":
                    current = None
            if exited:
                if current is not None:  # the process ended in the middle of a step
                    _stopped(run, probes, current, kind, f"the process ended (exit status {proc.returncode}) "
                                                         f"while it ran; its output ends with:\n{_tail(tmp, attempt)}")
                return current
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                limit = limits.cells_timeout if kind != "probe" else limits.probe_timeout
                _stopped(run, probes, current, kind, f"it took more than {SLOWER_LAPTOP * limit:g} s here "
                                                     f"(the autograder allows {limit:g} s)")
                return current or "startup"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        output.close()
        run.output = _tail(tmp, attempt)


def _stopped(run: Run, probes: list[dict], current, kind, reason: str) -> None:
    if kind == "probe":
        run.probes[current] = {"ok": False, "error": f"Checking this stopped: {reason}."}
        return
    for probe in probes:  # cells (or the start) never finished: no probe can run
        run.probes.setdefault(probe["key"], {"ok": False, "error": f"The graded cells could not be run: {reason}."})


def _tail(tmp: Path, attempt: int, size: int = 4000) -> str:
    data = (tmp / f"output{attempt}.txt").read_bytes()
    return data[-size:].decode("utf-8", "replace")


def _child(job_path: str) -> int:
    """Inside the subprocess: run the job, writing one JSON line per record."""
    from checklib.runner import run_job

    job = json.loads(Path(job_path).read_text())
    with open(job["records"], "a", encoding="utf-8") as out:
        def emit(record: dict) -> None:
            out.write(json.dumps(record) + "\n")
            out.flush()
        run_job(job, emit)
    return 0


# --- the whole self-check ------------------------------------------------------------------

def check_notebook_cells(nb, assignment) -> tuple[dict[str, str], list[str]]:
    from checklib.cells import extract_cells

    return extract_cells(nb, list(assignment.graded_cells))


def self_check(folder: Path, assignment, nb_path: Path, kit: Path | None = None) -> SelfCheck:
    """Run the public checks of `assignment` on the notebook `nb_path` and the files beside it."""
    from checklib import job, scoring
    from checklib.cells import SubmissionError, read_notebook, setup_source
    from checklib.checks import Verdict

    start = time.monotonic()
    kit = kit or kit_root(folder)
    titles = cell_titles(assignment)
    files, _ = find_files(folder, assignment)
    files[assignment.notebook] = nb_path
    try:
        nb = read_notebook(nb_path)
    except SubmissionError as err:
        verdicts = {item.id: Verdict(False, str(err)) for item in assignment.items}
        return SelfCheck(assignment.name, scoring.resolve(list(assignment.items), verdicts), [str(err)],
                         time.monotonic() - start)
    cells, problems = check_notebook_cells(nb, assignment)
    if not assignment.setup_source:  # a release reads it from HW4.ipynb; this one may be 'HW4 (1).ipynb'
        try:
            assignment = dataclasses.replace(assignment, setup_source=setup_source(nb_path, assignment.setup_cell))
        except (SubmissionError, LookupError, OSError):
            problems.append(f"The locked setup cell (the first code cell, with the imports) was not found in "
                            f"{nb_path.name}, so the checks ran without it: copy it back from the original notebook.")
    to_run, probes = job.plan(assignment, cells, files)
    others = {name: path for name, path in files.items() if name != assignment.notebook}
    run = run_in_subprocess(to_run, probes, assignment.probes_path, others, assignment.limits, kit)
    verdicts = {**job.judge_rules(problems, cells, assignment), **job.judge_checks(assignment, cells, files, run)}
    results = scoring.resolve(list(assignment.items), verdicts)
    results = [scoring.ItemResult(r.id, r.name, r.section, r.score, r.max_score, r.status,
                                  name_cells(r.output, titles), r.visibility) for r in results]
    return SelfCheck(assignment.name, results, [name_cells(p, titles) for p in problems], time.monotonic() - start)


def report_text(report: SelfCheck, width: int = 100) -> str:
    """Every check with its points; the full message of each one not passed, wrapped."""
    from checklib.scoring import section_totals

    lines = [wrapped for note in report.notes for wrapped in textwrap.wrap(f"! {note}", width, subsequent_indent="  ")]
    sections, section = section_totals(report.results), None
    shown: dict[str, str] = {}  # error text -> the check whose message showed it in full
    for r in report.results:
        if r.section != section:
            section = r.section
            score, top = sections[section]
            lines.append(f"-- {section} ({score:g}/{top:g})")
        lines.append(f"{r.score:>5g}/{r.max_score:<5g}  {r.status:<7}  {r.name}")
        if r.status == "failed" and r.output.strip():
            message, cause = r.output.strip(), _error_part(r.output.strip())
            if cause in shown:  # one mistake, several checks: its traceback is printed once
                message = message[: message.rindex(cause)].rstrip() + f" the same error as for '{shown[cause]}' above."
            elif cause:
                shown[cause] = r.name
            for paragraph in message.splitlines():
                lines += textwrap.wrap(paragraph, width, initial_indent=" " * 16, subsequent_indent=" " * 18,
                                       replace_whitespace=False, drop_whitespace=True) or [""]
    checked = [r for r in report.results if r.status != "pending"]
    pending = [r for r in report.results if r.status == "pending"]
    score, top = sum(r.score for r in checked), sum(r.max_score for r in checked)
    bonus = f" (with {score - top:g} bonus)" if score > top else ""
    footer = [f"TOTAL checked here: {score:g} / {top:g}{bonus}  ({report.seconds:.0f} s)"]
    if pending:
        footer.append(f"PENDING: {sum(r.max_score for r in pending):g} more points graded by hand after the deadline "
                      f"({', '.join(r.name for r in pending)}).")
    footer.append("These are the public checks only: the autograder runs hidden checks too, and it decides the grade.")
    lines += [wrapped for line in footer for wrapped in textwrap.wrap(line, width, subsequent_indent="  ")]
    return "\n".join(lines)


def _error_part(message: str) -> str:
    """The traceback a message quotes (after 'raised an error:'), or '' when it quotes none."""
    marker = "raised an error"
    if marker not in message:
        return ""
    tail = message[message.rindex(marker):]
    return tail[tail.index(":") + 1:] if ":" in tail and len(tail) > 60 else ""


def check(assignment: str | None = None, notebook: str | None = None) -> SelfCheck:
    """In a notebook: run the public checks on the saved notebook and print the table.
    Save the notebook first (Ctrl+S): the saved file is what is checked."""
    from checklib.assignment import available, load_assignment

    folder = Path(notebook).resolve().parent if notebook else Path.cwd()
    root = kit_root(folder)
    names = available(root)
    name = assignment or (names[0] if len(names) == 1 else None)
    if name not in names:
        raise ValueError(f"say which assignment, one of: {', '.join(names)}")
    spec = load_assignment(name, root=root)
    nb_path, findings = (Path(notebook).resolve(), []) if notebook else find_notebook(folder, spec.notebook)
    for f in findings:
        print(f"{'✗' if f.level == 'error' else '!'} {f.message}")
    if nb_path is None:
        raise FileNotFoundError(findings[0].message)
    report = self_check(folder, spec, nb_path, root)
    print(report_text(report))
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hw_utils.selfcheck",
                                     description="Run the public checks of a homework on your notebook.")
    parser.add_argument("--assignment", help="e.g. hw4 (default: the only one in assignments/)")
    parser.add_argument("--notebook", help="the notebook (default: the assignment's, e.g. HW4.ipynb, here)")
    parser.add_argument("--run", metavar="JOB", help=argparse.SUPPRESS)  # inside the subprocess
    args = parser.parse_args(argv)
    if args.run:
        return _child(args.run)
    try:
        check(args.assignment, args.notebook)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
