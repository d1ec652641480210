"""Stage 2, sandbox: run student code in a contained child process, from the grader.

`Sandbox` starts one zygote (a pre-imported process, see `zygote.py`) and asks it
for a fresh child per run, each in its own container (`container.py`: a cgroup
for its whole process tree, its own namespaces, an allow-list root, nobody).
When the container cannot be built here the sandbox refuses to start
(`IsolationUnavailable`, fail closed) unless it was made with
`unsafe_no_isolation=True`, and then every result says so.

While the child runs, the grader reads its results channel (`channel.py`: a pipe
only the grader reads, framed, capped, checked against the grader's own list of
steps) and enforces the deadlines it derives from that list: all cells within
`cells_timeout`, each probe within `probe_timeout`, the whole submission within a
hard cap, whatever the child writes. If the child dies or hangs in the middle of
a probe, that probe fails alone: the grader starts a new child for the probes
still to do. A child that breaks the channel protocol fails everything it had not
reported, and the run is flagged. A child that died before its container was
ready (a failure of the machine, not of the student's code) raises
`InfrastructureError`: such a submission is not graded, and a batch retries it.
"""
from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from checklib.assignment import KIT_ROOT, Limits

from . import container
from .channel import ChannelBroken, FrameReader, Protocol
from .container import ChildCgroup, IsolationUnavailable  # noqa: F401 (IsolationUnavailable: for callers)

PRELOAD = ("torch", "torchvision", "torchvision.transforms.v2", "torchvision.datasets", "numpy", "PIL.Image",
           "pandas", "openpyxl", "yaml", "matplotlib.pyplot", "tqdm.auto", "autograder.child", "checklib.probes",
           "checklib.runner")
CHILD_NEEDS = ("autograder", "checklib", "hw_utils", "assignments")
RERUN_SECONDS = 15.0  # what the hard cap allows a fresh child to rerun the cells after a crash
UNSAFE_NOTE = "graded WITHOUT isolation (--unsafe-no-isolation): these results cannot be trusted"


@dataclass
class RunResult:
    """What came back from the child, as plain data."""
    cells: dict = field(default_factory=dict)    # cell id -> {"ok": bool, "error": str}
    probes: dict = field(default_factory=dict)   # probe key -> {"ok": bool, "data"| "error"}
    output: str = ""                             # the tail of what student code printed
    isolation: list = field(default_factory=list)  # what the sandbox could not enforce here
    incidents: list = field(default_factory=list)  # timeouts, crashes, tampering
    flags: list = field(default_factory=list)      # for a TA: channel tampering, grader files changed
    seconds: dict = field(default_factory=dict)    # probe key -> wall seconds from its start to its result,
                                                   # by the grader's clock (never a figure the child reports)


class SandboxError(RuntimeError):
    pass


class InfrastructureError(SandboxError):
    """The child died for a reason outside the student's code: the submission was not graded."""


def scratch_dir() -> Path:
    """The one folder under which the grader keeps every job's files and every
    unpacked submission (never inside a child's root)."""
    path = Path(tempfile.gettempdir()) / f"autograder-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


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


def hard_cap(limits: Limits, n_probes: int) -> float:
    """Wall seconds one submission may take in all, whatever its children write: its
    cells once, and each probe once plus a fresh child's start and cells (a probe that
    kills its child costs a rerun of the cells in a new one, at most RERUN_SECONDS)."""
    return limits.cells_timeout + n_probes * (limits.probe_timeout + min(limits.cells_timeout, RERUN_SECONDS))


@dataclass
class _Watch:
    """What the grader has seen of one child so far."""
    protocol: Protocol
    deadline: float                 # monotonic time when the current phase or probe runs out
    cap: float                      # monotonic time when the whole submission runs out
    ready: bool = False             # the container was built and the child reported in
    killed_for: str | None = None   # what was running when the grader killed the child
    capped: bool = False            # killed at the submission's hard cap
    broken: str | None = None       # why the channel was broken
    exit_code: int | None = None
    probe_started: float = 0.0      # monotonic time the current probe's start record arrived

    @property
    def current(self) -> str | None:
        kind, name = self.protocol.expected
        if self.protocol.finished or kind in ("ready", "done"):
            return None
        if kind == "cell_start":
            return None
        return f"cell {name}" if kind == "cell" else name

    def apply(self, record: dict, result: RunResult, limits: Limits) -> None:
        """Apply one accepted record; deadlines move by the grader's own count of steps."""
        kind = record["event"]
        if kind == "ready":
            self.ready = True
            result.isolation = record["isolation"]
        elif kind == "cell":
            result.cells[record["id"]] = {"ok": record["ok"], "error": record["error"]}
        elif kind == "start":
            self.probe_started = time.monotonic()
        elif kind == "result":
            result.probes[record["key"]] = {"ok": True, "data": record["data"]}
        elif kind == "error":
            result.probes[record["key"]] = {"ok": False, "error": record["error"]}
        if kind in ("result", "error"):
            result.seconds[record["key"]] = time.monotonic() - self.probe_started
        if kind in ("cell", "result", "error") and self.protocol.phase == "probes":  # the next probe's time starts
            self.deadline = time.monotonic() + limits.probe_timeout


