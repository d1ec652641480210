"""Inside the sandbox: run the job (see `checklib.runner`) and report its events.

This runs in a forked, already-contained child process (see `zygote.py`). Each
record goes, framed by `channel.make_encoder()`, to the pipe whose read end
only the grader holds. The writer and its encoder are bound here, before any
student code runs, so replacing `os.write`, `json` or builtins later does not
change how records are written. Each record carries the run's secret, which the
runner takes out of the job before any student code runs: code that writes the pipe
itself does not know it (see `channel.Protocol`); to learn it, it would have to reach
into this process's memory, which the static scan flags (`static.py`).
"""
from __future__ import annotations

import os

from checklib.runner import run_job

from .channel import make_encoder


def run(job: dict, events_fd: int, notes: list[str]) -> None:
    write, encode, secret = os.write, make_encoder(), job.pop("secret", None)

    def emit(record: dict) -> None:
        data = encode({**record, "secret": secret})
        while data:
            data = data[write(events_fd, data):]

    emit({"event": "ready", "isolation": list(notes)})
    run_job(job, emit)
