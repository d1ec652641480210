"""Every attack of issue 11, as a hostile student would write it, against the real
sandbox (HW4, graded as root). Each is contained: the score is at most that of the
same submission without the attack, the grader returns a report (and, from the
command line, exits 0 with a valid results file), nothing hangs past the cap, no
file outside the child's work folder changes, no process, cgroup or IPC object is
left, no hidden or other-student content reaches any output, and in a mixed batch
every correct submission keeps its full score."""
import dataclasses
import glob
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import jsonschema
import pytest

from autograder import container
from autograder.batch import grade_all
from autograder.pipeline import grade
from autograder.sandbox import KIT_ROOT, Limits, fingerprint, hard_cap
from checklib.assignment import load_assignment
from demo import hw4_samples as samples

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(container.missing_mechanisms()), reason="the container needs root and cgroups")]

SCHEMA = json.loads((KIT_ROOT / "autograder" / "gradescope_schema.json").read_text())
WEAK = samples.MUTANTS["channels_capped"]  # a submission that loses points: attacks must not win them back
SECRETS = ["HW4 hidden checks: run by the grader only", "### BEGIN SOLUTION", "another-student-secret-7f3a"]


@pytest.fixture(scope="module")
def hw4():
    return load_assignment("hw4")


@pytest.fixture(scope="module")
def weak_score(hw4, sandbox, tmp_path_factory):
    return grade(samples.build(tmp_path_factory.mktemp("weak") / "s", WEAK), hw4, sandbox).score


def _edit(code, grade_id="resnet"):
    """A notebook edit that puts `code` right after the cell's '# AUTOGRADED' line."""
    def edit(nb):
        cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
        cell.source = cell.source.replace("# AUTOGRADED\n", "# AUTOGRADED\n" + code + "\n", 1)
    return edit


def _leftovers(sandbox) -> dict:
    """What a run could leave behind: the zygote's children, this grader's cgroups, System V objects."""
    zygote = sandbox._zygote.pid
    children = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == zygote:
            children.append(stat)
    groups = [p for parent in _cgroup_parents() for p in glob.glob(str(parent / f"autograder-{os.getpid()}-*"))]
    ipc = {name: set(Path(f"/proc/sysvipc/{name}").read_text().splitlines()[1:]) for name in ("shm", "sem", "msg")}
    return {"children": children, "cgroups": groups, "ipc": ipc}


def _cgroup_parents():
    mounts, own = container.cgroup_mounts(), container.own_cgroups()
    return [mounts[c] / own.get(c, "/").lstrip("/") for c in mounts]


class Guard:
    """Snapshots before an attack; `check` asserts that nothing outside the child changed."""

    def __init__(self, sandbox, *extra_folders):
        self.sandbox = sandbox
        self.folders = [KIT_ROOT / n for n in ("autograder", "checklib", "hw_utils", "assignments", "source")] + list(extra_folders)
        self.before = fingerprint(*self.folders)
        self.ipc = _leftovers(sandbox)["ipc"]

    def check(self, report):
        after = _leftovers(self.sandbox)
        assert after["children"] == [] and after["cgroups"] == [], after
        for name, rows in after["ipc"].items():
            assert rows <= self.ipc[name], f"new System V {name} objects left: {rows - self.ipc[name]}"
        assert fingerprint(*self.folders) == self.before, "files outside the work folder changed"
        text = report.output + json.dumps(dataclasses.asdict(report), default=str)
        for secret in SECRETS:
            assert secret not in text


def attack(hw4, sandbox, tmp_path, code, weak_score, limits=None, **extra):
    guard = Guard(sandbox)
    assignment = dataclasses.replace(hw4, limits=limits) if limits else hw4
    start = time.monotonic()
    report = grade(samples.build(tmp_path / "s", WEAK, _edit(code)), assignment, sandbox)
    elapsed = time.monotonic() - start
    assert report.score <= weak_score, (report.score, weak_score)
    assert elapsed < hard_cap(assignment.limits, len(assignment.checks)) + 30
    guard.check(report)
    return report


# --- forging a score -----------------------------------------------------------------------

