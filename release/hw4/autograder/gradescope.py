"""The Gradescope autograder bundle: `python -m autograder gradescope-bundle hw4 -o hw4_autograder.zip`.

Gradescope unpacks the zip into /autograder/source, runs setup.sh once to build
its image, then run_autograder for every submission (the student's files in
/autograder/submission); run_autograder must leave /autograder/results/results.json.
Here it always does: a placeholder first, the grade when grading completes,
and a zero score with the reason if anything breaks. The paths can be moved
with AUTOGRADER_SOURCE, AUTOGRADER_SUBMISSION, AUTOGRADER_RESULTS and
AUTOGRADER_PYTHON (the tests run a bundle that way).
"""
from __future__ import annotations

import zipfile
from pathlib import Path

from checklib.assignment import load_assignment
from checklib.assignment import KIT_ROOT

SETUP_SH = """#!/usr/bin/env bash
# Run once by Gradescope when it builds the autograder image.
set -euo pipefail
cd /autograder/source
if ! python3 -m venv --help >/dev/null 2>&1; then
  apt-get update && apt-get install -y python3 python3-venv python3-pip
fi
python3 -m venv /autograder/venv
/autograder/venv/bin/python -m pip install --upgrade pip
/autograder/venv/bin/python -m pip install -r requirements.txt
/autograder/venv/bin/python -m pip install --no-deps -e .
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
"$PYTHON" -m autograder gradescope-run --assignment {assignment} --submission "$SUBMISSION" --results "$RESULTS"
status=$?
if [ "$status" -ne 0 ]; then
  printf '{{"score": 0, "output": "The autograder stopped with status %d before it could grade this submission. Please tell your instructor.", "output_format": "text", "visibility": "visible", "tests": []}}\\n' "$status" > "$RESULTS"
fi
exit 0
"""


def bundle_members(assignment_name: str) -> list[Path]:
    """The kit files the bundle needs, relative to the kit root."""
    assignment = load_assignment(assignment_name)
    keep = [KIT_ROOT / "requirements.txt", KIT_ROOT / "pyproject.toml", KIT_ROOT / "README.md",
            assignment.source_notebook]
    for folder in (KIT_ROOT / "autograder", KIT_ROOT / "checklib", KIT_ROOT / "hw_utils", assignment.folder):
        keep += [p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return sorted(p.relative_to(KIT_ROOT) for p in keep)


def build_bundle(assignment_name: str, output: Path) -> Path:
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER.format(assignment=assignment_name))):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16  # executable once unpacked
            zf.writestr(info, text)
        for rel in bundle_members(assignment_name):
            zf.write(KIT_ROOT / rel, arcname=str(rel))
    return output
