"""A container for each sandboxed child, built from the kernel's own mechanisms.

Grader side (`ChildCgroup`, `missing_mechanisms`): one control group per child,
created under the grader's own group (so a platform limit on the grader covers
its children too), with a memory, process-count and CPU limit for the child's
whole process tree; it is emptied (every process killed) and removed after
the run. cgroup v1 (memory, pids, cpu hierarchies, as on the kit's machine) and
v2 (one unified group) are both supported.

Child side (`enter`), run by the zygote's freshly forked child before any
student code, as root:
  1. join the child's cgroup;
  2. new mount, PID, network, IPC and UTS namespaces (System V shared memory and
     message queues die with the child; no network; no view of other processes);
  3. fork once more so the student's code is PID 1 of its namespace: when it
     ends, every process it started ends with it;
  4. an allow-list root: a small tmpfs holding read-only bind mounts of the
     system's libraries, the interpreter and its packages, and the kit's
     public code only (autograder/, checklib/, hw_utils/ and of each assignment
     the files its release ships, `release.public_files`, without the full
     rubric); a fresh read-only /proc of
     the new PID namespace; a few device nodes; a size-limited tmpfs work folder
     into which the submitted files are copied (symbolic links refused);
     `pivot_root` into it, the old root detached;
  5. then an unprivileged user (nobody), no capabilities, no new privileges.
If any step fails the child exits with SETUP_FAILED before reading student code.
"""
from __future__ import annotations

import ctypes
import os
import platform
import secrets
import signal
import sys
import time
from pathlib import Path

from checklib.assignment import KIT_ROOT

NOBODY = 65534
WORK_DIR = "/submission"      # the child's work folder, inside its own root
PIDS_MAX = 64                 # processes (and threads) of one child's whole tree
CPU_CORES = 1                 # CPU bandwidth of one child's whole tree
SETUP_FAILED = 71             # the child's exit status when its container could not be built
KIT_PUBLIC = ("autograder", "checklib", "hw_utils")
SIMULATE_ENV = "AUTOGRADER_SIMULATE_MISSING"  # tests: pretend a mechanism is missing (can only refuse more)

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}

_libc = ctypes.CDLL(None, use_errno=True)


class IsolationUnavailable(RuntimeError):
    """The container cannot be built here; the message says what is missing and how to run the grader."""


# --- grader side: control groups ---------------------------------------------------

def own_cgroups() -> dict[str, str]:
    """This process's group per v1 controller, and "" -> its v2 group."""
    groups = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            groups[controller] = path
    return groups


def cgroup_mounts() -> dict[str, Path]:
    """Mount point per v1 controller, and "" -> the v2 mount (if it has controllers)."""
    mounts = {}
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, point, fstype, options = line.split()[:4]
        if fstype == "cgroup":
            for opt in options.split(","):
                if opt in ("memory", "pids", "cpu"):
                    mounts[opt] = Path(point)
        elif fstype == "cgroup2" and (Path(point) / "cgroup.controllers").is_file():
            if (Path(point) / "cgroup.controllers").read_text().split():
                mounts.setdefault("", Path(point))
    return mounts