FRAME_WALK = """\
_f = sys._getframe()
while _f is not None:
    _p = _f.f_locals.get('probes')
    if _p is not None and hasattr(_p, '__dict__'):
        for _n in list(vars(_p)):
            if callable(getattr(_p, _n)) and not _n.startswith('_'):
                setattr(_p, _n, lambda *a, **k: {'forged': True})
    _f = _f.f_back
"""

# Writes records on the results pipe by its descriptor number, without any name the scan knows.
CHANNEL_WRITE = """\
_w = open(int('3'), 'wb', buffering=0, closefd=False)
def _send(payload):
    _w.write(len(payload).to_bytes(4, 'big') + payload)
"""


def test_frame_walking_to_replace_the_probes_is_flagged_and_earns_nothing(hw4, sandbox, tmp_path, weak_score):
    report = attack(hw4, sandbox, tmp_path, FRAME_WALK, weak_score)
    assert report.score == 0
    assert any("frame walking" in f for f in report.flags)


def test_a_tampering_construct_costs_every_automatic_check(hw4, sandbox, tmp_path):
    report = grade(samples.build(tmp_path / "s", None, _edit("_peek = sys._getframe")), hw4, sandbox)
    assert report.score == 0
    strides = next(r for r in report.results if r.id == "block.strides")
    assert strides.status == "failed" and "tamper with grading" in strides.output and "sys._getframe" in strides.output
    assert any("cell 'resnet' line 2: frame walking" in f for f in report.flags), report.flags


@pytest.mark.parametrize("payloads", [
    ['b\'{"event": "cell", "id": "resnet", "ok": true}\'', 'b\'{"event": "done"}\''],  # forged records
    ["b'\\xff\\xfe undecodable'"],                          # not a frame at all
    ["b'[' * 100000"],                                      # nesting the JSON parser cannot take
], ids=["forged", "undecodable", "deep"])
def test_writing_the_results_pipe_breaks_only_this_submission(hw4, sandbox, tmp_path, weak_score, payloads):
    code = CHANNEL_WRITE + "".join(f"_send({p})\n" for p in payloads)
    report = attack(hw4, sandbox, tmp_path, code, weak_score)
    assert any(f.startswith("channel:") for f in report.flags), report.flags
    assert report.score == 0


def test_a_flood_of_the_results_pipe_is_cut_off(hw4, sandbox, tmp_path, weak_score):
    code = CHANNEL_WRITE + "for _ in range(60):\n    _w.write(b'x' * (1 << 20))\n"
    report = attack(hw4, sandbox, tmp_path, code, weak_score)
    assert any(f.startswith("channel:") for f in report.flags)


def test_replacing_json_encoder_changes_nothing(hw4, sandbox, tmp_path, weak_score):
    code = ("import json\nclass _Forged(json.JSONEncoder):\n    def encode(self, o):\n        return '{\"score\": 100}'\n"
            "json._default_encoder = _Forged()\n")
    report = attack(hw4, sandbox, tmp_path, code, weak_score)
    assert any("monkeypatching" in f for f in report.flags)


def test_importlib_does_not_bypass_the_import_rule(hw4, sandbox, tmp_path, weak_score):
    report = attack(hw4, sandbox, tmp_path, "import importlib\n_np = importlib.import_module('numpy')", weak_score)
    rules = next(r for r in report.results if r.id == "rules.imports")
    assert rules.status == "failed" and "numpy" in rules.output


# --- hanging the grader -------------------------------------------------------------------------

def test_replaying_the_whole_protocol_without_the_runs_secret_is_refused(hw4, sandbox, tmp_path, weak_score):
    """The plan is public (the rubric and checklib.job), so a cell can write every record the
    grader expects, in order, and exit; it cannot know the run's secret."""
    from checklib import job

    cells = {gid: "" for gid in hw4.graded_cells}
    files = {f["name"]: "x" for f in hw4.required_files}
    to_run, probes = job.plan(hw4, cells, files)
    records = [{"event": "cell", "id": "resnet", "ok": True}]
    for cell in to_run[[c["id"] for c in to_run].index("resnet") + 1:]:
        records += [{"event": "cell_start", "id": cell["id"]}, {"event": "cell", "id": cell["id"], "ok": True}]
    for probe in probes:
        records += [{"event": "start", "key": probe["key"]}, {"event": "result", "key": probe["key"], "data": {}}]
    records.append({"event": "done"})
    code = CHANNEL_WRITE + "".join(f"_send({json.dumps(r).encode()!r})\n" for r in records) + "os._exit(0)\n"
    report = attack(hw4, sandbox, tmp_path, code, weak_score)
    assert any(f.startswith("channel:") and "secret" in f for f in report.flags), report.flags


