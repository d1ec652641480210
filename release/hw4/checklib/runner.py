"""Run a job: the graded cells, then the probes, reporting each step as a record.

A job is plain data: {"cells": [{"id", "source", "stub"?}], "probes": [{"key",
"probe", "args"}], "probes_path": path of the assignment's probes.py}. Each step
is reported through `emit(record)`, one dict per event:

    {"event": "cell_start", "id": ...}   {"event": "cell", "id": ..., "ok": ..., "error": ...}
    {"event": "start", "key": ...}       {"event": "result", "key": ..., "data": ...}
                                         {"event": "error", "key": ..., "error": ...}
    {"event": "done"}

Who runs it decides how records travel: the autograder's sandboxed child
(`autograder/child.py`) and the students' self-check client each pass their own
`emit`. Nothing here decides a score.
"""
from __future__ import annotations

import gc
import importlib.util
import inspect
import linecache
import traceback
from typing import Callable

CELL_FILE = "<{} cell>"


def load_module_from(path, name: str, **bound):
    """Execute the Python file `path` as module `name`; `bound` names are set in it before it runs."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    module.__dict__.update(bound)
    spec.loader.exec_module(module)
    return module


def student_traceback(err: BaseException) -> str:
    """The error with only the frames in the student's cells (no torch internals)."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename.endswith(" cell>")]
    lines = traceback.format_list(frames) if frames else []
    lines += traceback.format_exception_only(type(err), err)
    text = "".join(lines).rstrip()
    return text[-4000:]


def release_data(ns: dict, before: dict) -> None:
    """After a cell ran out of memory: undo the data it bound (names it added or rebound to
    anything but a class, function or module), so that what it hoarded does not starve
    the probes of the other cells. Its definitions stay: a cell that defines a model and
    then runs out of memory trying it has still defined the model."""
    for name in list(ns):
        value = ns[name]
        if name in before and before[name] is value:
            continue
        if inspect.isclass(value) or inspect.isroutine(value) or inspect.ismodule(value):
            continue
        if name in before:
            ns[name] = before[name]
        else:
            del ns[name]
    value = None
    gc.collect()


def run_job(job: dict, emit: Callable[[dict], None]) -> None:
    """Run the job's cells in one namespace, then each probe on that namespace."""
    import torch

    from checklib.probes import ProbeError, encode

    probes = load_module_from(job["probes_path"], "assignment_probes")
    ns: dict = {"__name__": "__main__"}
    for cell in job["cells"]:
        emit({"event": "cell_start", "id": cell["id"]})
        filename = CELL_FILE.format(cell["id"])
        linecache.cache[filename] = (len(cell["source"]), None, cell["source"].splitlines(True), filename)
        before, ran_out = dict(ns), False
        try:
            if cell.get("stub"):
                getattr(probes, cell["stub"])(ns)
            exec(compile(cell["source"], filename, "exec"), ns)
            emit({"event": "cell", "id": cell["id"], "ok": True})
        except BaseException as err:  # SystemExit and KeyboardInterrupt included
            ran_out = isinstance(err, MemoryError)
            emit({"event": "cell", "id": cell["id"], "ok": False, "error": student_traceback(err)})
        if ran_out:  # here, once the traceback (and the frames it holds) is gone
            release_data(ns, before)

    for probe in job["probes"]:
        emit({"event": "start", "key": probe["key"]})
        torch.manual_seed(0)
        try:
            data = encode(getattr(probes, probe["probe"])(ns, **probe["args"]))
            emit({"event": "result", "key": probe["key"], "data": data})
        except ProbeError as err:
            emit({"event": "error", "key": probe["key"], "error": str(err)})
        except BaseException as err:
            emit({"event": "error", "key": probe["key"], "error": student_traceback(err)})
    emit({"event": "done"})
