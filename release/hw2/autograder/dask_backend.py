"""Scale-out on an existing dask.distributed cluster: `grade-all --dask ADDRESS`.

Each worker starts one sandbox (a zygote) when it joins, through a worker
plugin, and grades one submission per task exactly as a local batch does. The
submissions must lie on a file system the workers share with the grader; the
results come back to the grader, which writes them into the same DIR layout.
"""
from __future__ import annotations

from pathlib import Path

from distributed import Client, WorkerPlugin, as_completed, get_worker

from checklib.assignment import load_assignment
from .batch import Entry, grade_entry
from .sandbox import Sandbox

PLUGIN_NAME = "autograder-sandbox"


class SandboxPlugin(WorkerPlugin):
    """One sandbox per dask worker, started with the worker and closed with it."""

    def __init__(self, hide=()):
        self.hide, self.sandbox = tuple(hide), None

    def setup(self, worker):
        self.sandbox = Sandbox(hide=self.hide)
        self.sandbox.start()

    def teardown(self, worker):
        if self.sandbox is not None:
            self.sandbox.close()


def grade_task(student: str, path: str, assignment_name: str) -> dict:
    """What a worker runs for one submission: the files to write, as plain data."""
    sandbox = get_worker().plugins[PLUGIN_NAME].sandbox
    return grade_entry(Entry(student, Path(path)), load_assignment(assignment_name), sandbox)


def grade_with_dask(address: str, todo: list[Entry], assignment_name: str, finished, hide=()) -> None:
    with Client(address) as client:
        client.register_plugin(SandboxPlugin(hide), name=PLUGIN_NAME)
        futures = {client.submit(grade_task, e.student, str(e.path.resolve()), assignment_name, pure=False): e
                   for e in todo}
        for future in as_completed(futures):
            finished(futures[future], future.result())
