"""Inside the sandbox: run the job (see `checklib.runner`) and report its events.

This runs in a forked, already-limited child process (see `zygote.py`). Each
record goes as one JSON line to the events file the grader watches, and carries
the run's nonce, which the grader handed over before any student code ran;
lines without it are ignored by the grader.
"""
from __future__ import annotations

import json
import os

from checklib.runner import run_job


def run(job: dict, events_fd: int) -> None:
    # Bound now, before student code runs and could replace os.write or json.dumps.
    nonce, write, dumps = job["nonce"], os.write, json.dumps

    def emit(record: dict) -> None:
        record["nonce"] = nonce
        write(events_fd, (dumps(record) + "\n").encode())

    run_job(job, emit)
