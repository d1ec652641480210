"""A pre-imported process that forks one sandboxed child per grading run.

Importing torch takes seconds; forking a process that already has it takes
milliseconds. The grader (`sandbox.py`) starts this zygote once and sends it
one JSON request per line on stdin; the zygote answers on stdout:

    {"pid": N}                            the child started
    {"pid": N, "exit": code, "signal": s} the child ended (and every process it left was killed)

The zygote itself never runs student code and never sees expected values. The
forked child locks itself down before it reads any student code:
  - a new session (so the grader can kill its whole process group),
  - no network (a new, empty network namespace),
  - when the grader runs as root: its own mount namespace in which every file
    system is read-only, the grader's secrets (solutions, hidden checks, other
    submissions) are replaced by empty folders, and the grader's scratch folder
    holds only its own work folder; its own PID namespace (it cannot see or signal the grader's
    processes); and no capabilities at all (it cannot remount); on top, an
    unprivileged user when the kit is readable by one,
  - resource limits: CPU seconds, address space, file size, open files, processes,
  - a scrubbed environment, its own temporary working directory, stdin closed,
    stdout and stderr to a capped file.
What the platform does not allow is reported back as isolation notes.
"""
from __future__ import annotations

import ctypes
import json
import os
import re
import resource
import signal
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
LINUX_CAPABILITY_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)


def _unshare(flags: int) -> bool:
    return _libc.unshare(flags) == 0


def _mount(source: str | None, target: str, flags: int) -> None:
    if _libc.mount(source and source.encode(), target.encode(), None, ctypes.c_ulong(flags), None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _private_filesystem(work_dir: str, hide: list[str], scratch: str) -> tuple[str, list[str]]:
    """In this (new) mount namespace: every mount read-only; `hide` paths replaced
    by empty ones (solutions, hidden checks, other submissions); the grader's
    scratch folder (every job's files) emptied but for this child's work folder,
    which stays writable at `scratch`/work. Returns that folder and the mount
    points that could not be made read-only."""
    _mount(None, "/", MS_REC | MS_PRIVATE)       # nothing we do here reaches the grader's namespace
    work_fd = os.open(work_dir, os.O_RDONLY | os.O_DIRECTORY)  # reachable even once scratch is covered
    failed = []
    with open("/proc/self/mountinfo") as f:
        points = [re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4]) for line in f]
    for point in points:
        try:
            _mount(None, point, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)
        except OSError:
            failed.append(point)
    for path in hide:
        if os.path.isdir(path):
            _mount_tmpfs(path, MS_RDONLY)
        elif os.path.isfile(path):
            _mount("/dev/null", path, MS_BIND)
    _mount_tmpfs(scratch, 0)
    child_work = os.path.join(scratch, "work")
    os.mkdir(child_work)
    _mount(f"/proc/self/fd/{work_fd}", child_work, MS_BIND)
    _mount(None, child_work, MS_REMOUNT | MS_BIND | MS_NOSUID)  # writable again
    os.close(work_fd)
    return child_work, failed


def _mount_tmpfs(target: str, flags: int) -> None:
    if _libc.mount(b"tmpfs", target.encode(), b"tmpfs", ctypes.c_ulong(flags | MS_NOSUID | MS_NODEV),
                   b"size=64m,mode=0755") != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount tmpfs on {target}: {os.strerror(err)}")


def _drop_capabilities() -> None:
    """Give up every capability for good (a root without them cannot remount or
    bypass file permissions) and forbid gaining privileges through exec."""
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    for cap in range(64):
        _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    if _libc.capset(ctypes.byref(Header(LINUX_CAPABILITY_VERSION_3, 0)), ctypes.byref((Data * 2)())) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def _become_pid_namespace_init() -> None:
    """Fork once more so the student's code runs as PID 1 of the new PID namespace;
    this process only waits for it and exits with its status."""
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


def _vm_size_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _enter_sandbox(req: dict) -> tuple[dict, int, list[str]]:
    """Lock down this freshly forked child. Returns the job, the events file
    descriptor, and notes on what could not be done here."""
    notes = []
    os.setsid()
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    # Files the grader set up: opened now, while we may still read them.
    with open(req["job_path"]) as f:
        job = json.load(f)
    events_fd = os.open(req["events_path"], os.O_WRONLY | os.O_APPEND)
    out_fd = os.open(req["output_path"], os.O_WRONLY | os.O_APPEND)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    for stream in (sys.stdout, sys.stderr):  # keep what was printed even if the child dies abruptly
        stream.reconfigure(line_buffering=True)
    keep = sorted({0, 1, 2, events_fd})
    for fd in range(3, 1024):
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass

    root = os.geteuid() == 0
    work_dir = os.path.realpath(req["work_dir"])
    namespaces = False
    if root:
        namespaces = _unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET)
        if namespaces:
            work_dir, failed = _private_filesystem(work_dir, req.get("hide", []), req["scratch"])
            if failed:
                notes.append(f"files: could not make {', '.join(failed)} read-only")
        elif not _unshare(CLONE_NEWNET):
            notes.append("network: could not enter an empty network namespace")
    elif not _unshare(CLONE_NEWUSER | CLONE_NEWNET):
        notes.append("network: not isolated (user namespaces are not available here)")
    if not namespaces:
        notes.append("files: not read-only here (the grader only verifies afterwards that its own files are unchanged)")

    limits = req["limits"]
    cpu = int(limits["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    # The preloaded libraries already map much address space; the student gets
    # `memory_mb` on top of what the child starts with.
    address_space = _vm_size_bytes() + int(limits["memory_mb"]) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    file_size = int(limits["file_mb"]) * 2**20
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    uid = req.get("uid")
    if root and uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)  # also clears every capability
        resource.setrlimit(resource.RLIMIT_NPROC, (256, 256))
    elif root:
        _drop_capabilities()
    if namespaces:
        _become_pid_namespace_init()

    os.chdir(work_dir)
    os.environ.clear()
    os.environ.update({"PATH": "/usr/bin:/bin", "HOME": work_dir, "TMPDIR": work_dir,
                       "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"})
    return job, events_fd, notes


def _child(req: dict) -> None:
    code = 0
    try:
        job, events_fd, notes = _enter_sandbox(req)
        os.write(events_fd, (json.dumps({"event": "isolation", "notes": notes, "nonce": job["nonce"]}) + "\n").encode())
        import torch
        torch.set_num_threads(1)
        from autograder.child import run
        run(job, events_fd)
    except BaseException:
        import traceback
        traceback.print_exc()  # stderr is the captured output file by now, or the zygote's
        code = 70
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        os._exit(code)


def _kill_leftovers() -> None:
    """Kill and reap every process the child left behind (they were reparented to us)."""
    me = os.getpid()
    for _ in range(10):  # a killed process's own children are reparented to us next
        if not _kill_children_once(me):
            break
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _kill_children_once(me: int) -> bool:
    found = False
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == me:
            found = True
            try:
                os.kill(int(entry), signal.SIGKILL)
                os.waitpid(int(entry), 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    return found


def main() -> None:
    for name in sys.argv[1:]:  # preload: the imports every grading run needs
        __import__(name)
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
    out = sys.stdout
    out.write(json.dumps({"ready": os.getpid()}) + "\n")
    out.flush()
    for line in sys.stdin:
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(req)
        out.write(json.dumps({"pid": pid}) + "\n")
        out.flush()
        _, status = os.waitpid(pid, 0)
        _kill_leftovers()
        out.write(json.dumps({"pid": pid, "exit": os.waitstatus_to_exitcode(status)}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
