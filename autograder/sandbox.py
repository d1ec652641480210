"""Stage 2, sandbox: run student code in a limited child process, from the grader.

`Sandbox` starts one zygote (a pre-imported process, see `zygote.py`) and asks it
for a fresh child per run. While the child runs, the grader watches its events
file and enforces wall-clock timeouts by killing the child's process group. If
the child dies or hangs in the middle of a probe, that probe fails alone: the
grader starts a new child for the probes still to do. After every run the
grader checks that its own files were not touched.
"""
from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from checklib.assignment import KIT_ROOT, Limits

PRELOAD = ("torch", "torchvision", "torchvision.transforms.v2", "torchvision.datasets", "numpy", "PIL.Image",
           "pandas", "openpyxl", "yaml", "matplotlib.pyplot", "tqdm.auto", "autograder.child", "checklib.probes")
NOBODY = 65534


@dataclass
class RunResult:
    """What came back from the child, as plain data."""
    cells: dict = field(default_factory=dict)    # cell id -> {"ok": bool, "error": str}
    probes: dict = field(default_factory=dict)   # probe key -> {"ok": bool, "data"| "error"}
    output: str = ""                             # the tail of what student code printed
    isolation: list = field(default_factory=list)  # what the sandbox could not enforce here
    incidents: list = field(default_factory=list)  # timeouts, crashes, tampering


class SandboxError(RuntimeError):
    pass


def _readable_by_others(path: Path) -> bool:
    """Whether an unprivileged user can reach and read `path` (every parent folder searchable)."""
    path = path.resolve()
    for folder in [*reversed(path.parents), path]:
        mode = folder.stat().st_mode
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return False
    return bool(path.stat().st_mode & stat.S_IROTH)


CHILD_NEEDS = ("autograder", "checklib", "hw_utils", "assignments")


def scratch_dir() -> Path:
    """The one folder under which the grader keeps every job's files and every
    unpacked submission; each child sees it empty but for its own work folder."""
    path = Path(tempfile.gettempdir()) / f"autograder-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def secret_paths(root: Path = KIT_ROOT) -> list[Path]:
    """What the child may not read: every top-level entry of the kit but the code it
    runs (and the Python environment, when it lies inside the kit), and each
    assignment's hidden checks and assets. Solutions (source/), the history (.git),
    and sample submissions go with the first."""
    keep = set(CHILD_NEEDS)
    python_paths = [Path(p).resolve() for p in (sys.prefix, *sys.path) if p]
    secrets_ = []
    for entry in sorted(root.iterdir()):
        if entry.name in keep or any(entry.resolve() == p or entry.resolve() in p.parents for p in python_paths
                                     if entry.resolve() != root.resolve()):
            continue
        secrets_.append(entry)
    for assignment in sorted((root / "assignments").glob("*")):
        secrets_ += [p for p in (assignment / "hidden_checks.py", assignment / "assets") if p.exists()]
    return secrets_


def fingerprint(*folders: Path) -> dict:
    """Size and modification time of every file under `folders` (caches excluded)."""
    prints = {}
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [d for d in dirnames if d not in ("__pycache__", ".pytest_cache")]
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    continue
                prints[path] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return prints


