"""Command line: `python -m autograder grade PATH --assignment hwN [--results OUT.json]`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .assignment import available, load_assignment
from .pipeline import grade
from .reporters import gradescope_results, markdown_feedback, placeholder_results, text_table, write_json
from .sandbox import Sandbox


def _grade(args) -> int:
    try:
        assignment = load_assignment(args.assignment)
    except LookupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not Path(args.path).exists():
        print(f"error: {args.path} does not exist", file=sys.stderr)
        return 2
    if args.results:
        write_json(placeholder_results("Grading did not finish; please ask your instructor."), Path(args.results))
    with Sandbox() as sandbox:
        report = grade(Path(args.path), assignment, sandbox)
    print(text_table(report))
    if args.results:
        write_json(gradescope_results(report), Path(args.results))
        print(f"wrote {args.results}")
    if args.feedback:
        Path(args.feedback).write_text(markdown_feedback(report))
        print(f"wrote {args.feedback}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description="Grade homework submissions in a sandbox.")
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("grade", help="grade one submission (a zip, a folder or a notebook)")
    one.add_argument("path")
    one.add_argument("--assignment", required=True, help=f"one of: {', '.join(available())}")
    one.add_argument("--results", help="write Gradescope results.json here")
    one.add_argument("--feedback", help="write Markdown feedback here")
    one.set_defaults(func=_grade)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
