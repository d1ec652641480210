"""The check model: what is measured (a probe) and how it is judged (in the grader).

A `Check` names a probe to run in the sandbox (a function in the assignment's
probes.py, with plain-data arguments) and a `judge` the grader applies to what
the probe returned. Points live in the rubric, not here. Several checks may
share one probe call: the engine runs each distinct (probe, args) once.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class Verdict:
    passed: bool
    message: str = ""           # for the student: what was expected, what was found
    value: float | None = None  # a measured number, for rubric items scored by thresholds


@dataclass(frozen=True)
class Check:
    id: str
    probe: str
    judge: Callable[[Any], Verdict]
    args: Mapping[str, Any] = field(default_factory=dict)
    cells: tuple[str, ...] = ()  # graded cells (grade_ids) the probe needs
    files: tuple[str, ...] = ()  # submitted files the probe reads

    @property
    def probe_key(self) -> str:
        return json.dumps([self.probe, self.args], sort_keys=True)


def judge_each(items: list[dict], test: Callable[[dict], str | None], what: str,
               describe: Callable[[Any], str]) -> Verdict:
    """Judge a probe's measurements of several settings, each {"cfg": ..., ...} or
    {"cfg": ..., "error": traceback}: pass when `test` finds nothing wrong with any,
    else fail on the first problem, naming the setting with `describe(cfg)`."""
    for item in items:
        message = f"it raised an error:\n{item['error']}" if "error" in item else test(item)
        if message:
            return failed(f"{what}: with {describe(item['cfg'])}, {message}")
    return passed(f"{what}: correct for all {len(items)} settings tried.")


def passed(message: str = "", value: float | None = None) -> Verdict:
    return Verdict(True, message, value)


def failed(message: str, value: float | None = None) -> Verdict:
    return Verdict(False, message, value)
