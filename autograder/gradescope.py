"""The Gradescope autograder bundle: `python -m autograder gradescope-bundle hwN -o hwN_autograder.zip`.

Gradescope unpacks the zip into /autograder/source, runs setup.sh once to build
its image, then run_autograder for every submission (the student's files in
/autograder/submission); run_autograder must leave /autograder/results/results.json.
Here it always does: a placeholder first, the grade when grading completes,
and a zero score with the reason if anything breaks. The paths can be moved
with AUTOGRADER_SOURCE, AUTOGRADER_SUBMISSION, AUTOGRADER_RESULTS and
AUTOGRADER_PYTHON (the tests run a bundle that way).

Gradescope's container has 768 MB and half a CPU by default. torch costs each
process that imports it about 280 MB here (CUDA build; the CPU build setup.sh
installs, less), so the grader, the zygote and the child must not all hold it at
once (measured: 780-800 MB peak when they did). `grade_in_container` therefore
runs the pipeline's stages so that the grader holds torch only while the sandbox
is closed:

  1. plan (a short subprocess): the pipeline runs with a recorder in place of the
     sandbox, which keeps the job (cells, probes, the submitted files) and exits;
  2. measure (this process, torch not imported): a sandbox runs that job, with
     the child's memory fitted to what the container has left
     (`hostlimits.fit_limits`), then closes;
  3. judge (this process, now importing the checks): the pipeline runs again
     with a replay of those measurements in place of the sandbox.

The stage order stays the pipeline's (`pipeline.grade` runs in steps 1 and 3);
the replay refuses if the plan differs from the one measured.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import asdict
from pathlib import Path

from checklib.assignment import KIT_ROOT, Limits, load_assignment

SETUP_SH = """#!/usr/bin/env bash
# Run once by Gradescope when it builds the autograder image: only what grading
# needs (requirements-grader.txt, pinned), with CPU-only torch where PyTorch's
# CPU index answers (Gradescope has no GPU: no CUDA libraries to download or load).
set -euo pipefail
cd /autograder/source
if ! python3 -m venv --help >/dev/null 2>&1; then
  apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-pip
fi
python3 -m venv /autograder/venv
PIP="/autograder/venv/bin/python -m pip install --no-cache-dir --disable-pip-version-check"
TORCH=$(grep -E '^(torch|torchvision)==' requirements-grader.txt | tr '\\n' ' ')
$PIP --index-url https://download.pytorch.org/whl/cpu $TORCH || echo "setup.sh: no CPU-only torch here; using PyPI's"
$PIP -r requirements-grader.txt
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Run by Gradescope for each submission: grade it and write results.json.
set -u
SOURCE="${{AUTOGRADER_SOURCE:-/autograder/source}}"
SUBMISSION="${{AUTOGRADER_SUBMISSION:-/autograder/submission}}"
RESULTS="${{AUTOGRADER_RESULTS:-/autograder/results/results.json}}"
PYTHON="${{AUTOGRADER_PYTHON:-/autograder/venv/bin/python}}"
mkdir -p "$(dirname "$RESULTS")"
cd "$SOURCE"
"$PYTHON" -m autograder gradescope-run --assignment {assignment} --submission "$SUBMISSION" --results "$RESULTS"{flags}
status=$?
# 3: the grader refused to run student code without isolation; results.json says why.
if [ "$status" -ne 0 ] && [ "$status" -ne 3 ]; then
  printf '{{"score": 0, "output": "The autograder stopped with status %d before it could grade this submission. Please tell your instructor.", "output_format": "text", "visibility": "visible", "tests": []}}\\n' "$status" > "$RESULTS"
fi
exit 0
"""


def bundle_members(assignment_name: str) -> list[Path]:
    """The kit files the bundle needs, relative to the kit root."""
    assignment = load_assignment(assignment_name)
    keep = [KIT_ROOT / "requirements-grader.txt", KIT_ROOT / "README.md", assignment.source_notebook]
    for folder in (KIT_ROOT / "autograder", KIT_ROOT / "checklib", KIT_ROOT / "hw_utils", assignment.folder):
        keep += [p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return sorted(p.relative_to(KIT_ROOT) for p in keep)


def build_bundle(assignment_name: str, output: Path, unsafe_no_isolation: bool = False) -> Path:
    """The zip to upload. `unsafe_no_isolation` bakes that flag into run_autograder, for a
    platform whose containers cannot give the sandbox namespaces and cgroups (an explicit
    choice: the grader otherwise refuses there, and says so in every results.json)."""
    output = Path(output)
    flags = " --unsafe-no-isolation" if unsafe_no_isolation else ""
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER.format(assignment=assignment_name, flags=flags))):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16  # executable once unpacked
            zf.writestr(info, text)
        for rel in bundle_members(assignment_name):
            zf.write(KIT_ROOT / rel, arcname=str(rel))
    return output


# --- grading inside the container, in three steps (see the module's docstring) ------------

JOB = "job.json"
PLAN_SECONDS = 300  # the plan step imports torch and unpacks the submission: seconds, even on half a CPU


class _Recorder:
    """Stands in for the sandbox in the plan step: keeps the job and its files, runs nothing."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def run(self, cells, probes, probes_path, files, limits):
        from .sandbox import RunResult

        kept = {}
        for name, path in files.items():
            target = self.folder / "files" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            kept[name] = str(target)
        job = {"cells": cells, "probes": probes, "probes_path": str(probes_path), "files": kept, "limits": asdict(limits)}
        (self.folder / JOB).write_text(json.dumps(job))
        return RunResult()


