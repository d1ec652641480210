"""A pre-imported process that forks one sandboxed child per grading run.

Importing torch takes seconds; forking a process that already has it takes
milliseconds. The grader (`sandbox.py`) starts this zygote once and sends it
one JSON request per line on stdin; the zygote answers on stdout:

    {"pid": N}                            the child started
    {"pid": N, "exit": code, "signal": s} the child ended (and every process it left was killed)

The zygote itself never runs student code and never sees expected values. The
forked child locks itself down before it reads any student code:
  - a new session (so the grader can kill its whole process group),
  - no network (a new, empty network namespace, where the platform allows it),
  - resource limits: CPU seconds, address space, file size, open files, processes,
  - an unprivileged user (when started as root and the kit is readable by it),
  - a scrubbed environment, its own temporary working directory, stdin closed,
    stdout and stderr to a capped file.
"""
from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True)


def _unshare(flags: int) -> bool:
    return _libc.unshare(flags) == 0


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
    keep = sorted({0, 1, 2, events_fd})
    for fd in range(3, 1024):
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass

    root = os.geteuid() == 0
    if root:
        if not _unshare(CLONE_NEWNET):
            notes.append("network: could not enter an empty network namespace")
    elif not _unshare(CLONE_NEWUSER | CLONE_NEWNET):
        notes.append("network: not isolated (user namespaces are not available here)")

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
        os.setuid(uid)
        resource.setrlimit(resource.RLIMIT_NPROC, (256, 256))
    elif root:
        notes.append("user: running as root (the kit's folder is not readable by an unprivileged user)")

    os.chdir(req["work_dir"])
    os.environ.clear()
    os.environ.update({"PATH": "/usr/bin:/bin", "HOME": req["work_dir"], "TMPDIR": req["work_dir"],
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