def test_forged_start_records_do_not_move_the_deadline(hw4, sandbox, tmp_path, weak_score):
    code = CHANNEL_WRITE + ("import time as _t\nwhile True:\n    _send(b'{\"event\": \"start\", \"key\": \"x\"}')\n"
                            "    _t.sleep(1)\n")
    report = attack(hw4, sandbox, tmp_path, code, weak_score)
    assert report.execution_time < 30


def test_a_sleeping_cell_stops_at_the_cells_deadline(hw4, sandbox, tmp_path, weak_score):
    fast = Limits(cells_timeout=5, probe_timeout=2, cpu_seconds=60)
    report = attack(hw4, sandbox, tmp_path, "import time as _t\n_t.sleep(10**6)", weak_score, limits=fast)
    assert report.score == 0 and any("did not finish within 5 seconds" in i for i in report.incidents)


# --- hurting other students ---------------------------------------------------------------------

FORK_BOMB = """\
_n = 0
try:
    while True:
        if os.fork() == 0:
            import time as _t
            _t.sleep(1000)
        _n += 1
except OSError as _e:
    print('FORK REFUSED after', _n)
"""

MEMORY_HOG = """\
_pids = []
for _ in range(8):  # 8 x 250 MB: each under the per-process limit, together far over the tree's
    _pid = os.fork()
    if _pid == 0:
        _b = bytearray(250 << 20)
        for _i in range(0, len(_b), 4096):
            _b[_i] = 1
        import time as _t
        _t.sleep(1000)
    _pids.append(_pid)
import time as _t
_t.sleep(5)
print('SURVIVORS', sum(os.waitpid(_p, os.WNOHANG) == (0, 0) for _p in _pids))
"""

SHARED_MEMORY = """\
import ctypes as _c
_libc = _c.CDLL(None)
for _ in range(3):
    print('SHM', _libc.shmget(0, 1 << 30, 0o1000 | 0o600))
"""

DISK_FILL = """\
_i = 0
try:
    while True:
        with open(f'fill{_i}', 'wb') as _f:
            _f.write(bytes(32 << 20))
        _i += 1
except OSError as _e:
    print('FILL STOPPED', _i, _e.strerror)
"""


def test_a_fork_bomb_is_capped_by_the_cgroup(hw4, sandbox, tmp_path, weak_score):
    report = attack(hw4, sandbox, tmp_path, FORK_BOMB, weak_score)
    refused = [line for line in report.output.splitlines() if line.startswith("FORK REFUSED")]
    assert refused and int(refused[0].split()[-1]) < container.PIDS_MAX


def test_processes_share_one_memory_limit(hw4, sandbox, tmp_path, weak_score):
    small = Limits(memory_mb=300, cells_timeout=30)
    report = attack(hw4, sandbox, tmp_path, MEMORY_HOG, weak_score, limits=small)
    survivors = [int(line.split()[1]) for line in report.output.splitlines() if line.startswith("SURVIVORS")]
    assert survivors == [] or survivors[0] < 8, report.output  # the kernel stopped the tree at its limit


def test_system_v_shared_memory_dies_with_the_child(hw4, sandbox, tmp_path, weak_score):
    report = attack(hw4, sandbox, tmp_path, SHARED_MEMORY, weak_score)
    assert "SHM " in report.output  # it ran (in its own IPC namespace); Guard saw nothing left


def test_filling_the_work_folder_stops_at_its_size(hw4, sandbox, tmp_path, weak_score):
    from autograder.sandbox import scratch_dir

    free = os.statvfs(scratch_dir()).f_bavail * os.statvfs(scratch_dir()).f_frsize
    report = attack(hw4, sandbox, tmp_path, DISK_FILL, weak_score)
    assert "FILL STOPPED" in report.output and "No space left" in report.output
    assert free - os.statvfs(scratch_dir()).f_bavail * os.statvfs(scratch_dir()).f_frsize < 64 << 20


