"""Command line of the autograder.

    python -m autograder grade PATH --assignment hwN [--results OUT.json] [--feedback OUT.md]
    python -m autograder grade-all SUBMISSIONS --assignment hwN --out DIR [--jobs N] [--force] [--dask ADDRESS]
    python -m autograder gradescope-bundle hwN -o hwN_autograder.zip
    python -m autograder gradescope-run --assignment hwN --submission DIR --results results.json   (inside the bundle)
    python -m autograder release hwN [--out DIR]       (the student release: nbgrader + hw_utils + public checks)

Exit status: 0 when grading completed (whatever the scores), 2 for usage errors.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from checklib.assignment import available, load_assignment
from .reporters import gradescope_results, markdown_feedback, placeholder_results, text_table, write_json


class UsageError(Exception):
    pass


def _assignment(name):
    try:
        return load_assignment(name)
    except LookupError as err:
        raise UsageError(str(err)) from None


def _existing(path):
    if not Path(path).exists():
        raise UsageError(f"{path} does not exist")
    return Path(path)


def _grade(args) -> int:
    from .pipeline import grade
    from .sandbox import Sandbox

    assignment, path = _assignment(args.assignment), _existing(args.path)
    if args.results:
        write_json(placeholder_results("Grading did not finish; please ask your instructor."), Path(args.results))
    with Sandbox() as sandbox:
        report = grade(path, assignment, sandbox)
    print(text_table(report))
    if args.results:
        write_json(gradescope_results(report), Path(args.results))
        print(f"wrote {args.results}")
    if args.feedback:
        Path(args.feedback).write_text(markdown_feedback(report))
        print(f"wrote {args.feedback}")
    return 0


def _grade_all(args) -> int:
    from .batch import gradebook_table, grade_all

    _assignment(args.assignment)
    _existing(args.submissions)
    rows = grade_all(Path(args.submissions), args.assignment, Path(args.out), jobs=args.jobs, force=args.force,
                     dask_address=args.dask)
    print(gradebook_table(rows))
    print(f"wrote {Path(args.out) / 'gradebook.csv'}, {Path(args.out) / 'gradebook.xlsx'} and one folder per student")
    return 0


def _bundle(args) -> int:
    from .gradescope import build_bundle

    _assignment(args.assignment)
    print(f"wrote {build_bundle(args.assignment, Path(args.output))}")
    return 0


def _gradescope_run(args) -> int:
    """Inside a Gradescope container: never leave without a valid results.json."""
    results = Path(args.results)
    write_json(placeholder_results("Grading did not finish; please ask your instructor."), results)
    try:
        from .pipeline import grade
        from .sandbox import Sandbox

        with Sandbox() as sandbox:
            report = grade(Path(args.submission), load_assignment(args.assignment), sandbox)
        write_json(gradescope_results(report), results)
        print(text_table(report))
    except Exception as err:
        reason = f"The autograder could not grade this submission ({type(err).__name__}: {err}). Please tell your instructor."
        data = placeholder_results(reason)
        data["extra_data"] = {"error": traceback.format_exc()[-3000:]}
        write_json(data, results)
        print(reason, file=sys.stderr)
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
    one.set_defaults(func=_grade)

    batch = commands.add_parser("grade-all", help="grade a class: a folder of submissions")
    batch.add_argument("submissions", help="plain folder, nbgrader submitted/ layout, or a Gradescope export")
    batch.add_argument("--assignment", required=True, help=f"one of: {names}")
    batch.add_argument("--out", required=True, help="folder for results, feedback and the gradebook")
    batch.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel sandboxes (default: cores)")
    batch.add_argument("--force", action="store_true", help="regrade students already graded")
    batch.add_argument("--dask", metavar="ADDRESS", help="grade on this dask.distributed scheduler instead")
    batch.set_defaults(func=_grade_all)

    bundle = commands.add_parser("gradescope-bundle", help="build the Gradescope autograder zip")
    bundle.add_argument("assignment", help=f"one of: {names}")
    bundle.add_argument("-o", "--output", required=True)
    bundle.set_defaults(func=_bundle)

    run = commands.add_parser("gradescope-run", help="(inside the bundle) grade /autograder/submission")
    run.add_argument("--assignment", required=True)
    run.add_argument("--submission", required=True)
    run.add_argument("--results", required=True)
    run.set_defaults(func=_gradescope_run)

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


if __name__ == "__main__":
    sys.exit(main())
