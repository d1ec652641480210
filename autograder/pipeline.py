"""The grading pipeline, in the order its stages run (written here once):

    notebook  -> open the submission, pull out the '# AUTOGRADED' cells
    sandbox   -> run the setup cell and those cells in a limited child process
    probes    -> in that child, measure the student's objects as plain data
    scoring   -> judge the measurements here, in the grader, and resolve points
    reporters -> results.json for Gradescope, a table, feedback (see reporters.py)
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from checklib import cells, job, scoring
from checklib.assignment import Assignment
from checklib.checks import Verdict

from . import crosscheck, notebook, static
from .sandbox import UNSAFE_NOTE, RunResult, Sandbox, scratch_dir

STAGES = ("notebook", "sandbox", "probes", "scoring", "reporters")


@dataclass
class Report:
    assignment: str
    submission: str
    results: list[scoring.ItemResult]
    execution_time: float
    output: str = ""                                   # what the student's code printed
    notes: list[str] = field(default_factory=list)     # problems with the submission as a whole
    incidents: list[str] = field(default_factory=list)
    isolation: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)  # for a TA: rule violations, tampering, mismatches
    accepted: list[str] = field(default_factory=list)  # for the student: what was accepted as the course did

    @property
    def score(self) -> float:
        return scoring.total(self.results)[0]

    @property
    def max_score(self) -> float:
        return scoring.total(self.results)[1]


def grade(path: Path, assignment: Assignment, sandbox: Sandbox) -> Report:
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="submission-", dir=scratch_dir()) as tmp:
        try:
            sub = notebook.open_submission(Path(path), Path(tmp), assignment.notebook, list(assignment.graded_cells),
                                           list(assignment.required_files))
            if sub.notebook is None:  # nothing to grade: one message, not one per check
                raise cells.SubmissionError(" ".join(sub.problems))
        except cells.SubmissionError as err:
            verdicts = {i.id: Verdict(False, str(err)) for i in assignment.items}
            return Report(assignment.name, str(path), scoring.resolve(list(assignment.items), verdicts),
                          time.monotonic() - start, notes=[str(err)])
        findings = scan_cells(sub, assignment)
        run = _run_in_sandbox(sub, assignment, sandbox)
        rules = job.judge_rules(sub.problems, sub.cells, assignment)
        verdicts = {**rules, **judge_tampering(findings, job.judge_checks(assignment, sub.cells, sub.files, run))}
        mismatches = crosscheck.mismatches(assignment.cross_checks, sub.notebook, sub.files)
    results = scoring.resolve(list(assignment.items), verdicts)
    flags = [f"tampering: {f}" for f in findings] + list(run.flags) + mismatches
    flags += [f"rule: {v.message}" for v in rules.values() if not v.passed]
    incidents = ([UNSAFE_NOTE] if UNSAFE_NOTE in run.isolation else []) + list(run.incidents)  # shown in the feedback too
    return Report(assignment.name, str(path), results, time.monotonic() - start, output=run.output,
                  notes=list(sub.problems), incidents=incidents, isolation=run.isolation, flags=flags,
                  accepted=list(sub.accepted))


def _run_in_sandbox(sub: notebook.Submission, assignment: Assignment, sandbox: Sandbox) -> RunResult:
    to_run, probes = job.plan(assignment, sub.cells, sub.files)
    files = {name: p for name, p in sub.files.items() if name != assignment.notebook}
    return sandbox.run(to_run, probes, assignment.probes_path, files, assignment.limits)


def scan_cells(sub, assignment: Assignment) -> list[static.Finding]:
    """Tampering constructs in the graded cells, read statically (see `static.py`)."""
    protected = static.module_names(assignment.setup_source)
    return [f for gid, src in sub.cells.items() for f in static.scan(gid, src, protected)]


def judge_tampering(findings: list[static.Finding], verdicts: dict[str, Verdict]) -> dict[str, Verdict]:
    """The rule for a cell that reaches into the grading process: no points for any
    check measured in the sandbox. Why all of them: the cells run first and every probe
    runs afterwards in that same process, so such code can change any measurement, and
    which ones it did change cannot be known. Checks that failed keep their own message."""
    if not findings:
        return verdicts
    listed = "; ".join(str(f) for f in findings[:5]) + ("; ..." if len(findings) > 5 else "")
    why = (f"Not graded automatically: your graded cells contain code that can tamper with grading ({listed}). "
           "Every automatic check measures your code in the process these cells ran in, so none of them can be "
           "trusted and they earn no points; a TA will review your submission.")
    return {cid: v if not v.passed else Verdict(False, why) for cid, v in verdicts.items()}
