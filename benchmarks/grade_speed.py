"""Grading speed: the kit's sandboxed grader against one Jupyter kernel per submission.

Both run the same checks (HW4's, or HW2's with --assignment hw2) on the same
submissions in one run. The baseline is
the conventional way: a fresh kernel per submission (nbclient), executing the
setup cell, the graded cells and the same probes, then judging their output.
The kit forks each child from a zygote that has torch imported already.

    python benchmarks/grade_speed.py [--assignment hw4|hw2] [--n 20]

With --class N it also grades N submissions as a class with `grade-all`
(parallel sandboxes, one per core) against the same kernel-per-submission
baseline run over the same N.

It also measures what the isolation costs (issue 11): the same submissions
graded by the same kind of sandbox with the per-child container off
(`unsafe_no_isolation=True`: no cgroup, namespaces, allow-list root or nobody)
and on, alternating so that load on a shared machine hits both alike. The
budget is 0.5 s per submission. `--skip-kernel` leaves the kernel baseline out.

Prints seconds per submission for each and the ratio. Timings on a shared
machine are noisy: compare the ratio.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from autograder import notebook  # noqa: E402
from checklib.assignment import load_assignment  # noqa: E402
from autograder.pipeline import grade  # noqa: E402
from checklib.job import judge_checks  # noqa: E402
from autograder.sandbox import KIT_ROOT, RunResult, Sandbox  # noqa: E402
from demo import hw2_samples, hw4_samples  # noqa: E402

SAMPLES = {"hw4": hw4_samples, "hw2": hw2_samples}  # reference and mutants to grade, per homework
MARK = "@@probe-results@@"


def kernel_grade(path: Path, assignment) -> float:
    """Grade one submission in a fresh Jupyter kernel; returns the total score."""
    sub = notebook.open_submission(path, path, assignment.notebook, list(assignment.graded_cells), [f["name"] for f in assignment.required_files])
    probes = {c.probe_key: {"probe": c.probe, "args": dict(c.args)} for c in assignment.checks}
    cells = [nbformat.v4.new_code_cell(f"import os, sys; sys.path.insert(0, {str(KIT_ROOT)!r}); os.chdir({str(path)!r})\n"
                                       f"from checklib.runner import load_module_from\n"
                                       f"probes = load_module_from({str(assignment.probes_path)!r}, 'p')")]
    cells.append(nbformat.v4.new_code_cell(assignment.setup_source))
    for gid, options in assignment.graded_cells.items():
        stub = f"probes.{options['stub']}(globals())\n" if options.get("stub") else ""
        cells.append(nbformat.v4.new_code_cell(stub + sub.cells.get(gid, "")))
    cells.append(nbformat.v4.new_code_cell(
        "import json, torch\nfrom checklib.probes import encode\nout = {}\n"
        f"for key, p in {probes!r}.items():\n"
        "    torch.manual_seed(0)\n"
        "    try:\n        out[key] = {'ok': True, 'data': encode(getattr(probes, p['probe'])(globals(), **p['args']))}\n"
        "    except Exception as e:\n        out[key] = {'ok': False, 'error': repr(e)}\n"
        "print('\\n' + MARK + json.dumps(out))".replace("MARK", repr(MARK))))
    nb = nbformat.v4.new_notebook(cells=cells)
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    probes_out = json.loads(text.rsplit(MARK, 1)[1])  # what the probes printed comes before the mark
    run = RunResult(cells={gid: {"ok": True, "error": ""} for gid in sub.cells}, probes=probes_out)
    verdicts = judge_checks(assignment, sub.cells, sub.files, run)
    return sum(1 for v in verdicts.values() if v.passed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="hw4", choices=sorted(SAMPLES))
    parser.add_argument("--n", type=int, default=20, help="submissions graded in a row")
    parser.add_argument("--class", dest="class_size", type=int, default=0, help="also grade this many with grade-all")
    parser.add_argument("--skip-kernel", action="store_true", help="only the isolation before/after measurement")
    args = parser.parse_args()
    assignment = load_assignment(args.assignment)
    samples = SAMPLES[args.assignment]
    names = sorted(samples.MUTANTS)
    checked = {c.id for c in assignment.checks}
    with tempfile.TemporaryDirectory() as tmp:
        subs = [samples.build(Path(tmp) / f"s{i:02d}", samples.MUTANTS[names[i % len(names)]] if i else None)
                for i in range(args.n)]

        before, after = isolation_cost(subs, assignment)
        print(f"\n{args.assignment.upper()}, {args.n} submissions, isolation off then on (alternating, same sandbox kind):")
        print(f"  before (no container)   {before:5.2f} s per submission")
        print(f"  after  (container)      {after:5.2f} s per submission")
        print(f"  isolation cost          {after - before:+5.2f} s per submission (budget +0.50 s)")
        if args.skip_kernel:
            return

        start = time.perf_counter()
        sandbox = Sandbox()
        sandbox.start()
        startup = time.perf_counter() - start
        start = time.perf_counter()
        kit_passed = sum(r.status == "passed" for r in grade(subs[0], assignment, sandbox).results if r.id in checked)
        first = time.perf_counter() - start
        start = time.perf_counter()
        for path in subs:
            grade(path, assignment, sandbox)
        kit_each = (time.perf_counter() - start) / len(subs)
        sandbox.close()

        start = time.perf_counter()
        kernel_passed = kernel_grade(subs[0], assignment)
        kernel_first = time.perf_counter() - start
        assert kernel_passed == kit_passed, (kernel_passed, kit_passed)  # the same checks, the same outcome
        start = time.perf_counter()
        for path in subs:
            kernel_grade(path, assignment)
        kernel_each = (time.perf_counter() - start) / len(subs)

    print(f"\n{args.assignment.upper()}, {args.n} submissions in a row (reference and mutants), same checks:")
    print(f"  kit sandbox (zygote)   start-up {startup:5.2f} s once; first {first:5.2f} s; {kit_each:5.2f} s per submission")
    print(f"  kernel per submission  first {kernel_first:5.2f} s; {kernel_each:5.2f} s per submission")
    print(f"  ratio (kernel / kit, per submission): {kernel_each / kit_each:5.1f}x")
    if args.class_size:
        grade_class(args.class_size, assignment, samples, names)


def isolation_cost(subs: list[Path], assignment) -> tuple[float, float]:
    """Seconds per submission without and with the per-child container, graded alternately."""
    times = {False: 0.0, True: 0.0}
    sandboxes = {iso: Sandbox(unsafe_no_isolation=not iso) for iso in times}
    try:
        for sb in sandboxes.values():
            sb.start()
            grade(subs[0], assignment, sb)  # warm-up
        for path in subs:
            for iso, sb in sandboxes.items():
                start = time.perf_counter()
                grade(path, assignment, sb)
                times[iso] += time.perf_counter() - start
    finally:
        for sb in sandboxes.values():
            sb.close()
    return times[False] / len(subs), times[True] / len(subs)


def grade_class(n: int, assignment, samples, names) -> None:
    """grade-all over n submissions against a fresh kernel per submission, same n."""
    import os

    from autograder.batch import grade_all

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "class"
        subs = [samples.build(root / f"student{i:03d}", samples.MUTANTS[names[i % len(names)]] if i % 3 else None)
                for i in range(n)]
        jobs = os.cpu_count() or 1
        start = time.perf_counter()
        grade_all(root, assignment.name, Path(tmp) / "out", jobs=jobs, progress=False)
        batch = time.perf_counter() - start
        start = time.perf_counter()
        for path in subs:
            kernel_grade(path, assignment)
        kernels = time.perf_counter() - start
    print(f"\n{assignment.name.upper()} class of {n}:")
    print(f"  grade-all --jobs {jobs}        {batch:7.1f} s in all ({batch / n:5.2f} s per submission, start-up included)")
    print(f"  kernel per submission     {kernels:7.1f} s in all ({kernels / n:5.2f} s per submission)")
    print(f"  ratio (kernels / grade-all): {kernels / batch:5.1f}x")


if __name__ == "__main__":
    main()
