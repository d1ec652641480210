"""The Gradescope bundle inside Gradescope's limits: the bundle unzipped into
autograder/source, a submission in autograder/submission, run_autograder run in
a cgroup of 768 MB and half a CPU (v1 or v2; skipped where none can be made).
Peak memory and time are printed (pytest -s shows them)."""
import pytest

from autograder.gradescope import GRADESCOPE_MEMORY_MB, GRADESCOPE_SECONDS, bundle_members, simulate
from autograder.hostlimits import CgroupUnavailable, LimitedGroup, fit_limits
from checklib.assignment import KIT_ROOT, Limits, available, load_assignment
from conftest import SCHEMA
from demo import hw4_samples, samples_of

SAMPLES = {name: samples_of(name) for name in available() if samples_of(name)}  # every homework with samples
BOMB = ("# AUTOGRADED\n", "# AUTOGRADED\nhoard = []\nwhile True:\n    hoard.append(b'\\x01' * (32 * 2**20))\n")


def cgroups_or_skip():
    try:
        with LimitedGroup(64, 0.5):
            pass
    except CgroupUnavailable as err:
        pytest.skip(f"cannot simulate Gradescope's limits here: {err}")


def automatic_points(name: str) -> float:
    """What a submission passing every automatic check earns at least (from the rubric)."""
    return sum(i.points for i in load_assignment(name).items if not i.manual)


def run(name, submission, machine):
    import jsonschema

    proc, data, usage = simulate(name, submission, machine)
    print(f"\n{name} {submission.name}: peak {usage.peak_anon_mb:.0f} MB anonymous ({usage.peak_mb:.0f} MB with page "
          f"cache) of {GRADESCOPE_MEMORY_MB} MB, {usage.seconds:.0f} s of {GRADESCOPE_SECONDS} s, "
          f"{usage.cpu_seconds:.0f} CPU s, OOM kills {usage.oom_kills}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert data is not None, proc.stderr[-2000:]
    jsonschema.validate(data, SCHEMA)
    assert usage.oom_kills == 0 and usage.peak_anon_mb < GRADESCOPE_MEMORY_MB
    assert "could not grade" not in data["output"] and "stopped with status" not in data["output"], data["output"]
    return data


def test_the_bundle_installs_only_what_grading_needs():
    names = {str(p) for p in bundle_members("hw4")}
    assert "requirements-grader.txt" in names and "requirements.txt" not in names
    pinned = (KIT_ROOT / "requirements-grader.txt").read_text()
    packages = [line.split("==")[0] for line in pinned.splitlines() if line and not line.startswith("#")]
    assert all("==" in line for line in pinned.splitlines() if line and not line.startswith("#"))
    assert not {"jupyter", "jupyterlab", "notebook", "nbgrader", "dask", "distributed", "pytest", "scikit-learn"} & set(packages)
    assert {"torch", "torchvision", "nbformat", "pandas"} <= set(packages)


def test_child_memory_fits_the_container():
    limits = Limits(memory_mb=2048)
    assert fit_limits(limits, platform_mb=None) == limits  # no container limit: the rubric's
    fitted = fit_limits(limits, platform_mb=GRADESCOPE_MEMORY_MB, used_mb=450)
    assert 0 < fitted.memory_mb < GRADESCOPE_MEMORY_MB - 450
    assert fit_limits(Limits(memory_mb=100), platform_mb=GRADESCOPE_MEMORY_MB, used_mb=450).memory_mb == 100


def test_the_platform_limit_is_read_from_the_cgroup():
    import sys

    cgroups_or_skip()
    with LimitedGroup(500, 0.5) as group:
        done = group.run([sys.executable, "-c", "from autograder.hostlimits import platform_memory_mb as m; print(m())"],
                         cwd=KIT_ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["500"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_reference_is_graded_in_full_within_the_limits(name, tmp_path):
    cgroups_or_skip()
    submission = SAMPLES[name].build(tmp_path / "submission")
    data = run(name, submission, tmp_path / "machine")
    assert data["score"] >= automatic_points(name)
    assert all(t.get("status", "passed") == "passed" for t in data["tests"])


@pytest.mark.slow
def test_memory_bomb_is_contained_and_graded(tmp_path):
    cgroups_or_skip()
    sample = hw4_samples.MUTANTS["softmax_output"]

    def bomb(nb):
        cell = next(c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "augmentation")
        cell.source = cell.source.replace(*BOMB)

    submission = hw4_samples.build(tmp_path / "submission", sample, notebook_edit=bomb)
    data = run("hw4", submission, tmp_path / "machine")
    # Graded, not killed: the child met its (fitted) memory limit long before the container's.
    # The bomb's own checks fail; what it hoarded is released (checklib.runner.release_data),
    # so every other check scores as it does for the same submission without the bomb.
    tests = {t["tags"][1]: t for t in data["tests"]}
    assert [tests[i]["score"] for i in tests if i.startswith("augmentation.")] == [0, 0]
    plain = run("hw4", hw4_samples.build(tmp_path / "plain", sample), tmp_path / "machine2")
    expected = {t["tags"][1]: t["score"] for t in plain["tests"]}
    assert {i: tests[i]["score"] for i in tests if not i.startswith("augmentation.")} == \
        {i: score for i, score in expected.items() if not i.startswith("augmentation.")}


@pytest.mark.slow
def test_a_container_without_isolation_refuses_in_results_json_unless_the_bundle_allows_it(gradescope, monkeypatch):
    """Where the sandbox cannot be built (simulated: no cgroups), every student's results.json
    says the autograder is not set up, and the instructor's reason is in extra_data; a bundle
    built with --unsafe-no-isolation grades, and says it did so without isolation."""
    from autograder import container

    monkeypatch.setenv(container.SIMULATE_ENV, "cgroup")
    hw4_samples.build(gradescope.submission)
    gradescope.install("hw4")
    proc, data = gradescope.run()
    assert proc.returncode == 0 and data["score"] == 0 and data["tests"] == []
    assert "not set up to grade safely" in data["output"] and "stopped with status" not in data["output"]
    assert "Refusing to grade" in data["extra_data"]["error"] and "--unsafe-no-isolation" in data["extra_data"]["error"]

    gradescope.install("hw4", unsafe_no_isolation=True)
    proc, data = gradescope.run()
    assert proc.returncode == 0 and data["score"] >= automatic_points("hw4"), data["output"]
    assert any("WITHOUT isolation" in note for note in data["extra_data"]["isolation"])