class Sandbox:
    """One zygote; `run` grades one job at a time. Use as a context manager."""

    def __init__(self, protect: tuple[Path, ...] = (), hide: tuple[Path, ...] = (), unsafe_no_isolation: bool = False):
        """`protect`: folders verified unchanged after each run. `hide` is accepted for
        callers of the former deny-list; the child's root is now an allow-list, in which
        nothing but the kit's public code and its own work folder exists.
        `unsafe_no_isolation`: grade even where no container can be built (results say so)."""
        self.protect = tuple(protect) or tuple(KIT_ROOT / name for name in CHILD_NEEDS)
        self.unsafe = unsafe_no_isolation
        self.isolate = not unsafe_no_isolation
        self._zygote = None
        self._control = None
        self._rss = 0

    # --- zygote ---------------------------------------------------------------
    def __enter__(self) -> "Sandbox":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        missing = container.missing_mechanisms() if self.isolate else []
        if missing:
            raise IsolationUnavailable(_refusal(missing))
        if self.isolate:
            container.sweep_stale_cgroups()
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "HOME", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
        env.update(PYTHONPATH=str(KIT_ROOT), OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._selftest = tempfile.mkdtemp(prefix="selftest-", dir=scratch_dir()) if self.isolate else None
        args = ["--control-fd", str(theirs.fileno())] + (["--self-test", self._selftest] if self.isolate else [])
        self._zygote = subprocess.Popen(
            [sys.executable, "-m", "autograder.zygote", *args, *PRELOAD], cwd=KIT_ROOT, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(),), start_new_session=True)
        theirs.close()
        self._control = ours
        ready = self._read_message(timeout=180)
        if ready is None or "ready" not in ready:
            self.close()
            raise SandboxError("the sandbox's worker process did not start (is torch installed in this environment?)")
        if ready.get("missing"):
            self.close()
            raise IsolationUnavailable(_refusal(ready["missing"]))
        self._rss = _rss_bytes(self._zygote.pid)

    def close(self) -> None:
        if self._zygote is not None:
            try:
                self._control.close()
                self._zygote.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._zygote.kill()
                self._zygote.wait()
            self._zygote = None
        if getattr(self, "_selftest", None):
            shutil.rmtree(self._selftest, ignore_errors=True)
            self._selftest = None

    def kill(self) -> None:
        """Stop the zygote and its child now (e.g. a batch entry ran past its outer cap);
        the run in progress then ends with an InfrastructureError."""
        if self._zygote is not None:
            try:
                os.killpg(self._zygote.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _read_message(self, timeout: float):
        ready, _, _ = select.select([self._control], [], [], timeout)
        if not ready:
            return None
        try:
            data = self._control.recv(1 << 16)
        except OSError:
            data = b""
        if not data:
            raise InfrastructureError("the sandbox's worker process died")
        return json.loads(data)

    # --- one grading job ---------------------------------------------------------
    def run(self, cells: list[dict], probes: list[dict], probes_path: Path, files: dict[str, Path],
            limits: Limits) -> RunResult:
        """Run `cells` then `probes` (each {"key", "probe", "args"}) in fresh children
        until every probe has an outcome. `files` are copied into the child's folder."""
        if self._zygote is None:
            self.start()
        result = RunResult()
        if self.unsafe:
            result.isolation.append(UNSAFE_NOTE)
        todo = list(probes)
        cap = time.monotonic() + hard_cap(limits, len(probes))
        before = fingerprint(*self.protect)
        with tempfile.TemporaryDirectory(prefix="grade-", dir=scratch_dir()) as tmp:
            while True:
                remaining = self._run_once(Path(tmp), cells, todo, probes_path, files, limits, result, cap)
                if not remaining or len(remaining) == len(todo):
                    break
                todo = remaining
        after = fingerprint(*self.protect)
        if after != before:
            changed = sorted(set(after.items()) ^ set(before.items()))
            note = f"tampering: files of the grader changed during the run: {', '.join(sorted({p for p, _ in changed}))[:500]}"
            result.incidents.append(note)
            result.flags.append(note)
        if self.unsafe:
            result.isolation = [UNSAFE_NOTE, *[n for n in result.isolation if n != UNSAFE_NOTE]]
        return result

    def _run_once(self, tmp: Path, cells, probes, probes_path, files, limits: Limits, result: RunResult, cap: float):
        """One child. Returns the probes that still have no outcome."""
        secret = secrets.token_hex(16)  # every record of this child must carry it (see channel.Protocol)
        request = self._prepare(tmp, cells, probes, probes_path, files, limits, secret)
        cgroup = None
        read_end, write_end = os.pipe()
        try:
            if self.isolate:
                try:
                    cgroup = ChildCgroup((limits.memory_mb + request["work_mb"]) * 2**20 + self._rss)
                except OSError as err:
                    raise InfrastructureError(f"could not create the child's control group ({err})") from None
                request["cgroup_procs"] = cgroup.procs_files
            try:
                socket.send_fds(self._control, [json.dumps(request).encode()], [write_end])
            except OSError as err:
                raise InfrastructureError(f"the sandbox's worker process is gone ({err})") from None
            os.close(write_end)
            write_end = None
            started = self._read_message(timeout=30)
            if started is None or "pid" not in started:
                raise InfrastructureError("the sandbox did not start a child")
            protocol = Protocol([c["id"] for c in cells], [p["key"] for p in probes], secret)
            watch = self._watch(started["pid"], read_end, protocol, limits, result, cap, cgroup)
            if cgroup is not None and cgroup.memory_exhausted() and watch.exit_code == -signal.SIGKILL:
                watch.exit_code = "memory"
        finally:
            os.close(read_end)
            if write_end is not None:
                os.close(write_end)
            if cgroup is not None:
                cgroup.remove()
        result.output = self._tail(Path(request["output_path"]), limits.output_kb * 1024)
        if not watch.ready:
            raise InfrastructureError(f"the sandboxed child ended before its container was ready (exit status "
                                      f"{watch.exit_code}); the machine may be short of memory or processes: "
                                      f"{result.output[-500:]}")
        return self._conclude(watch, cells, probes, limits, result)

    def _prepare(self, tmp: Path, cells, probes, probes_path, files, limits: Limits, secret: str) -> dict:
        """A private folder for one child: its job (with the run's `secret`: the child reads
        it before it locks down, and then nothing of this folder is in its root), its output
        file, a work folder holding copies of the submitted files (a symbolic link is
        refused), and an empty folder on which the child builds its root."""
        attempt = tmp / secrets.token_hex(4)
        work = attempt / "work"
        work.mkdir(parents=True)
        (attempt / "root").mkdir()
        os.chmod(attempt, 0o700)
        for name, src in files.items():  # names may hold a folder, e.g. results/run.json
            if Path(src).is_symlink() or any(p.is_symlink() for p in Path(src).parents):
                continue  # never follow a student's link (e.g. to a solution): the file counts as missing
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, work / name, follow_symlinks=False)
        (attempt / "job.json").write_text(json.dumps({"cells": cells, "probes": probes, "probes_path": str(probes_path),
                                                      "secret": secret}))
        (attempt / "output.txt").touch()
        return {"job_path": str(attempt / "job.json"), "output_path": str(attempt / "output.txt"),
                "work_dir": str(work), "root_dir": str(attempt / "root"), "limits": asdict(limits),
                "work_mb": max(64, 2 * limits.file_mb), "isolate": self.isolate, "cgroup_procs": []}

    def _watch(self, pid: int, read_end: int, protocol: Protocol, limits: Limits, result: RunResult,
               cap: float, cgroup) -> _Watch:
        """Follow the child's records until it exits; kill it when its cells, its current
        probe or the whole submission run past their time, or when it breaks the channel."""
        now = time.monotonic()
        watch = _Watch(protocol, deadline=now + limits.cells_timeout, cap=cap)
        reader = FrameReader()
        os.set_blocking(read_end, False)
        channel_open = True

        def kill():
            if cgroup is not None:
                cgroup.kill_all()
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

        def receive() -> bool:
            """Read what the pipe holds now; False at its end (every writer gone)."""
            try:
                data = os.read(read_end, 1 << 20)
            except BlockingIOError:
                return True
            if data and watch.broken is None:
                try:
                    for record in reader.feed(data):
                        watch.apply(protocol.accept(record), result, limits)
                except ChannelBroken as err:
                    watch.broken = str(err)
                    kill()
            return data != b""

        while True:
            waiting = [self._control] + ([read_end] if channel_open else [])
            ready, _, _ = select.select(waiting, [], [], 0.05)
            if read_end in ready:
                channel_open = receive()
            if self._control in ready:
                message = self._read_message(timeout=0)
                if message is not None and "exit" in message:
                    watch.exit_code = message["exit"]
                    break
            now = time.monotonic()
            if watch.killed_for is None and watch.broken is None and (now > watch.deadline or now > watch.cap):
                watch.killed_for = watch.current or protocol.phase
                watch.capped = now > watch.cap
                kill()
        kill()  # anything the child left behind
        drain_until = time.monotonic() + 5  # records the child wrote before it ended
        while channel_open and time.monotonic() < drain_until:
            if select.select([read_end], [], [], 0.05)[0]:
                channel_open = receive()
        return watch

    def _conclude(self, watch: _Watch, cells, probes, limits: Limits, result: RunResult):
        """Record why an unfinished child stopped; return the probes still to run."""
        if watch.protocol.finished:
            return []
        remaining = [p for p in probes if p["key"] not in result.probes]
        if watch.broken is not None:
            flag = f"channel: the submission's code wrote to the grader's results channel ({watch.broken})"
            result.flags.append(flag)
            result.incidents.append(flag)
            message = ("Grading stopped: code in your notebook wrote into the grader's results channel "
                       f"({watch.broken}). Nothing measured after that point can be trusted, so the remaining "
                       "checks earn no points; a TA will look at your submission.")
            for cell in cells:
                result.cells.setdefault(cell["id"], {"ok": False, "error": message})
            for p in remaining:
                result.probes[p["key"]] = {"ok": False, "error": message}
            return []
        if watch.capped:
            reason = (f"the submission used up its total grading time ({hard_cap(limits, len(probes)):g} seconds)")
        elif watch.killed_for is not None:
            seconds = limits.cells_timeout if watch.killed_for == "cells" or str(watch.killed_for).startswith("cell ") \
                else limits.probe_timeout
            reason = f"it did not finish within {seconds:g} seconds (an endless loop, or far too slow)"
        elif watch.exit_code == "memory":
            reason = f"the process was stopped after using its {limits.memory_mb} MB of memory"
        elif watch.exit_code in (-signal.SIGXCPU, -signal.SIGKILL):
            reason = f"the process was stopped after using its {limits.cpu_seconds} CPU seconds or its memory"
        else:
            reason = f"the process ended unexpectedly (exit code {watch.exit_code}), e.g. sys.exit(), os._exit() or a crash"
        current = watch.killed_for or watch.current
        if current is not None and current not in ("cells", "probes"):
            result.incidents.append(f"{current}: {reason}")
        elif current is not None:
            result.incidents.append(f"{current}: {reason}")

        if watch.protocol.phase == "cells" or watch.capped:
            for cell in cells:
                result.cells.setdefault(cell["id"], {"ok": False, "error": f"This cell was not completed: {reason}."})
            what = "The graded cells could not be run" if watch.protocol.phase == "cells" else "Grading this stopped"
            for p in remaining:
                result.probes[p["key"]] = {"ok": False, "error": f"{what}: {reason}."}
            return []
        if remaining and remaining[0]["key"] == watch.current:
            result.probes[watch.current] = {"ok": False, "error": f"Grading this stopped: {reason}."}
            remaining = remaining[1:]
        return remaining

    @staticmethod
    def _tail(path: Path, limit: int) -> str:
        size = path.stat().st_size
        with open(path, "rb") as f:
            f.seek(max(0, size - limit))
            text = f.read().decode("utf-8", "replace")
        return ("[... earlier output cut ...]\n" if size > limit else "") + text


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _refusal(missing: list[str]) -> str:
    return ("Refusing to grade: the sandbox cannot isolate student code on this machine.\n  - "
            + "\n  - ".join(missing)
            + "\nFix the above, or (for tests and demos only) pass --unsafe-no-isolation: every result is then "
              "marked as graded without isolation.")
