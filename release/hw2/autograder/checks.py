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


def passed(message: str = "", value: float | None = None) -> Verdict:
    return Verdict(True, message, value)


def failed(message: str, value: float | None = None) -> Verdict:
    return Verdict(False, message, value)