# --- reading what is hidden ----------------------------------------------------------------------

def test_nothing_hidden_is_visible_in_the_child(hw4, sandbox, tmp_path, weak_score):
    other = tmp_path / "classmates" / "zoe.txt"
    other.parent.mkdir()
    other.write_text(SECRETS[2])
    targets = [KIT_ROOT / "source" / "hw4" / "HW4.ipynb", KIT_ROOT / "assignments" / "hw4" / "hidden_checks.py",
               KIT_ROOT / ".git" / "HEAD", other, KIT_ROOT / "assignments" / "hw4" / "assets"]
    targets += [Path(p) for p in glob.glob(str(KIT_ROOT / "assignments" / "hw4" / "__pycache__" / "*"))]
    code = (f"for _p in {[str(p) for p in targets]!r} + [f'/proc/{{_d}}/cmdline' for _d in os.listdir('/proc') if _d.isdigit()]:\n"
            f"    try:\n        print('READ', _p, open(_p, 'rb').read()[:300])\n"
            f"    except OSError as _e:\n        print('NOT READABLE', _p)\n"
            f"print('PROCESSES', [d for d in os.listdir('/proc') if d.isdigit()])\n")
    report = attack(hw4, sandbox, tmp_path, code, weak_score)
    for target in targets:
        assert f"NOT READABLE {target}" in report.output
    processes = eval(next(line for line in report.output.splitlines() if line.startswith("PROCESSES"))[10:])
    assert processes == ["1"]  # its own PID namespace: no grader command line, no other student's path


def test_a_symlinked_file_is_refused(hw4, sandbox, tmp_path):
    for name in ("model_config.yaml", "HW4.ipynb"):
        sub = samples.build(tmp_path / name / "s", WEAK)
        (sub / name).unlink()
        (sub / name).symlink_to(KIT_ROOT / "source" / "hw4" / "HW4.ipynb")
        guard = Guard(sandbox)
        report = grade(sub, hw4, sandbox)
        assert report.score == 0 and "symbolic link" in " ".join(report.notes)
        guard.check(report)


def test_grader_code_cannot_be_planted_for_the_next_student(hw4, sandbox, tmp_path, weak_score):
    site = next(p for p in sys.path if p.endswith("site-packages"))
    code = (f"for _p in ({os.path.join(site, 'zz_evil.pth')!r}, {str(KIT_ROOT / 'autograder' / 'reporters.py')!r},"
            f" {str(KIT_ROOT / 'assignments' / 'hw4' / 'checks.py')!r}):\n"
            f"    try:\n        open(_p, 'a').write('\\nimport os')\n        print('PLANTED', _p)\n"
            f"    except OSError as _e:\n        print('REFUSED', _p, _e.strerror)\n")
    attack(hw4, sandbox, tmp_path, code, weak_score)
    assert not os.path.exists(os.path.join(site, "zz_evil.pth"))
    assert grade(samples.build(tmp_path / "next"), hw4, sandbox).score == 100


# --- the batch --------------------------------------------------------------------------------------

