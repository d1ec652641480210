"""Grading a whole class: find the submissions, grade them in parallel, keep going.

    python -m autograder grade-all SUBMISSIONS --assignment hwN --out DIR [--jobs N] [--force] [--dask ADDRESS]

SUBMISSIONS may be laid out three ways; student ids come from the layout:
  - nbgrader:    SUBMISSIONS/submitted/<student>/<assignment>/   (or SUBMISSIONS is `submitted/`)
  - Gradescope:  an "export submissions" folder: submission_metadata.yml + submission_<id>/ folders
  - plain:       SUBMISSIONS/<student>.zip, <student>.ipynb or <student>/ (a folder)

For each student the batch writes DIR/<student>/results.json (Gradescope format),
feedback.md and feedback.html; at the end DIR/gradebook.csv and gradebook.xlsx.
A student's results.json is written atomically and only when their grading is
complete, so it is the whole of the batch's state: a killed batch, restarted,
grades exactly the students without one (or whose submission changed since),
and the gradebook is rebuilt from those files, so nothing is lost or counted twice.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import yaml

from checklib.assignment import Assignment, load_assignment
from .container import IsolationUnavailable, missing_mechanisms
from .pipeline import grade
from .reporters import figure_text, gradescope_results, html_feedback, markdown_feedback, write_json
from .sandbox import InfrastructureError, Sandbox, _refusal, hard_cap

RETRY = ("error", "infrastructure error")   # statuses regraded on the next run
RESERVED = {"gradebook.csv", "gradebook.xlsx"}  # files of the batch itself, beside the students' folders
OUTER_SLACK = 180.0                          # seconds an entry may take beyond its sandbox's hard cap (start-up)


@dataclass(frozen=True)
class Entry:
    student: str
    path: Path


# --- finding submissions ----------------------------------------------------------

def _safe_id(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.@-]+", "_", name).strip("._") or "unknown"
    return f"{safe}_student" if safe.lower() in RESERVED else safe


def _unique(entries: list[Entry]) -> list[Entry]:
    """Two submissions whose names make the same id (`ann lee.zip`, `ann_lee.zip`) keep
    both: the later ones get -2, -3, ... (ids compare case-insensitively, as some file systems do)."""
    seen: set[str] = set()
    unique = []
    for e in entries:
        student, n = e.student, 1
        while student.lower() in seen:
            n += 1
            student = f"{e.student}-{n}"
        seen.add(student.lower())
        unique.append(Entry(student, e.path))
    return unique


def discover(root: Path, assignment: str) -> list[Entry]:
    """The submissions under `root`, one per student, in a stable order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder of submissions")
    submitted = root / "submitted" if (root / "submitted").is_dir() else root
    nbgrader = [d / assignment for d in sorted(submitted.iterdir()) if (d / assignment).is_dir()]
    if nbgrader:
        return _unique([Entry(_safe_id(d.parent.name), d) for d in nbgrader])
    if (root / "submission_metadata.yml").is_file():
        return _unique(_gradescope_export(root))
    entries = []
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or path.name in ("__MACOSX",):
            continue
        student = path.stem if path.is_file() else path.name
        entries.append(Entry(_safe_id(student), path))
    return _unique(entries)


def _gradescope_export(root: Path) -> list[Entry]:
    """Gradescope's export: submission_metadata.yml maps submission_<id> to its submitters."""
    meta = yaml.safe_load((root / "submission_metadata.yml").read_text()) or {}
    entries = []
    for folder, info in sorted(meta.items()):
        submitters = (info or {}).get(":submitters") or (info or {}).get("submitters") or []
        people = [s.get(":sid") or s.get(":email") or s.get(":name") for s in submitters if isinstance(s, dict)]
        student = "+".join(str(p) for p in people if p) or folder
        if (root / folder).exists():
            entries.append(Entry(_safe_id(student), root / folder))
    return entries


