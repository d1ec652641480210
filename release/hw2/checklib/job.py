"""What to run for a submission, and how its measurements become verdicts.

The same two steps serve the autograder (which runs the job in its sandbox) and
the students' self-check (which runs it in a plain subprocess):

    plan(assignment, cells, files)          -> the cells to run and the probes to call
    judge_checks(assignment, cells, files, run) -> one Verdict per check
    judge_rules(problems, cells, assignment)    -> the verdicts of the two rules the engine judges

`cells` maps grade_id -> the student's source, `files` maps a required file's
name -> its path; `run` is what came back: `run.cells` (cell id -> {"ok", "error"})
and `run.probes` (probe key -> {"ok", "data" | "error"}).
"""
from __future__ import annotations

from .assignment import Assignment
from .cells import TAG, disallowed_imports, strip_magics
from .checks import Verdict
from .probes import decode


def plan(assignment: Assignment, cells: dict, files: dict, test_images: str | None = None) -> tuple[list[dict], list[dict]]:
    """The setup cell and the student's graded cells, in rubric order, and each
    distinct probe call whose cells and files the submission has. Checks that read
    the grader's test set get `images`: the name the grader wrote its images under in the
    child's folder (the autograder), or None where there is none (the self-check)."""
    to_run = [{"id": assignment.setup_cell, "source": assignment.setup_source}]
    for gid, options in assignment.graded_cells.items():
        if gid in cells:
            to_run.append({"id": gid, "source": strip_magics(cells[gid]), "stub": options.get("stub")})
    probes, seen = [], set()
    for check in assignment.checks:
        runnable = all(c in cells for c in check.cells) and all(f in files for f in check.files)
        if runnable and check.probe_key not in seen:
            seen.add(check.probe_key)
            args = {**check.args, "images": test_images} if check.test_set else dict(check.args)
            probes.append({"key": check.probe_key, "probe": check.probe, "args": args})
    return to_run, probes


def judge_checks(assignment: Assignment, cells: dict, files: dict, run, labels=None) -> dict[str, Verdict]:
    """`labels`: the grader's test-set labels, in the order of the images it wrote (checks
    with test_set=True are judged judge(data, labels, seconds=..., args=...), `seconds` being
    the probe's wall time by the grader's clock, `run.seconds`, and `args` the probe's
    arguments from the rubric, e.g. its time budget); None where there is no test set (a
    judge that needs them then says the autograder measures it)."""
    verdicts = {}
    for check in assignment.checks:
        missing_files = [f for f in check.files if f not in files]
        missing_cells = [c for c in check.cells if c not in cells]
        broken_cells = [c for c in check.cells if c in run.cells and not run.cells[c]["ok"]]
        outcome = run.probes.get(check.probe_key)
        if missing_files:
            hints = {f["name"]: f.get("how", "") for f in assignment.required_files}
            verdicts[check.id] = Verdict(False, f"Missing from your submission: {', '.join(missing_files)}. "
                                                f"{hints.get(missing_files[0], '')}".strip())
        elif missing_cells:
            verdicts[check.id] = Verdict(False, f"The graded cell '{missing_cells[0]}' was not found in your notebook "
                                                f"(its first line must be '{TAG}').")
        elif outcome is None:
            verdicts[check.id] = Verdict(False, "This check did not run.")
        elif not outcome["ok"]:
            cause = ""
            if broken_cells:
                cause = f"Your cell '{broken_cells[0]}' raised an error when it ran:\n{run.cells[broken_cells[0]]['error']}\n\n"
            verdicts[check.id] = Verdict(False, f"{cause}While checking: {outcome['error']}")
        else:
            try:
                data = decode(outcome["data"])
                if check.test_set:  # what only the grader knows: the labels, the probe's time by its clock, its args
                    seconds = getattr(run, "seconds", {}).get(check.probe_key)
                    verdicts[check.id] = check.judge(data, labels, seconds=seconds, args=dict(check.args))
                else:
                    verdicts[check.id] = check.judge(data)
            except Exception as err:  # data of an unexpected form: the student's objects behaved oddly
                verdicts[check.id] = Verdict(False, f"Your code returned something the grader could not interpret "
                                                    f"({type(err).__name__}: {err}).")
    return verdicts


def judge_rules(problems: list[str], cells: dict, assignment: Assignment) -> dict[str, Verdict]:
    """The two rules the engine judges itself: graded cells present (not lost, not
    duplicated: `problems` from cells.extract_cells), and no imports: the course allows
    nothing the setup cell does not import (Assignment.allowed_imports); what breaking it
    costs is the rubric item's `deduction` (scoring.resolve applies it)."""
    cell_problems = [p for p in problems if "graded cell" in p]
    allowed = list(assignment.allowed_imports)
    violations = {gid: disallowed_imports(src, allowed) for gid, src in cells.items()}
    violations = {gid: names for gid, names in violations.items() if names}
    imports = Verdict(True, "No imports beyond the setup cell's.") if not violations else Verdict(
        False, "Rule violation: graded cells may not import anything new (the setup cell imports everything: "
               f"{', '.join(allowed)}); " + "; ".join(f"cell '{gid}' imports {', '.join(names)}" for gid, names in violations.items()) + ".")
    found = Verdict(not cell_problems, " ".join(cell_problems) or "All graded cells found.")
    return {"rules.imports": imports, "rules.graded_cells": found}