def test_a_mixed_batch_keeps_every_correct_submission_whole(tmp_path):
    root = tmp_path / "class"
    root.mkdir()
    correct = []
    for name in ("ann lee", "ann_lee", "gradebook.csv", "bob", "cy"):  # colliding ids and a gradebook name
        folder = samples.build(tmp_path / "build" / name)
        samples.zip_folder(folder, root / f"{name}.zip")
        correct.append(name)
    for name, code in (("bomber", FORK_BOMB), ("filler", DISK_FILL), ("prober", CHANNEL_WRITE + "_send(b'[' * 100000)")):
        samples.zip_folder(samples.build(tmp_path / "build" / name, None, _edit(code)), root / f"{name}.zip")
    # 2 million cells in a 349 KB-like zip: refused before parsing
    cell = b'{"cell_type": "code", "metadata": {}, "source": [], "outputs": [], "execution_count": null}'
    with zipfile.ZipFile(root / "cells.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("HW4.ipynb", b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": ['
                    + b",".join([cell] * 2_000_000) + b"]}")
    start = time.monotonic()
    rows = {r["student"]: r for r in grade_all(root, "hw4", tmp_path / "out", jobs=2, progress=False)}
    assert time.monotonic() - start < 600
    assert {"ann_lee", "ann_lee-2", "gradebook.csv_student", "bob", "cy"} <= set(rows)
    for student in ("ann_lee", "ann_lee-2", "gradebook.csv_student", "bob", "cy"):
        assert rows[student]["total"] == 100 and rows[student]["status"] == "graded", rows[student]
    for student in ("bomber", "filler", "prober", "cells"):
        assert rows[student]["total"] <= 100 and rows[student]["status"] in ("graded", "graded with problems")
    assert "cells" in rows["cells"]["reason"]
    assert (tmp_path / "out" / "gradebook.csv").is_file()


# --- the command line, fail closed, the grader's death ----------------------------------------------------

def _cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "autograder", *args], cwd=KIT_ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_cli_exits_0_with_a_valid_results_file_under_attack(tmp_path):
    sub = samples.build(tmp_path / "s", WEAK, _edit(CHANNEL_WRITE + "_send(b'\\xff' * 64)\n" + FRAME_WALK))
    proc = _cli("grade", str(sub), "--assignment", "hw4", "--results", str(tmp_path / "r.json"))
    assert proc.returncode == 0, proc.stderr
    jsonschema.validate(json.loads((tmp_path / "r.json").read_text()), SCHEMA)


def test_without_isolation_the_grader_refuses_unless_told_otherwise(tmp_path):
    sub = samples.build(tmp_path / "s")
    results = tmp_path / "r.json"
    simulate = {container.SIMULATE_ENV: "cgroup"}
    proc = _cli("grade", str(sub), "--assignment", "hw4", "--results", str(results), env=simulate)
    assert proc.returncode == 3 and "Refusing to grade" in proc.stderr and "cgroups" in proc.stderr
    assert "--unsafe-no-isolation" in proc.stderr
    assert json.loads(results.read_text())["score"] == 0  # the placeholder: nothing was graded
    proc = _cli("grade-all", str(tmp_path), "--assignment", "hw4", "--out", str(tmp_path / "out"), env=simulate)
    assert proc.returncode == 3 and "Refusing to grade" in proc.stderr and not (tmp_path / "out" / "gradebook.csv").exists()

    proc = _cli("grade", str(sub), "--assignment", "hw4", "--results", str(results), "--feedback",
                str(tmp_path / "f.md"), "--unsafe-no-isolation", env=simulate)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(results.read_text())
    assert any("WITHOUT isolation" in note for note in data["extra_data"]["isolation"])
    assert "WITHOUT isolation" in data["output"] and "WITHOUT isolation" in (tmp_path / "f.md").read_text()


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(Path(stat).parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_killing_the_grader_kills_its_zygote_and_child(tmp_path):
    sub = samples.build(tmp_path / "s", None, _edit("import time as _t\n_t.sleep(120)"))
    grader = subprocess.Popen([sys.executable, "-m", "autograder", "grade", str(sub), "--assignment", "hw4"],
                              cwd=KIT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(_descendants(grader.pid)) < 3:  # zygote, child, the contained PID 1
            time.sleep(0.5)
        tree = _descendants(grader.pid)
        assert len(tree) >= 3, tree
    finally:
        grader.send_signal(signal.SIGKILL)
        grader.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in tree):
        time.sleep(0.2)
    assert not [(p, Path(f"/proc/{p}/cmdline").read_bytes()[:80]) for p in tree if _alive(p)]


def test_an_entry_past_its_outer_cap_is_an_infrastructure_error_and_regraded(tmp_path, monkeypatch):
    from autograder import batch

    root = tmp_path / "class"
    samples.build(root / "sleepy", None, _edit("import time as _t\n_t.sleep(600)"))
    monkeypatch.setattr(batch, "hard_cap", lambda limits, n: 0.0)
    monkeypatch.setattr(batch, "OUTER_SLACK", 20.0)  # the zygote starts, the child sleeps: killed from outside at 20 s
    start = time.monotonic()
    rows = grade_all(root, "hw4", tmp_path / "out", jobs=1, progress=False)
    assert time.monotonic() - start < 120
    assert rows[0]["status"] == "infrastructure error", rows
    assert not batch.is_done(tmp_path / "out", batch.discover(root, "hw4")[0])  # the next run grades it again