def fingerprint(path: Path) -> str:
    """A hash of a submission's bytes (a file, or every file of a folder)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


# --- grading one student --------------------------------------------------------------

def grade_entry(entry: Entry, assignment: Assignment, sandbox: Sandbox) -> dict:
    """Grade one submission; never raises. Returns the files to write, as text."""
    start = time.monotonic()
    try:
        report = grade(entry.path, assignment, sandbox)
        results = gradescope_results(report)
        feedback_md, feedback_html = markdown_feedback(report, entry.student), html_feedback(report, entry.student)
        status = "graded" if not report.notes else "graded with problems"
    except IsolationUnavailable:
        raise  # fail closed: the whole batch stops, with the reason
    except Exception as err:  # the grader or the machine broke on this submission: record it, go on
        infrastructure = isinstance(err, InfrastructureError)
        status = "infrastructure error" if infrastructure else "error"
        reason = (f"Not graded: the grading machine failed while grading this submission ({err}); it is graded "
                  "again on the next grade-all run." if infrastructure else
                  f"The autograder could not grade this submission ({type(err).__name__}: {err}).")
        results = {"score": 0, "execution_time": round(time.monotonic() - start, 3), "output": reason,
                   "output_format": "text", "visibility": "visible", "stdout_visibility": "hidden",
                   "extra_data": {"error": traceback.format_exc()[-2000:]}, "tests": [], "leaderboard": []}
        feedback_md = f"# Feedback: {assignment.name} for {entry.student}\n\n> {reason}\n"
        feedback_html = f"<p>{reason}</p>"
    results["extra_data"].update(student=entry.student, status=status, submission=str(entry.path),
                                 fingerprint=fingerprint(entry.path) if entry.path.exists() else "")
    return {"results": results, "feedback.md": feedback_md, "feedback.html": feedback_html}


def write_entry(out: Path, entry: Entry, files: dict) -> None:
    folder = out / entry.student
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "feedback.md").write_text(files["feedback.md"])
    (folder / "feedback.html").write_text(files["feedback.html"])
    write_json(files["results"], folder / "results.json")  # last: its presence means "done"


def is_done(out: Path, entry: Entry) -> bool:
    path = out / entry.student / "results.json"
    if not path.is_file():
        return False
    try:
        extra = json.loads(path.read_text())["extra_data"]
    except (ValueError, KeyError, TypeError):
        return False
    # A grader or machine failure is retried; a graded submission only if it changed since.
    return extra.get("status") not in RETRY and extra.get("fingerprint") == fingerprint(entry.path)


# --- the batch ----------------------------------------------------------------------------

def grade_all(root: Path, assignment_name: str, out: Path, jobs: int = 1, force: bool = False,
              dask_address: str | None = None, progress: bool = True, unsafe_no_isolation: bool = False) -> list[dict]:
    """Grade every submission under `root` that is not graded yet; return the gradebook rows.
    Raises IsolationUnavailable before grading anything when the sandbox cannot isolate here."""
    from tqdm.auto import tqdm

    missing = [] if unsafe_no_isolation or dask_address else missing_mechanisms()
    if missing:
        raise IsolationUnavailable(_refusal(missing))
    assignment = load_assignment(assignment_name)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entries = discover(root, assignment_name)
    todo = [e for e in entries if force or not is_done(out, e)]
    bar = tqdm(total=len(entries), initial=len(entries) - len(todo), desc=f"grading {assignment_name}",
               unit="submission", disable=not progress)
    failed = 0

    def finished(entry, files):
        nonlocal failed
        write_entry(out, entry, files)
        failed += files["results"]["extra_data"]["status"] in RETRY
        bar.update(1)
        bar.set_postfix(done=bar.n, failed=failed)

    # The children must not read other students' submissions: the class folder is hidden from them.
    if dask_address:
        from .dask_backend import grade_with_dask
        grade_with_dask(dask_address, todo, assignment_name, finished, hide=(Path(root).resolve(),))
    else:
        _grade_locally(todo, assignment, max(1, jobs), finished, hide=(Path(root).resolve(),),
                       unsafe_no_isolation=unsafe_no_isolation)
    bar.close()
    rows = gradebook_rows(out, entries, assignment)
    write_gradebook(rows, out)
    return rows


def _grade_locally(todo: list[Entry], assignment: Assignment, jobs: int, finished, hide=(),
                   unsafe_no_isolation: bool = False) -> None:
    """`jobs` threads, each with its own sandbox (a zygote process): the work itself
    happens in the sandboxes' child processes, so threads suffice here. Each entry has an
    outer cap (its sandbox's hard cap plus start-up): past it the sandbox is killed and
    the entry is recorded as an infrastructure error, regraded on the next run."""
    local = threading.local()
    sandboxes: list[Sandbox] = []
    lock = threading.Lock()
    outer_cap = hard_cap(assignment.limits, len(assignment.checks)) + OUTER_SLACK

    def work(entry):
        if getattr(local, "sandbox", None) is None:
            local.sandbox = Sandbox(hide=hide, unsafe_no_isolation=unsafe_no_isolation)
            with lock:
                sandboxes.append(local.sandbox)
        watchdog = threading.Timer(outer_cap, local.sandbox.kill)
        watchdog.start()
        try:
            files = grade_entry(entry, assignment, local.sandbox)
        finally:
            watchdog.cancel()
        if files["results"]["extra_data"]["status"] in RETRY:  # the sandbox may be broken: start afresh
            local.sandbox.close()
            local.sandbox = None
        return files

    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(work, e): e for e in todo}
            for future in as_completed(futures):
                finished(futures[future], future.result())
    finally:
        for sb in sandboxes:
            sb.close()


# --- gradebook ----------------------------------------------------------------------------------

def gradebook_rows(out: Path, entries: list[Entry], assignment: Assignment) -> list[dict]:
    """One row per student, from the results.json files (the batch's only state).
    `flags` lists what a TA must look at (rule violations, tampering, self-reported
    results that the notebook does not show), "; "-separated; `rule_violations` the rules
    broken, each with the points it took off (e.g. "rules.imports (-10)"); `pending` the
    points still to be graded by hand."""
    sections = list(dict.fromkeys(item.section for item in assignment.items))
    rows = []
    for entry in entries:
        path = out / entry.student / "results.json"
        row = {"student": entry.student}
        if not path.is_file():
            rows.append({**row, "status": "not graded", **{s: None for s in sections}, "total": None,
                         "flags": "", "rule_violations": ""})
            continue
        data = json.loads(path.read_text())
        extra = data.get("extra_data", {})
        section_scores = extra.get("sections", {})
        row.update({s: section_scores.get(s, {}).get("score", 0.0) for s in sections})
        row.update(total=data.get("score", 0), max_score=extra.get("max_score"),
                   pending=sum(extra.get("pending", {}).values()),
                   grading_seconds=data.get("execution_time"), status=extra.get("status", "graded"),
                   flags="; ".join(extra.get("flags", [])),
                   rule_violations="; ".join(f"{rule} ({points:g})" for rule, points in extra.get("rule_violations", {}).items()),
                   reason="" if extra.get("status") == "graded" else data.get("output", "")[:300])
        row.update({column["name"]: column["value"] for column in data.get("leaderboard", [])})
        rows.append(row)
    return rows


def leaderboard_table(rows: list[dict], assignment: Assignment) -> str:
    """The rubric's leaderboard over the class, ranked by its first column (its order),
    as Gradescope shows it: students without a measured first column come last."""
    columns = [c["name"] for c in assignment.leaderboard]
    if not columns:
        return ""
    first, descending = columns[0], assignment.leaderboard[0].get("order", "desc") == "desc"
    ranked = sorted(rows, key=lambda r: (r.get(first) is None, -(r.get(first) or 0) if descending else (r.get(first) or 0)))
    width = max([len(r["student"]) for r in rows] + [7])
    lines = [f"{'rank':>4}  {'student':<{width}}  " + "  ".join(f"{c:>16}" for c in columns)]
    for n, r in enumerate(ranked, start=1):
        cells = ["-" if r.get(c) is None else figure_text(r[c]) for c in columns]
        lines.append(f"{n:>4}  {r['student']:<{width}}  " + "  ".join(f"{v:>16}" for v in cells))
    return "\n".join(lines)


def write_gradebook(rows: list[dict], out: Path) -> None:
    import pandas as pd

    table = pd.DataFrame(rows).set_index("student")
    table.to_csv(out / "gradebook.csv")
    table.to_excel(out / "gradebook.xlsx")


def gradebook_table(rows: list[dict]) -> str:
    """The gradebook as a plain-text table for the terminal."""
    import pandas as pd

    table = pd.DataFrame(rows).set_index("student")
    keep = [c for c in table.columns if c not in ("reason", "max_score", "flags")]
    if "flags" in table.columns:  # the terminal shows whether a student is flagged; the files say why
        table = table.assign(flagged=table["flags"].fillna("").astype(bool).map({True: "yes", False: ""}))
        keep.append("flagged")
    return table[keep].to_string(float_format=lambda v: f"{v:g}")
