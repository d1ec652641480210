"""The Gradescope bundle against Gradescope's limits: 768 MB of memory, half a CPU, 10 minutes.

For every homework, `run_autograder` grades its reference, its largest mutant (the
one whose graded cells are longest) and a memory bomb (a graded cell that hoards
memory until it cannot), each in a fresh cgroup with those limits (v1 or v2; root
needed). Printed per run: peak anonymous memory (what cannot be reclaimed; page cache
is), the cgroup's own peak, wall and CPU seconds, OOM kills, and the score.

The baseline, measured in the same run in the same cgroup, is the grader as it ran
before this bundle split its stages: `python -m autograder grade` (the grader, a
zygote and the child all holding torch at once) on the reference. It prints the
ratio of peaks.

    python benchmarks/gradescope_limits.py [--assignment hw4] [--memory-mb 768] [--cpus 0.5]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from autograder.gradescope import GRADESCOPE_CPUS, GRADESCOPE_MEMORY_MB, GRADESCOPE_SECONDS, simulate  # noqa: E402
from autograder.hostlimits import CgroupUnavailable, LimitedGroup  # noqa: E402
from checklib.assignment import available  # noqa: E402
from demo import samples_of  # noqa: E402

SAMPLES = {name: samples_of(name) for name in available() if samples_of(name) is not None}
BOMB = "hoard = []\nwhile True:\n    hoard.append(b'\\x01' * (32 * 2**20))\n"


def largest_mutant(samples):
    return max(samples.MUTANTS, key=lambda name: sum(len(new) for edits in samples.MUTANTS[name].edits.values()
                                                     for _, new in edits))


def memory_bomb(nb):
    """The bomb in the first graded cell (after the tag line)."""
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.source.lstrip().startswith("# AUTOGRADED"))
    tag, _, rest = cell.source.partition("\n")
    cell.source = f"{tag}\n{BOMB}{rest}"


def line(label, usage, score, memory_mb, seconds):
    return (f"  {label:<34} peak {usage.peak_anon_mb:6.0f} MB anon ({usage.peak_mb:4.0f} MB cgroup) of {memory_mb} MB"
            f" | {usage.seconds:5.1f} s wall, {usage.cpu_seconds:5.1f} s CPU of {seconds} s"
            f" | OOM kills {usage.oom_kills} | score {score}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", action="append", help="default: every homework with samples")
    parser.add_argument("--memory-mb", type=int, default=GRADESCOPE_MEMORY_MB)
    parser.add_argument("--cpus", type=float, default=GRADESCOPE_CPUS)
    args = parser.parse_args()
    names = args.assignment or [n for n in available() if n in SAMPLES]
    try:
        with LimitedGroup(64, args.cpus):
            pass
    except CgroupUnavailable as err:
        sys.exit(f"cannot simulate Gradescope's limits here: {err}")

    print(f"run_autograder in a cgroup of {args.memory_mb} MB and {args.cpus:g} CPU (Gradescope: "
          f"{GRADESCOPE_MEMORY_MB} MB, {GRADESCOPE_CPUS:g} CPU, {GRADESCOPE_SECONDS} s)")
    for name in names:
        samples = SAMPLES[name]
        mutant = largest_mutant(samples)
        print(f"{name}:")
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            runs = {"reference": samples.build(tmp / "reference"),
                    f"largest mutant ({mutant})": samples.build(tmp / "mutant", samples.MUTANTS[mutant]),
                    "memory bomb": samples.build(tmp / "bomb", notebook_edit=memory_bomb)}
            peaks = {}
            for label, folder in runs.items():
                proc, data, usage = simulate(name, folder, tmp / "machine", args.memory_mb, args.cpus)
                score = "none (no results.json)" if data is None else f"{data['score']:g}"
                if data is not None and "could not grade" in data["output"]:
                    score += " (grader error)"
                print(line(label, usage, score, args.memory_mb, GRADESCOPE_SECONDS))
                peaks[label] = usage.peak_anon_mb

            # Baseline: the plain grader, every process holding torch at once, same cgroup limits.
            with LimitedGroup(args.memory_mb, args.cpus) as group:
                proc = group.run([sys.executable, "-m", "autograder", "grade", str(runs["reference"]),
                                  "--assignment", name], cwd=ROOT, timeout=GRADESCOPE_SECONDS)
                usage = group.usage()
            killed = usage.oom_kills > 0 or proc.returncode != 0
            print(line("baseline: plain `grade`, reference", usage,
                       "killed (OOM)" if killed else "completed", args.memory_mb, GRADESCOPE_SECONDS))
            print(f"  peak of the bundle's reference / baseline's: {peaks['reference'] / usage.peak_anon_mb:.2f}"
                  + (" (the baseline's peak is where the OOM killer stopped it)" if killed else ""))


if __name__ == "__main__":
    main()
