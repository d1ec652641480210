"""The limits of the machine the grader runs on, and a cgroup to impose some.

Gradescope runs `run_autograder` in a container with a memory limit (768 MB by
default) and half a CPU. Two things follow:

  - `platform_memory_mb()` reads the memory limit of the cgroup this process
    lives in (v2 `memory.max`, v1 `memory.limit_in_bytes`), and `fit_limits`
    shrinks a child's `memory_mb` so that the child runs out of address space
    (a MemoryError the grader reports) before the container runs out of memory
    (the kernel's OOM killer, which may pick the grader and lose the grade);
  - `LimitedGroup` runs a command inside a fresh cgroup with a memory and CPU
    limit, v1 or v2, and reports its peak memory: the Gradescope test and
    benchmark use it to simulate the platform on this machine.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .container import cgroup_mounts, kill_groups, own_cgroups, remove_groups

CGROUP_ROOT = Path("/sys/fs/cgroup")
UNLIMITED = 1 << 60          # v1 reports "no limit" as a huge number (about 2**63)
GRADER_RESERVE_MB = 480      # the grader and a zygote when nothing better is known (benchmarks/gradescope_limits.py)
COPY_MARGIN_MB = 96          # the child's copies of zygote pages it writes to: not address space, yet memory
MIN_CHILD_MB = 128           # below this a child cannot even build the homework's models


def _own_cgroup(controller: str) -> Path | None:
    """The folder of this process's cgroup for `controller` (v1), or its unified cgroup (v2),
    found as the sandbox finds the groups it nests each child under."""
    mounts = cgroup_mounts()
    key = controller if controller in mounts else "" if "" in mounts else None
    if key is None:
        return None
    return mounts[key] / own_cgroups().get(key, "/").lstrip("/")


def platform_memory_mb() -> int | None:
    """The memory limit of this process's cgroup (and of its parents, the tightest), in MB; None if unlimited."""
    folder = _own_cgroup("memory")
    if folder is None:
        return None
    tightest = None
    for level in [folder, *folder.parents]:
        if level == CGROUP_ROOT.parent or not str(level).startswith(str(CGROUP_ROOT)):
            break
        for name in ("memory.max", "memory.limit_in_bytes"):
            try:
                text = (level / name).read_text().strip()
            except OSError:
                continue
            if text != "max" and int(text) < UNLIMITED:
                tightest = min(tightest or int(text), int(text))
    return None if tightest is None else tightest // 2**20


def used_memory_mb() -> float | None:
    """Anonymous memory (process heaps, not page cache) used now by this process's cgroup."""
    folder = _own_cgroup("memory")
    if folder is None:
        return None
    try:
        stat = dict(line.split() for line in (folder / "memory.stat").read_text().splitlines())
    except (OSError, ValueError):
        return None
    value = stat.get("anon") or stat.get("total_rss")
    return None if value is None else int(value) / 2**20


def fit_limits(limits, platform_mb: int | None = None, used_mb: float | None = None):
    """`limits` with the child's memory (`memory_mb`, address space on top of the zygote's)
    cut to what the platform's memory limit leaves: the limit, less what is in use
    (`used_mb`: best measured once the zygote runs; else GRADER_RESERVE_MB), less a margin
    for pages the child copies from the zygote. So a memory-hungry child meets a
    MemoryError, which the grader reports, before the container's OOM killer, which may
    kill the grader. Unchanged where there is no platform limit or the rubric's is smaller."""
    platform_mb = platform_memory_mb() if platform_mb is None else platform_mb
    if platform_mb is None:
        return limits
    used = GRADER_RESERVE_MB if used_mb is None else used_mb
    room = max(MIN_CHILD_MB, int(platform_mb - used - COPY_MARGIN_MB))
    if room >= limits.memory_mb:
        return limits
    return dataclasses.replace(limits, memory_mb=room)


# --- simulating a platform: a cgroup with a memory and a CPU limit ----------------------------

class CgroupUnavailable(RuntimeError):
    """This machine does not let us create a limited cgroup (not root, or no controller)."""


@dataclass
class Usage:
    peak_mb: float          # the cgroup's peak memory, page cache that was never reclaimed included
    peak_anon_mb: float     # the peak of its anonymous memory (process heaps), sampled every 20 ms
    oom_kills: int          # processes the kernel killed for want of memory
    seconds: float          # wall time
    cpu_seconds: float      # CPU time of everything in the group


