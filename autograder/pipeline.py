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
    leaderboard: list[dict] = field(default_factory=list)  # Gradescope's: {"name", "value", "order"} per rubric column

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
        images, labels = _test_images(sub, assignment, Path(tmp))
        run = _run_in_sandbox(sub, assignment, sandbox, images)
        rules = job.judge_rules(sub.problems, sub.cells, assignment)
        checked = job.judge_checks(assignment, sub.cells, sub.files, run, labels)
        verdicts = {**rules, **judge_tampering(findings, checked)}
        mismatches = crosscheck.mismatches(assignment.cross_checks, sub.notebook, sub.files)
    results = scoring.resolve(list(assignment.items), verdicts)
    flags = [f"tampering: {f}" for f in findings] + list(run.flags) + mismatches
    flags += [f"rule: {v.message}" for v in rules.values() if not v.passed]
    flags += [f"{cid}: {v.flag}" for cid, v in checked.items() if v.flag]
    incidents = ([UNSAFE_NOTE] if UNSAFE_NOTE in run.isolation else []) + list(run.incidents)  # shown in the feedback too
    return Report(assignment.name, str(path), results, time.monotonic() - start, output=run.output,
                  notes=list(sub.problems), incidents=incidents, isolation=run.isolation, flags=flags,
                  accepted=list(sub.accepted), leaderboard=leaderboard(assignment, verdicts))


def _test_images(sub: notebook.Submission, assignment: Assignment, tmp: Path):
    """For a rubric with a `test_set`: the grader reads the labelled set, writes the images
    alone, in this submission's secret order, into `tmp` (the child gets a copy under the
    rubric's name) and keeps the labels in that order here. (None, None) without one.
    A missing or unreadable test set stops grading (verified.TestSetError), never a silent 0."""
    if not assignment.test_set:
        return None, None
    from checklib import verified

    if assignment.test_set_path is None:
        raise verified.TestSetError(f"{assignment.name}'s rubric names no test-set file (a student's release cannot verify)")
    images, labels = verified.read_image_set(assignment.test_set_path)
    order = verified.secret_order(assignment.test_set_path, sub.files, len(labels))
    path = verified.write_images(images[order], tmp / "grader" / "test_images.npy")
    return path, labels[order]


def _run_in_sandbox(sub: notebook.Submission, assignment: Assignment, sandbox: Sandbox, test_images: Path | None = None) -> RunResult:
    name = assignment.test_set["images"] if test_images is not None else None
    to_run, probes = job.plan(assignment, sub.cells, sub.files, name)
    files = {name: p for name, p in sub.files.items() if name != assignment.notebook}
    if test_images is not None:
        files[assignment.test_set["images"]] = test_images  # the grader's, whatever the submission holds
    return sandbox.run(to_run, probes, assignment.probes_path, files, assignment.limits)


def leaderboard(assignment: Assignment, verdicts: dict[str, Verdict]) -> list[dict]:
    """The rubric's leaderboard columns, filled with the figures the checks measured
    (a column whose figure was not measured is left out, as Gradescope allows)."""
    figures = {name: value for v in verdicts.values() if v.passed for name, value in v.figures}
    return [{"name": c["name"], "value": figures[c["figure"]], "order": c.get("order", "desc")}
            for c in assignment.leaderboard if c["figure"] in figures]


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
