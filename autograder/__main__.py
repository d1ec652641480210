"""Command line of the autograder.

    python -m autograder grade PATH --assignment hwN [--results OUT.json] [--feedback OUT.md]
    python -m autograder grade-all SUBMISSIONS --assignment hwN --out DIR [--jobs N] [--force] [--dask ADDRESS]
    python -m autograder gradescope-bundle hwN -o hwN_autograder.zip [--unsafe-no-isolation]
    python -m autograder gradescope-run --assignment hwN --submission DIR --results results.json   (inside the bundle)
    python -m autograder check-config hwN [hwM ...]
    python -m autograder similarity SUBMISSIONS --assignment hwN --out DIR [--threshold T]
    python -m autograder release hwN [--out DIR]       (the student release: nbgrader + hw_utils + public checks)

Exit status: 0 when grading completed (whatever the scores), 2 for usage errors, 3 when the
sandbox cannot isolate student code on this machine (the message says what is missing);
`--unsafe-no-isolation` grades anyway, for tests and demos, and every result then says so.
check-config: 1 when it found problems.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from checklib.assignment import ConfigError, available, load_assignment

from .container import IsolationUnavailable
from .reporters import gradescope_results, markdown_feedback, placeholder_results, text_table, write_json


REFUSED = 3  # exit status: isolation unavailable


class UsageError(Exception):
    pass


def _unsafe_flag(parser) -> None:
    parser.add_argument("--unsafe-no-isolation", action="store_true",
                        help="grade even where student code cannot be isolated (tests and demos only: the code "
                             "can then read solutions and change the grader; every result says so)")


def _assignment(name):
    try:
        return load_assignment(name)
    except (LookupError, ConfigError) as err:
        raise UsageError(str(err)) from None


def _existing(path):
    if not Path(path).exists():
        raise UsageError(f"{path} does not exist")
    return Path(path)


def _grade(args) -> int:
    import dataclasses

    from .hostlimits import fit_limits
    from .pipeline import grade
    from .sandbox import Sandbox

    assignment, path = _assignment(args.assignment), _existing(args.path)
    # In a memory-limited container, the child's memory fits what the container leaves.
    assignment = dataclasses.replace(assignment, limits=fit_limits(assignment.limits))
    if args.results:
        write_json(placeholder_results("Grading did not finish; please ask your instructor."), Path(args.results))
    with Sandbox(unsafe_no_isolation=args.unsafe_no_isolation) as sandbox:
        report = grade(path, assignment, sandbox)
    print(text_table(report))
    if args.results:
        write_json(gradescope_results(report), Path(args.results))
        print(f"wrote {args.results}")
    if args.feedback:
        Path(args.feedback).write_text(markdown_feedback(report, student=Path(args.path).stem))
        print(f"wrote {args.feedback}")
    return 0


def _grade_all(args) -> int:
    from .batch import gradebook_table, grade_all, leaderboard_table

    assignment = _assignment(args.assignment)
    _existing(args.submissions)
    rows = grade_all(Path(args.submissions), args.assignment, Path(args.out), jobs=args.jobs, force=args.force,
                     dask_address=args.dask, unsafe_no_isolation=args.unsafe_no_isolation)
    print(gradebook_table(rows))
    board = leaderboard_table(rows, assignment)
    if board:
        print("Leaderboard:\n" + board)
    print(f"wrote {Path(args.out) / 'gradebook.csv'}, {Path(args.out) / 'gradebook.xlsx'} and one folder per student")
    return 0


def _bundle(args) -> int:
    from .gradescope import build_bundle

    _assignment(args.assignment)
    print(f"wrote {build_bundle(args.assignment, Path(args.output), unsafe_no_isolation=args.unsafe_no_isolation)}")
    if args.unsafe_no_isolation:
        print("warning: this bundle grades without isolation: student code can read the solutions it carries")
    return 0


def _gradescope_run(args) -> int:
    """Inside a Gradescope container: never leave without a valid results.json."""
    results = Path(args.results)
    write_json(placeholder_results("Grading did not finish; please ask your instructor."), results)
    try:
        from .gradescope import grade_in_container

        # One container, one submission, 768 MB: the grader holds torch only while no sandbox runs.
        report = grade_in_container(args.assignment, Path(args.submission),
                                    unsafe_no_isolation=args.unsafe_no_isolation)
        write_json(gradescope_results(report), results)
        print(text_table(report))
    except IsolationUnavailable as err:
        data = placeholder_results("The autograder is not set up to grade safely; please tell your instructor.")
        data["extra_data"] = {"error": str(err)}
        write_json(data, results)
        print(err, file=sys.stderr)
        return REFUSED
    except Exception as err:
        reason = f"The autograder could not grade this submission ({type(err).__name__}: {err}). Please tell your instructor."
        data = placeholder_results(reason)
        data["extra_data"] = {"error": traceback.format_exc()[-3000:]}
        write_json(data, results)
        print(reason, file=sys.stderr)
    return 0


def _check_config(args) -> int:
    from .config_check import check_config

    found = 0
    for name in args.assignments:
        if name not in available():
            raise UsageError(f"unknown assignment {name!r}; known: {', '.join(available())}")
        problems = check_config(name)
        found += len(problems)
        print(f"{name}: " + ("ok" if not problems else f"{len(problems)} problem(s)"))
        for problem in problems:
            print(f"  {problem}")
    return 1 if found else 0


def _similarity(args) -> int:
    from .similarity import similarity_report

    assignment = _assignment(args.assignment)
    _existing(args.submissions)
    report = similarity_report(Path(args.submissions), assignment, Path(args.out), threshold=args.threshold)
    print(f"{report.submissions} submissions, {len(report.pairs)} pairs scored, {len(report.flagged)} above "
          f"{args.threshold:g}; wrote {report.html} and {report.csv}")
    return 0


def _release(args) -> int:
    from .release import ReleaseError, make_release

    _assignment(args.assignment)
    try:
        target = make_release(args.assignment, Path(args.out) if args.out else None)
    except ReleaseError as err:
        raise UsageError(str(err)) from None
    print(f"wrote {target}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description="Grade homework submissions in a sandbox.")
    commands = parser.add_subparsers(dest="command", required=True)
    names = ", ".join(available())

    one = commands.add_parser("grade", help="grade one submission (a zip, a folder or a notebook)")
    one.add_argument("path")
    one.add_argument("--assignment", required=True, help=f"one of: {names}")
    one.add_argument("--results", help="write Gradescope results.json here")
    one.add_argument("--feedback", help="write Markdown feedback here")
    _unsafe_flag(one)
    one.set_defaults(func=_grade)

    batch = commands.add_parser("grade-all", help="grade a class: a folder of submissions")
    batch.add_argument("submissions", help="plain folder, nbgrader submitted/ layout, or a Gradescope export")
    batch.add_argument("--assignment", required=True, help=f"one of: {names}")
    batch.add_argument("--out", required=True, help="folder for results, feedback and the gradebook")
    batch.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel sandboxes (default: cores)")
    batch.add_argument("--force", action="store_true", help="regrade students already graded")
    batch.add_argument("--dask", metavar="ADDRESS", help="grade on this dask.distributed scheduler instead")
    _unsafe_flag(batch)
    batch.set_defaults(func=_grade_all)

    bundle = commands.add_parser("gradescope-bundle", help="build the Gradescope autograder zip")
    bundle.add_argument("assignment", help=f"one of: {names}")
    bundle.add_argument("-o", "--output", required=True)
    _unsafe_flag(bundle)
    bundle.set_defaults(func=_bundle)

    run = commands.add_parser("gradescope-run", help="(inside the bundle) grade /autograder/submission")
    run.add_argument("--assignment", required=True)
    run.add_argument("--submission", required=True)
    run.add_argument("--results", required=True)
    _unsafe_flag(run)
    run.set_defaults(func=_gradescope_run)

    config = commands.add_parser("check-config", help="check an assignment's rubric, checks, notebook and release agree")
    config.add_argument("assignments", nargs="+", help=f"one or more of: {names}")
    config.set_defaults(func=_check_config)

    similar = commands.add_parser("similarity", help="a class similarity report of the graded cells")
    similar.add_argument("submissions", help="a folder of submissions, as for grade-all")
    similar.add_argument("--assignment", required=True, help=f"one of: {names}")
    similar.add_argument("--out", required=True, help="folder for similarity.html and similarity.csv")
    similar.add_argument("--threshold", type=float, default=0.5,
                         help="pairs sharing at least this fraction of fingerprints are shown (default 0.5)")
    similar.set_defaults(func=_similarity)

    release = commands.add_parser("release", help="make the student release of a homework (release/hwN/)")
    release.add_argument("assignment", help=f"one of: {names}")
    release.add_argument("--out", help="folder to write hwN/ into (default: release/)")
    release.set_defaults(func=_release)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except IsolationUnavailable as err:
        print(err, file=sys.stderr)
        return REFUSED


if __name__ == "__main__":
    sys.exit(main())