def _v1_quota_within(parent: Path, quota_us: int, period_us: int = 100000) -> int:
    """`quota_us` per `period_us`, but no more than the nearest limited ancestor group
    allows: cgroup v1 refuses (EINVAL) a quota above it, e.g. under Gradescope's half CPU."""
    for group in (parent, *parent.parents):
        try:
            limit = int((group / "cpu.cfs_quota_us").read_text())
            period = int((group / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):  # above the hierarchy's root
            return quota_us
        if limit > 0:  # -1: no limit at this level
            return min(quota_us, limit * period_us // period)
    return quota_us


class ChildCgroup:
    """The control group(s) of one child: created with its limits, emptied and removed after."""

    def __init__(self, memory_bytes: int):
        mounts, own = cgroup_mounts(), own_cgroups()
        name = f"autograder-{os.getpid()}-{secrets.token_hex(4)}"
        self.version = 1 if all(c in mounts for c in ("memory", "pids", "cpu")) else 2
        self.dirs: list[Path] = []
        try:
            if self.version == 1:
                for controller in ("memory", "pids", "cpu"):
                    self.dirs.append(self._make(mounts[controller] / own.get(controller, "/").lstrip("/") / name))
                memory, pids, cpu = self.dirs
                (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
                if (memory / "memory.memsw.limit_in_bytes").exists():  # no escape into swap
                    (memory / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
                (pids / "pids.max").write_text(str(PIDS_MAX))
                (cpu / "cpu.cfs_period_us").write_text("100000")
                (cpu / "cpu.cfs_quota_us").write_text(str(_v1_quota_within(cpu.parent, 100000 * CPU_CORES)))
            else:
                if "" not in mounts:
                    raise OSError("no cgroup v2 mount with controllers and no cgroup v1 memory/pids/cpu hierarchies")
                parent = mounts[""] / own.get("", "/").lstrip("/")
                wanted = {"memory", "pids", "cpu"}
                enabled = set((parent / "cgroup.subtree_control").read_text().split())
                for controller in sorted(wanted - enabled):
                    (parent / "cgroup.subtree_control").write_text(f"+{controller}")
                group = self._make(parent / name)
                self.dirs.append(group)
                (group / "memory.max").write_text(str(memory_bytes))
                if (group / "memory.swap.max").exists():
                    (group / "memory.swap.max").write_text("0")
                (group / "pids.max").write_text(str(PIDS_MAX))
                (group / "cpu.max").write_text(f"{100000 * CPU_CORES} 100000")
        except OSError:
            self.remove()
            raise

    @staticmethod
    def _make(path: Path) -> Path:
        path.mkdir()
        return path

    @property
    def procs_files(self) -> list[str]:
        """What the child writes its PID into to join its groups."""
        return [str(d / "cgroup.procs") for d in self.dirs]

    def pids(self) -> list[int]:
        return group_pids(self.dirs)

    def memory_exhausted(self) -> bool:
        """Whether the kernel had to refuse the child memory (it was then killed)."""
        for d in self.dirs:
            for name, marker in (("memory.failcnt", None), ("memory.events", "oom_kill")):
                try:
                    text = (d / name).read_text()
                except OSError:
                    continue
                if marker is None and text.strip() not in ("", "0"):
                    return True
                if marker is not None and any(line.split()[0] == marker and line.split()[1] != "0"
                                              for line in text.splitlines()):
                    return True
        return False

    def kill_all(self) -> None:
        kill_groups(self.dirs)

    def remove(self) -> None:
        remove_groups(self.dirs)
        self.dirs = []


def group_pids(folders: list[Path]) -> list[int]:
    """Every process in the cgroup folders (any hierarchy, v1 or v2)."""
    found = set()
    for folder in folders:
        try:
            found.update(int(p) for p in (folder / "cgroup.procs").read_text().split())
        except OSError:
            pass
    return sorted(found)


def kill_groups(folders: list[Path], attempts: int = 50) -> None:
    """SIGKILL every process in the groups until none is left (a fork in between is caught next round)."""
    for _ in range(attempts):
        pids = group_pids(folders)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)


def remove_groups(folders: list[Path], attempts: int = 100) -> None:
    """Empty the groups (kill_groups), then remove them, deepest first. A killed process
    leaves its group a moment after it dies, so removal is retried, killing again between
    tries in case something was still starting. Used for every group the kit makes: a
    child's container and the Gradescope stand-in's limited group."""
    kill_groups(folders)
    for folder in reversed(folders):
        for _ in range(attempts):
            try:
                folder.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                kill_groups([folder], attempts=1)
                time.sleep(0.01)


def sweep_stale_cgroups() -> None:
    """Remove the groups a killed grader left behind (named after its PID, which is gone);
    their processes died with that grader (parent-death signal), so they are empty."""
    mounts, own = cgroup_mounts(), own_cgroups()
    for controller, mount in mounts.items():
        parent = mount / own.get(controller, "/").lstrip("/")
        for group in parent.glob("autograder-*-*"):
            try:
                pid = int(group.name.split("-")[1])
            except ValueError:
                continue
            if not Path(f"/proc/{pid}").exists():
                try:
                    group.rmdir()
                except OSError:
                    pass


def missing_mechanisms() -> list[str]:
    """What this machine lacks for `enter` (empty when everything is there). Each
    entry says what is missing and how to provide it. The namespaces themselves
    are tried by the zygote at start (see `self_test`)."""
    missing = []
    simulated = [s for s in os.environ.get(SIMULATE_ENV, "").split(",") if s]
    if os.geteuid() != 0 or "root" in simulated:
        missing.append("root: the grader must run as root to build each child's container "
                       "(in Docker: `docker run --privileged`, or add CAP_SYS_ADMIN and an unconfined seccomp profile)")
    if platform.machine() not in SYS_PIVOT_ROOT:
        missing.append(f"pivot_root: unsupported processor architecture {platform.machine()}")
    try:
        if "cgroup" in simulated:
            raise OSError("simulated")
        ChildCgroup(2**20 * 64).remove()
    except OSError as err:
        own = own_cgroups()
        missing.append(f"cgroups: cannot create a control group for the child under the grader's own "
                       f"({own.get('memory') or own.get('')}) in /sys/fs/cgroup ({err}); mount the cgroup file "
                       f"system writable (Docker: `--privileged` or `--cgroupns=private`), with the memory, pids "
                       f"and cpu controllers")
    return missing


# --- child side ---------------------------------------------------------------------

def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0, data: str | None = None):
    _check(_libc.mount(source and source.encode(), target.encode(), fstype and fstype.encode(),
                       ctypes.c_ulong(flags), data and data.encode()), f"mount {source} on {target}")


def _bind_readonly(source: str, target: str) -> None:
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    _mount(source, target, None, MS_BIND | MS_REC)
    _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def root_entries(assignments: Path = KIT_ROOT / "assignments") -> list[tuple[str, str]]:
    """(source, path inside the root) of every read-only bind mount: the allow-list."""
    entries: list[tuple[str, str]] = []
    for top in ("/usr", "/etc/ld.so.cache", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/localtime"):
        if os.path.exists(top):
            entries.append((top, top))
    kit = str(KIT_ROOT)
    python = {os.path.dirname(os.__file__)}          # the standard library
    for entry in sys.path:                             # packages; the kit itself only in part, below
        entry = os.path.abspath(entry or ".")
        if os.path.isdir(entry) and entry != kit and not kit.startswith(entry + os.sep):
            python.add(entry)
    for entry in sorted(python):
        if not any(entry.startswith(other + os.sep) for other in python):
            entries.append((os.path.realpath(entry), entry))
    for name in KIT_PUBLIC:
        if (KIT_ROOT / name).is_dir():
            entries.append((str(KIT_ROOT / name), str(KIT_ROOT / name)))
    from .release import public_files  # the release's own rule: a child sees what students are given

    for folder in sorted(p for p in assignments.iterdir() if p.is_dir() and not p.is_symlink()):
        for item in public_files(folder):
            if item.name != "rubric.yaml":  # the full rubric names hidden items; the child needs none of it
                entries.append((str(item), str(item)))
    return entries


def _copy_work(source: str, target: str) -> None:
    """The submitted files, copied as nobody's; a symbolic link anywhere is refused."""
    for dirpath, dirnames, filenames in os.walk(source):
        rel = os.path.relpath(dirpath, source)
        for name in dirnames:
            os.mkdir(os.path.join(target, rel, name), 0o700)
            os.chown(os.path.join(target, rel, name), NOBODY, NOBODY)
        for name in filenames:
            src_fd = os.open(os.path.join(dirpath, name), os.O_RDONLY | os.O_NOFOLLOW)
            dst = os.path.join(target, rel, name)
            dst_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                while chunk := os.read(src_fd, 1 << 20):
                    os.write(dst_fd, chunk)
            finally:
                os.close(src_fd)
                os.close(dst_fd)
            os.chown(dst, NOBODY, NOBODY)


def _pivot_root(new_root: str) -> None:
    os.chdir(new_root)
    number = SYS_PIVOT_ROOT[platform.machine()]
    _check(_libc.syscall(ctypes.c_long(number), b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "detach the old root")
    os.chdir("/")


def enter(req: dict, entries: list[tuple[str, str]]) -> str:
    """Lock this (freshly forked, root) process into its container; returns the work folder.
    Raises OSError when a step fails: the caller must then exit without running student code."""
    for procs in req["cgroup_procs"]:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
    _become_pid_namespace_init()
    _mount(None, "/", None, MS_REC | MS_PRIVATE)     # nothing done here reaches the grader's mounts
    root = req["root_dir"]
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for source, target in entries:
        _bind_readonly(source, root + target)
    for link, to in (("/bin", "usr/bin"), ("/lib", "usr/lib"), ("/lib64", "usr/lib64"), ("/sbin", "usr/sbin")):
        if os.path.islink(link) and not os.path.exists(root + link):
            os.symlink(to, root + link)
    os.makedirs(root + "/dev")
    for device in ("null", "zero", "full", "random", "urandom"):
        _bind_readonly(f"/dev/{device}", f"{root}/dev/{device}")
    os.makedirs(root + "/dev/shm")
    _mount("tmpfs", root + "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=16m,mode=1777")
    os.makedirs(root + "/proc")
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)
    work = root + WORK_DIR
    os.makedirs(work)
    _mount("tmpfs", work, "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={int(req['work_mb'])}m,mode=0700,uid={NOBODY},gid={NOBODY}")
    _copy_work(req["work_dir"], work)
    if not os.path.lexists(root + "/tmp"):  # (it exists, read-only, when the kit itself lies under /tmp)
        os.symlink(WORK_DIR.lstrip("/"), root + "/tmp")
    _mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    _pivot_root(root)
    return WORK_DIR


def _become_pid_namespace_init() -> None:
    """Fork once more so what follows runs as PID 1 of the new PID namespace (all
    its descendants die with it); this process only waits and exits the same way."""
    pid = os.fork()
    if pid == 0:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        return
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):  # die the same way, so the grader reads the same cause
        sig = os.WTERMSIG(status)
        if sig != signal.SIGKILL:
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 70)


def drop_to_nobody() -> None:
    """No root, no capabilities (setuid clears them), no way to regain privileges."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]  # nobody's count is shared by all children: the cgroup caps each
    resource.setrlimit(resource.RLIMIT_NPROC, (hard, hard))
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # setuid cleared it: die with the process that waits for us
    if os.getuid() != NOBODY or os.geteuid() != NOBODY:
        raise OSError("could not become nobody")
