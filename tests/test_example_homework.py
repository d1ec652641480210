"""The walk-through of docs/instructors.md works: the example homework
(tests/example_course/hw0, never shipped to students) loads, passes check-config,
and its probes and checks grade the reference solution in full (the hand-graded
item pending) and the release notebook at zero.

The job runs with `checklib.runner.run_job` in a plain subprocess, as the
students' self-check runs it: the sandbox's child may not read tests/."""
import json
import shutil
import subprocess
import sys

import pytest

from autograder.config_check import check_config
from checklib import job, scoring
from checklib.assignment import ENGINE_ITEMS, KIT_ROOT, load_assignment
from checklib.cells import extract_cells, read_notebook
from test_check_config import EXAMPLE, make_release

RUNNER = """
import json, sys
from checklib.runner import run_job
records = []
run_job(json.load(open(sys.argv[1])), records.append)
print(json.dumps(records))
"""


class Run:
    def __init__(self, records):
        self.cells = {r["id"]: {"ok": r["ok"], "error": r.get("error", "")} for r in records if r["event"] == "cell"}
        self.probes = {r["key"]: ({"ok": True, "data": r["data"]} if r["event"] == "result" else
                                  {"ok": False, "error": r["error"]}) for r in records if r["event"] in ("result", "error")}


def grade_plainly(assignment, notebook, tmp_path):
    cells, problems = extract_cells(read_notebook(notebook), list(assignment.graded_cells))
    to_run, probes = job.plan(assignment, cells, {})
    job_path = tmp_path / "job.json"
    job_path.write_text(json.dumps({"cells": to_run, "probes": probes, "probes_path": str(assignment.probes_path)}))
    done = subprocess.run([sys.executable, "-c", RUNNER, str(job_path)], cwd=KIT_ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    verdicts = job.judge_checks(assignment, cells, {}, Run(json.loads(done.stdout.splitlines()[-1])))
    return scoring.resolve(list(assignment.items), verdicts)


@pytest.mark.slow
def test_example_homework_grades_the_reference_in_full_and_the_release_at_zero(tmp_path):
    course = tmp_path / "course"
    shutil.copytree(EXAMPLE, course, ignore=shutil.ignore_patterns("__pycache__"))
    release = make_release(course)
    assert check_config("hw0", course) == []
    hw0 = load_assignment("hw0", course)

    reference = grade_plainly(hw0, course / "source" / "hw0" / "HW0.ipynb", tmp_path)
    automatic = [r for r in reference if r.status != "pending" and r.id not in ENGINE_ITEMS]  # rules: the pipeline's
    assert all(r.status == "passed" for r in automatic), [(r.id, r.output) for r in automatic if r.status != "passed"]
    assert [r.id for r in reference if r.status == "pending"] == [i.id for i in hw0.items if i.manual]

    blank = grade_plainly(hw0, release / "HW0.ipynb", tmp_path)
    assert sum(r.score for r in blank) == 0
    values = next(r for r in blank if r.id == "relu.values")
    assert "NotImplementedError" in values.output