class LimitedGroup:
    """A fresh cgroup with `memory_mb` and `cpus` limits (v2, or v1's memory and cpu controllers).

        with LimitedGroup(768, 0.5) as group:
            proc = group.run(["bash", "run_autograder"], env=...)
            print(group.usage())
    """

    def __init__(self, memory_mb: int, cpus: float):
        self.memory_mb, self.cpus = memory_mb, cpus
        self.name = f"kit-limit-{uuid.uuid4().hex[:8]}"
        self.folders: dict[str, Path] = {}
        self._peak_anon = 0
        self._stop = threading.Event()
        self.seconds = 0.0

    @property
    def version(self) -> int:
        return 2 if (CGROUP_ROOT / "cgroup.controllers").is_file() else 1

    def __enter__(self) -> "LimitedGroup":
        if os.geteuid() != 0:
            raise CgroupUnavailable("creating a cgroup needs root")
        period = 100_000
        quota = int(self.cpus * period)
        limit = self.memory_mb * 2**20
        try:
            if self.version == 2:
                control = CGROUP_ROOT / "cgroup.subtree_control"
                missing = {"memory", "cpu"} - set(control.read_text().split())
                if missing:  # let children of the root have these controllers
                    control.write_text(" ".join(f"+{c}" for c in sorted(missing)))
                folder = CGROUP_ROOT / self.name
                folder.mkdir()
                self.folders = {"unified": folder}
                (folder / "memory.max").write_text(str(limit))
                if (folder / "memory.swap.max").exists():  # no swapping past the limit
                    (folder / "memory.swap.max").write_text("0")
                (folder / "cpu.max").write_text(f"{quota} {period}")
            else:
                for controller in ("memory", "cpu"):
                    if not (CGROUP_ROOT / controller).is_dir():
                        raise CgroupUnavailable(f"no cgroup v1 {controller} controller at {CGROUP_ROOT / controller}")
                    folder = CGROUP_ROOT / controller / self.name
                    folder.mkdir()
                    self.folders[controller] = folder
                if (CGROUP_ROOT / "cpuacct").is_dir() and not (CGROUP_ROOT / "cpuacct").samefile(CGROUP_ROOT / "cpu"):
                    (CGROUP_ROOT / "cpuacct" / self.name).mkdir()  # only to count CPU time
                    self.folders["cpuacct"] = CGROUP_ROOT / "cpuacct" / self.name
                memory = self.folders["memory"]
                (memory / "memory.limit_in_bytes").write_text(str(limit))
                if (memory / "memory.memsw.limit_in_bytes").exists():  # no swapping past the limit
                    (memory / "memory.memsw.limit_in_bytes").write_text(str(limit))
                (self.folders["cpu"] / "cpu.cfs_period_us").write_text(str(period))
                (self.folders["cpu"] / "cpu.cfs_quota_us").write_text(str(quota))
        except (OSError, CgroupUnavailable) as err:
            self.__exit__()  # remove what was made
            if isinstance(err, CgroupUnavailable):
                raise
            raise CgroupUnavailable(f"cannot set up a limited cgroup here ({err})") from None
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        remove_groups(list(self.folders.values()))

    def _join(self) -> None:
        """Run in the child between fork and exec: move it into every folder of the group."""
        for folder in self.folders.values():
            (folder / "cgroup.procs").write_text(str(os.getpid()))

    def _memory(self) -> Path:
        return self.folders.get("memory") or self.folders["unified"]

    def _sample(self) -> None:
        stat = self._memory() / "memory.stat"
        key = "anon" if self.version == 2 else "total_rss"
        while not self._stop.wait(0.02):
            try:
                for line in stat.read_text().splitlines():
                    name, value = line.split()
                    if name == key:
                        self._peak_anon = max(self._peak_anon, int(value))
            except OSError:
                return

    def run(self, command: list[str], timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
        """Run `command` inside the group (every process it starts stays in it); output is captured."""
        start = time.monotonic()
        proc = subprocess.Popen(command, preexec_fn=self._join, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, **kwargs)
        sampler = threading.Thread(target=self._sample, daemon=True)  # started after the fork, never during it
        sampler.start()
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_groups(list(self.folders.values()))
            out, err = proc.communicate()
        finally:
            self.seconds += time.monotonic() - start
            self._stop.set()
            sampler.join()
            self._stop.clear()
        return subprocess.CompletedProcess(command, proc.returncode, out, err)

    def usage(self) -> Usage:
        memory = self._memory()
        if self.version == 2:
            peak_file = memory / "memory.peak"
            peak = int(peak_file.read_text()) if peak_file.exists() else int((memory / "memory.current").read_text())
            events = dict(line.split() for line in (memory / "memory.events").read_text().splitlines())
            ooms = int(events.get("oom_kill", 0))
            cpu = dict(line.split() for line in (memory / "cpu.stat").read_text().splitlines())
            cpu_seconds = int(cpu.get("usage_usec", 0)) / 1e6
        else:
            peak = int((memory / "memory.max_usage_in_bytes").read_text())
            control = dict(line.split() for line in (memory / "memory.oom_control").read_text().splitlines())
            ooms = int(control.get("oom_kill", 0))
            cpu_seconds = 0.0
            for path in (self.folders.get("cpuacct", self.folders["cpu"]) / "cpuacct.usage",):
                if path.exists():
                    cpu_seconds = int(path.read_text()) / 1e9
                    break
        return Usage(peak_mb=peak / 2**20, peak_anon_mb=self._peak_anon / 2**20, oom_kills=ooms,
                     seconds=self.seconds, cpu_seconds=cpu_seconds)
