"""A pre-imported process that forks one sandboxed child per grading run.

Importing torch takes seconds; forking a process that already has it takes
milliseconds. The grader (`sandbox.py`) starts this zygote once and talks to it
over a Unix datagram socket (descriptor `--control-fd`): each request is one JSON
message carrying, as an attached descriptor, the write end of a pipe whose read
end only the grader holds (the child's results channel, see `channel.py`). The
zygote answers:

    {"ready": pid, "missing": [...]}    started; what the container self-test could not do
    {"pid": N}                          the child started
    {"pid": N, "exit": code}            the child ended

The zygote never runs student code and never sees expected values; it dies with
the grader (PR_SET_PDEATHSIG), and its children die with it. The forked child
locks itself down before it reads any student code: a new session, stdin closed,
stdout and stderr to a capped file, every other descriptor closed but its end
of the channel, then its container (`container.enter`: cgroup, namespaces,
allow-list root, nobody), resource limits and a scrubbed environment. With
isolation off (`--unsafe-no-isolation`) only the resource limits apply, and the
child says so in its first record.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import sys
import traceback

from autograder import container

PR_SET_CHILD_SUBREAPER = 36


def _vm_size_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _limit_resources(limits: dict) -> None:
    cpu = int(limits["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    # Per process: the preloaded libraries already map much address space, so the student
    # gets `memory_mb` on top of what the child starts with (the cgroup caps the whole tree).
    address_space = _vm_size_bytes() + int(limits["memory_mb"]) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    file_size = int(limits["file_mb"]) * 2**20
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _child(req: dict, events_fd: int, entries) -> None:
    """The forked child: lock down, then run the job. Never returns."""
    code = 0
    try:
        os.setsid()
        container._libc.prctl(container.PR_SET_PDEATHSIG, signal.SIGKILL)
        with open(req["job_path"]) as f:  # opened now, while the grader's files are reachable
            job = json.load(f)
        out_fd = os.open(req["output_path"], os.O_WRONLY | os.O_APPEND)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null_fd, 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        events_fd = os.dup2(events_fd, 3) if events_fd != 3 else 3
        os.closerange(4, resource.getrlimit(resource.RLIMIT_NOFILE)[0])  # the zygote's socket included
        for stream in (sys.stdout, sys.stderr):  # keep what was printed even if the child dies abruptly
            stream.reconfigure(line_buffering=True)
        notes = []
        if req["isolate"]:
            try:
                work_dir = container.enter(req, entries)
                _limit_resources(req["limits"])
                container.drop_to_nobody()
            except BaseException:
                traceback.print_exc()
                os._exit(container.SETUP_FAILED)  # before any student code: the grader calls it an infrastructure error
        else:
            work_dir = req["work_dir"]
            _limit_resources(req["limits"])
        os.chdir(work_dir)
        os.environ.clear()
        os.environ.update({"PATH": "/usr/bin:/bin", "HOME": work_dir, "TMPDIR": work_dir, "MPLCONFIGDIR": work_dir,
                           "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"})
        sys.dont_write_bytecode = True
        import torch
        torch.set_num_threads(1)
        from autograder.child import run
        run(job, events_fd, notes)
    except BaseException:
        traceback.print_exc()  # stderr is the captured output file by now, or the zygote's
        code = 70
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        os._exit(code)


def _self_test(folder: str, entries) -> list[str]:
    """Build one container for nothing, as a child would: what fails is missing here."""
    os.makedirs(os.path.join(folder, "root"), exist_ok=True)
    os.makedirs(os.path.join(folder, "work"), exist_ok=True)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            container.enter({"cgroup_procs": [], "root_dir": os.path.join(folder, "root"),
                             "work_dir": os.path.join(folder, "work"), "work_mb": 1}, entries)
            container.drop_to_nobody()
            if not os.path.isfile(container.__file__):
                raise OSError("the kit's code is not visible inside the container")
            os._exit(0)
        except BaseException as err:
            os.write(write, f"{type(err).__name__}: {err}".encode()[:2000])
            os._exit(1)
    os.close(write)
    message = b""
    while chunk := os.read(read, 4096):
        message += chunk
    os.close(read)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        return []
    why = message.decode(errors="replace") or f"exit status {os.waitstatus_to_exitcode(status)}"
    return [f"namespaces: could not build the child's container ({why}); run the grader as root with "
            "CAP_SYS_ADMIN and a seccomp profile that allows unshare, mount and pivot_root (Docker: `--privileged`)"]


def _kill_leftovers() -> None:
    """Kill and reap every process the child left behind (they were reparented to us).
    Only needed without isolation: a contained child's processes die with its PID namespace."""
    me = os.getpid()
    for _ in range(10):
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
        if not found:
            break
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--self-test", help="a scratch folder: build a container there first (isolation on)")
    parser.add_argument("preload", nargs="*")
    args = parser.parse_args()
    parent = os.getppid()
    container._libc.prctl(container.PR_SET_PDEATHSIG, signal.SIGKILL)  # the grader's death ends us
    if os.getppid() != parent:
        os._exit(1)
    control = socket.socket(fileno=args.control_fd)
    for name in args.preload:  # the imports every grading run needs
        __import__(name)
    container._libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
    entries = container.root_entries() if args.self_test else []
    missing = _self_test(args.self_test, entries) if args.self_test else []
    control.send(json.dumps({"ready": os.getpid(), "missing": missing}).encode())
    while True:
        message, fds, _, _ = socket.recv_fds(control, 1 << 20, 1)
        if not message:
            return
        req = json.loads(message)
        pid = os.fork()
        if pid == 0:
            _child(req, fds[0], entries)
        for fd in fds:
            os.close(fd)
        control.send(json.dumps({"pid": pid}).encode())
        _, status = os.waitpid(pid, 0)
        _kill_leftovers()
        control.send(json.dumps({"pid": pid, "exit": os.waitstatus_to_exitcode(status)}).encode())


if __name__ == "__main__":
    main()