@dataclass
class _Watch:
    """What the grader has seen of one child so far."""
    deadline: float                 # monotonic time when the current phase or probe runs out
    current: str | None = "cells"   # the cell or probe in progress (None between probes)
    phase: str = "cells"            # "cells", then "probes"
    done: bool = False              # the child reported that everything ran
    killed_for: str | None = None   # what was running when the grader killed the child
    exit_code: int | None = None

    def apply(self, record: dict, result: RunResult, limits: Limits) -> None:
        kind = record["event"]
        if kind == "isolation":
            result.isolation = record["notes"]
        elif kind == "cell_start":
            self.current = f"cell {record['id']}"
        elif kind == "cell":
            result.cells[record["id"]] = {"ok": record["ok"], "error": record.get("error", "")}
        elif kind == "start":
            self.current, self.phase = record["key"], "probes"
            self.deadline = time.monotonic() + limits.probe_timeout
        elif kind == "result":
            result.probes[record["key"]] = {"ok": True, "data": record["data"]}
            self.current = None
        elif kind == "error":
            result.probes[record["key"]] = {"ok": False, "error": record["error"]}
            self.current = None
        elif kind == "done":
            self.done, self.current = True, None


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Sandbox:
    """One zygote; `run` grades one job at a time. Use as a context manager."""

    def __init__(self, protect: tuple[Path, ...] = (), hide: tuple[Path, ...] = ()):
        """`protect`: folders verified unchanged after each run; `hide`: paths the
        child must not read, on top of `secret_paths()` (e.g. a class's submissions)."""
        self.protect = tuple(protect) or tuple(KIT_ROOT / name for name in CHILD_NEEDS)
        self.hide = [str(p) for p in (*secret_paths(), *hide)]
        self.uid = None
        if os.geteuid() == 0 and all(_readable_by_others(p) for p in (Path(sys.prefix), KIT_ROOT / "autograder",
                                                                      Path(shutil.__file__).parent)):
            self.uid = NOBODY
        self._zygote = None

    # --- zygote ---------------------------------------------------------------
    def __enter__(self) -> "Sandbox":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "HOME", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
        env.update(PYTHONPATH=str(KIT_ROOT), OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg")
        self._zygote = subprocess.Popen(
            [sys.executable, "-m", "autograder.zygote", *PRELOAD], cwd=KIT_ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        ready = self._read_message(timeout=120)
        if ready is None or "ready" not in ready:
            raise SandboxError("the sandbox's worker process did not start (is torch installed in this environment?)")

    def close(self) -> None:
        if self._zygote is not None:
            self._zygote.stdin.close()
            try:
                self._zygote.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._zygote.kill()
            self._zygote = None

    def _read_message(self, timeout: float):
        ready, _, _ = select.select([self._zygote.stdout], [], [], timeout)
        if not ready:
            return None
        line = self._zygote.stdout.readline()
        if not line:
            raise SandboxError("the sandbox's worker process died")
        return json.loads(line)

    # --- one grading job ---------------------------------------------------------
    def run(self, cells: list[dict], probes: list[dict], probes_path: Path, files: dict[str, Path],
            limits: Limits) -> RunResult:
        """Run `cells` then `probes` (each {"key", "probe", "args"}) in fresh children
        until every probe has an outcome. `files` are copied into the child's folder."""
        if self._zygote is None:
            self.start()
        result = RunResult()
        todo = list(probes)
        before = fingerprint(*self.protect)
        with tempfile.TemporaryDirectory(prefix="grade-", dir=scratch_dir()) as tmp:
            while True:
                remaining = self._run_once(Path(tmp), cells, todo, probes_path, files, limits, result)
                if not remaining or len(remaining) == len(todo):
                    break
                todo = remaining
        after = fingerprint(*self.protect)
        if after != before:
            changed = sorted(set(after.items()) ^ set(before.items()))
            result.incidents.append(f"tampering: files of the grader changed during the run: {', '.join(sorted({p for p, _ in changed}))[:500]}")
        return result

    def _run_once(self, tmp: Path, cells, probes, probes_path, files, limits: Limits, result: RunResult):
        """One child. Returns the probes that still have no outcome."""
        request, nonce = self._prepare(tmp, cells, probes, probes_path, files, limits)
        self._zygote.stdin.write(json.dumps(request) + "\n")
        self._zygote.stdin.flush()
        started = self._read_message(timeout=30)
        if started is None:
            raise SandboxError("the sandbox did not start a child")
        watch = self._watch(started["pid"], Path(request["events_path"]), nonce, limits, result)
        result.output = self._tail(Path(request["output_path"]), limits.output_kb * 1024)
        return self._conclude(watch, cells, probes, limits, result)

    def _prepare(self, tmp: Path, cells, probes, probes_path, files, limits: Limits):
        """A private folder for one child: its job, its events and output files, and
        a work folder holding copies of the submitted files. Returns the request."""
        attempt = tmp / secrets.token_hex(4)
        work = attempt / "work"
        work.mkdir(parents=True)
        os.chmod(attempt, 0o700)
        for name, src in files.items():  # names may hold a folder, e.g. results/run.json
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, work / name)
        if self.uid is not None:
            for path in [work, *work.rglob("*")]:
                os.chown(path, self.uid, self.uid)
        nonce = secrets.token_hex(16)
        (attempt / "job.json").write_text(json.dumps(
            {"nonce": nonce, "cells": cells, "probes": probes, "probes_path": str(probes_path)}))
        for name in ("events.jsonl", "output.txt"):
            (attempt / name).touch()
        request = {"job_path": str(attempt / "job.json"), "events_path": str(attempt / "events.jsonl"),
                   "output_path": str(attempt / "output.txt"), "work_dir": str(work), "uid": self.uid,
                   "limits": asdict(limits), "hide": self.hide, "scratch": str(scratch_dir())}
        return request, nonce

    def _watch(self, pid: int, events_path: Path, nonce: str, limits: Limits, result: RunResult) -> "_Watch":
        """Follow the child's events until it exits; kill it when its current cell
        phase or probe runs past its wall-clock limit."""
        watch = _Watch(deadline=time.monotonic() + limits.cells_timeout)
        buffer = ""
        with open(events_path) as events:
            while True:
                message = self._read_message(timeout=0.01)
                buffer += events.read()
                *lines, buffer = buffer.split("\n")
                for line in lines:
                    record = self._parse_event(line, nonce)
                    if record is not None:
                        watch.apply(record, result, limits)
                if message is not None and "exit" in message:
                    watch.exit_code = message["exit"]
                    break
                if watch.killed_for is None and time.monotonic() > watch.deadline:
                    watch.killed_for = watch.current
                    _kill_group(pid)
        _kill_group(pid)  # anything the child left in its group
        return watch

    @staticmethod
    def _conclude(watch: "_Watch", cells, probes, limits: Limits, result: RunResult):
        """Record why an unfinished child stopped; return the probes still to run."""
        if watch.done:
            return []
        if watch.killed_for is not None:
            seconds = limits.cells_timeout if watch.phase == "cells" else limits.probe_timeout
            reason = f"it did not finish within {seconds:g} seconds (an endless loop, or far too slow)"
        elif watch.exit_code in (-signal.SIGXCPU, -signal.SIGKILL):
            reason = f"the process was stopped after using its {limits.cpu_seconds} CPU seconds or its memory"
        else:
            reason = f"the process ended unexpectedly (exit code {watch.exit_code}), e.g. sys.exit(), os._exit() or a crash"
        if watch.current is not None or watch.killed_for is not None:
            result.incidents.append(f"{watch.killed_for or watch.current}: {reason}")

        remaining = [p for p in probes if p["key"] not in result.probes]
        if watch.phase == "cells":  # the cells themselves never finished: nothing can be measured
            for cell in cells:
                result.cells.setdefault(cell["id"], {"ok": False, "error": f"This cell was not completed: {reason}."})
            for p in remaining:
                result.probes[p["key"]] = {"ok": False, "error": f"The graded cells could not be run: {reason}."}
            return []
        if remaining and remaining[0]["key"] == watch.current:
            result.probes[watch.current] = {"ok": False, "error": f"Grading this stopped: {reason}."}
            remaining = remaining[1:]
        return remaining

    @staticmethod
    def _parse_event(line: str, nonce: str):
        try:
            record = json.loads(line)
        except ValueError:
            return None
        if not isinstance(record, dict) or record.get("nonce") != nonce or "event" not in record:
            return None
        return record

    @staticmethod
    def _tail(path: Path, limit: int) -> str:
        size = path.stat().st_size
        with open(path, "rb") as f:
            f.seek(max(0, size - limit))
            text = f.read().decode("utf-8", "replace")
        return ("[... earlier output cut ...]\n" if size > limit else "") + text
