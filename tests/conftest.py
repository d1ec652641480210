"""Fixtures the kit's tests share."""
import json
import os
import subprocess
import sys

import jsonschema
import pytest

from autograder.sandbox import KIT_ROOT, Sandbox

SCHEMA = json.loads((KIT_ROOT / "autograder" / "gradescope_schema.json").read_text())


@pytest.fixture(scope="module")
def sandbox():
    """One sandbox per test module: starting its zygote (torch imported) takes seconds.
    Where this machine cannot isolate student code (no root, cgroups or namespaces),
    the kit's own tests grade without isolation, as `--unsafe-no-isolation` does; the
    tests of isolation itself skip there."""
    from autograder.container import missing_mechanisms

    with Sandbox(unsafe_no_isolation=bool(missing_mechanisms())) as sb:
        yield sb


class GradescopeMachine:
    """A stand-in for Gradescope's machine in a temporary folder: the bundle unpacked
    in autograder/source, a submission in autograder/submission, run_autograder run."""

    def __init__(self, root):
        self.source = root / "autograder" / "source"
        self.submission = root / "autograder" / "submission"
        self.results = root / "autograder" / "results" / "results.json"
        self.root = root

    def install(self, assignment: str, **options) -> set:
        """Build the assignment's bundle (`options` as build_bundle takes them) and unpack
        it; returns the names in the zip."""
        import zipfile

        from autograder.gradescope import build_bundle

        with zipfile.ZipFile(build_bundle(assignment, self.root / f"{assignment}_autograder.zip", **options)) as zf:
            zf.extractall(self.source)
            return set(zf.namelist())

    def run(self, python: str = sys.executable) -> tuple:
        """Run run_autograder on self.submission; returns (process, results.json validated against the schema)."""
        env = {**os.environ, "AUTOGRADER_SOURCE": str(self.source), "AUTOGRADER_SUBMISSION": str(self.submission),
               "AUTOGRADER_RESULTS": str(self.results), "AUTOGRADER_PYTHON": python}
        proc = subprocess.run(["bash", str(self.source / "run_autograder")], env=env, capture_output=True,
                              text=True, timeout=300)
        data = json.loads(self.results.read_text()) if self.results.is_file() else None
        if data is not None:
            jsonschema.validate(data, SCHEMA)
        return proc, data


@pytest.fixture
def gradescope(tmp_path):
    return GradescopeMachine(tmp_path)
