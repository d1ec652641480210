"""Similarity report speed: a class of N synthetic submissions (300 by default).

The submissions are the example homework's (tests/example_course/hw0): each graded
cell holds the starter code, the student's relu and a helper class of random code,
generated as in tests/test_similarity.py, with one planted copy (renamed, reordered).
The report (`autograder.similarity.similarity_report`) is timed end to end: reading
every notebook, fingerprinting, comparing every pair, HTML and CSV. The baseline,
measured in the same run, is what no report can avoid: reading every submission's
graded cells once. The ratio says what the comparison adds to that.

    python benchmarks/similarity.py [--n 300]

Prints seconds for each and their ratio, and whether the planted copy was the only pair flagged.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from autograder import similarity  # noqa: E402
from checklib.assignment import load_assignment  # noqa: E402
from test_similarity import EXAMPLE, distinct_solution, graded_cell, submit  # noqa: E402


def make_class(folder: Path, n: int, starter: str) -> None:
    for k in range(n - 1):
        relu, methods = distinct_solution(k)
        submit(folder, f"student{k:03d}", graded_cell(starter, relu, methods, f"Helper{k}"))
    relu, methods = distinct_solution(7)
    copied = graded_cell(starter, relu, methods[::-1], "Tools")
    submit(folder, "copier", re.sub(r"\bv7_(\d)_(\d)\b", lambda m: f"x{m.group(1)}{m.group(2)}", copied))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    hw0 = load_assignment("hw0", EXAMPLE)
    starter = similarity.starter_cells(hw0)["relu"]
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "subs"
        start = time.perf_counter()
        make_class(subs, args.n, starter)
        print(f"wrote {args.n} submissions in {time.perf_counter() - start:.1f} s")

        start = time.perf_counter()
        report = similarity.similarity_report(subs, hw0, Path(tmp) / "report")
        total = time.perf_counter() - start
        flagged = [{p.a, p.b} for p in report.flagged]

        start = time.perf_counter()
        for path in sorted(subs.iterdir()):
            similarity.read_submission(path, hw0)
        baseline = time.perf_counter() - start

    pairs = args.n * (args.n - 1) // 2
    print(f"similarity report, {args.n} submissions ({pairs} pairs): {total:.1f} s end to end "
          f"({total / args.n * 1000:.0f} ms per submission)")
    print(f"baseline, reading every submission's graded cells once: {baseline:.1f} s; "
          f"report / baseline = {total / baseline:.1f}x")
    print(f"flagged pairs: {flagged} (expected only the planted copy: {flagged == [{'student007', 'copier'}]})")


if __name__ == "__main__":
    main()