class _Replay:
    """Stands in for the sandbox in the judge step: returns what the measure step measured."""

    def __init__(self, job: dict | None, result):
        self.job, self.result = job, result

    def run(self, cells, probes, probes_path, files, limits):
        from .sandbox import RunResult, SandboxError

        if self.job is None:
            return RunResult()
        if cells != self.job["cells"] or [p["key"] for p in probes] != [p["key"] for p in self.job["probes"]]:
            raise SandboxError("the grading plan changed between the plan and judge steps; nothing was graded")
        return self.result


def plan_step(assignment_name: str, submission: Path, folder: Path) -> None:
    """Step 1, in its own process: the pipeline with a recorder for a sandbox."""
    from .pipeline import grade

    grade(Path(submission), load_assignment(assignment_name), _Recorder(folder))


def grade_in_container(assignment_name: str, submission: Path, python: str = sys.executable,
                       unsafe_no_isolation: bool = False):
    """Grade one submission as Gradescope's container allows; returns the pipeline's Report."""
    from .hostlimits import fit_limits, used_memory_mb
    from .sandbox import RunResult, Sandbox

    with tempfile.TemporaryDirectory(prefix="gradescope-") as tmp:
        folder = Path(tmp)
        done = subprocess.run([python, "-m", "autograder.gradescope", "plan", assignment_name, str(submission), tmp],
                              cwd=KIT_ROOT, capture_output=True, text=True, timeout=PLAN_SECONDS)
        if done.returncode != 0:
            raise RuntimeError(f"planning the grading failed: {done.stderr.strip()[-2000:]}")
        job = json.loads((folder / JOB).read_text()) if (folder / JOB).is_file() else None
        result = RunResult()
        if job is not None:
            with Sandbox(unsafe_no_isolation=unsafe_no_isolation) as sandbox:
                limits = fit_limits(Limits(**job["limits"]), used_mb=used_memory_mb())
                result = sandbox.run(job["cells"], job["probes"], Path(job["probes_path"]),
                                     {name: Path(p) for name, p in job["files"].items()}, limits)
        from .pipeline import grade  # the checks (and torch) load only now

        return grade(Path(submission), load_assignment(assignment_name), _Replay(job, result))


if __name__ == "__main__":  # python -m autograder.gradescope plan ASSIGNMENT SUBMISSION FOLDER
    if len(sys.argv) != 5 or sys.argv[1] != "plan":
        sys.exit("usage: python -m autograder.gradescope plan ASSIGNMENT SUBMISSION FOLDER")
    plan_step(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))


# --- simulating Gradescope's container here (the bundle's test and benchmark) --------------------

GRADESCOPE_MEMORY_MB = 768   # Gradescope's default container memory
GRADESCOPE_CPUS = 0.5        # and CPU share
GRADESCOPE_SECONDS = 600     # its default timeout per submission


def simulate(assignment_name: str, submission: Path, machine: Path, memory_mb: int = GRADESCOPE_MEMORY_MB,
             cpus: float = GRADESCOPE_CPUS, python: str = sys.executable):
    """The bundle unzipped into machine/autograder/source, `submission`'s files copied into
    machine/autograder/submission, and run_autograder run inside a cgroup with Gradescope's
    limits. Returns (process, results.json as data or None, hostlimits.Usage). Raises
    hostlimits.CgroupUnavailable where no limited cgroup can be made."""
    import os

    from .hostlimits import LimitedGroup

    machine = Path(machine)
    source, target = machine / "autograder" / "source", machine / "autograder" / "submission"
    results = machine / "autograder" / "results" / "results.json"
    if not source.is_dir():
        with zipfile.ZipFile(build_bundle(assignment_name, machine / f"{assignment_name}_autograder.zip")) as zf:
            zf.extractall(source)
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(submission, target) if Path(submission).is_dir() else (
        target.mkdir(parents=True), shutil.copy(submission, target))
    results.unlink(missing_ok=True)
    env = {**os.environ, "AUTOGRADER_SOURCE": str(source), "AUTOGRADER_SUBMISSION": str(target),
           "AUTOGRADER_RESULTS": str(results), "AUTOGRADER_PYTHON": python}
    env.pop("PYTHONPATH", None)  # the bundle's own code, as on Gradescope
    with LimitedGroup(memory_mb, cpus) as group:
        proc = group.run(["bash", str(source / "run_autograder")], env=env, timeout=GRADESCOPE_SECONDS)
        usage = group.usage()
    data = json.loads(results.read_text()) if results.is_file() else None
    return proc, data, usage
