"""pytest entry: `pytest autograder/ --submission PATH --assignment hwN [--results OUT.json]`.

Each rubric item becomes one test (its points as a `points` marker). The
submission is graded once per session by the same pipeline as the command line;
a placeholder results.json is written first, so a crash still leaves a valid file,
and the real one is written when the session finishes.
"""
from __future__ import annotations

from pathlib import Path

import pytest

REPORT = pytest.StashKey[object]()


def pytest_addoption(parser):
    group = parser.getgroup("autograder", "grade one homework submission")
    group.addoption("--submission", help="a submission zip, folder or notebook")
    group.addoption("--assignment", help="the assignment name (hwN)")
    group.addoption("--results", help="write Gradescope results.json here")
    group.addoption("--unsafe-no-isolation", action="store_true",
                    help="grade even where student code cannot be isolated (results say so)")


def pytest_configure(config):
    config.addinivalue_line("markers", "points(n): the points this rubric item is worth")
    results = config.getoption("results", None)
    if results and config.getoption("submission", None):
        from autograder.reporters import placeholder_results, write_json
        write_json(placeholder_results("Grading did not finish; please ask your instructor."), Path(results))


def pytest_generate_tests(metafunc):
    if "rubric_item" not in metafunc.fixturenames:
        return
    name = metafunc.config.getoption("assignment")
    if not metafunc.config.getoption("submission") or not name:
        metafunc.parametrize("rubric_item", [pytest.param(None, marks=pytest.mark.skip(
            reason="pass --submission PATH and --assignment NAME to grade a submission"))])
        return
    from checklib.assignment import load_assignment
    items = load_assignment(name).items
    metafunc.parametrize("rubric_item", [pytest.param(i, id=i.id, marks=pytest.mark.points(i.points)) for i in items])


@pytest.fixture(scope="session")
def grade_report(request):
    """Grade the submission once (in the sandbox) and keep the report in the session."""
    from checklib.assignment import load_assignment
    from autograder.pipeline import grade
    from autograder.sandbox import Sandbox

    config = request.config
    with Sandbox(unsafe_no_isolation=config.getoption("unsafe_no_isolation")) as sandbox:
        report = grade(Path(config.getoption("submission")), load_assignment(config.getoption("assignment")), sandbox)
    config.stash[REPORT] = report
    return report


def pytest_sessionfinish(session):
    report = session.config.stash.get(REPORT, None)
    results = session.config.getoption("results", None)
    if report is not None and results:
        from autograder.reporters import gradescope_results, write_json
        write_json(gradescope_results(report), Path(results))


def pytest_terminal_summary(terminalreporter, config):
    report = config.stash.get(REPORT, None)
    if report is not None:
        terminalreporter.write_line(f"score: {report.score:g} / {report.max_score:g} ({config.getoption('assignment')})")
