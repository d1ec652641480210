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
    figures: tuple[tuple[str, float], ...] = ()  # named measurements for a leaderboard (rubric `leaderboard`)
    flag: str = ""              # for a TA (never changes the score): e.g. a reported result the grader could not confirm


@dataclass(frozen=True)
class Check:
    id: str
    probe: str
    judge: Callable[[Any], Verdict]
    args: Mapping[str, Any] = field(default_factory=dict)
    cells: tuple[str, ...] = ()  # graded cells (grade_ids) the probe needs
    files: tuple[str, ...] = ()  # submitted files the probe reads
    test_set: bool = False       # the probe reads the grader's test images (rubric `test_set`) and the
                                 # judge is called judge(data, labels): see checklib/verified.py

    @property
    def probe_key(self) -> str:
        return json.dumps([self.probe, self.args], sort_keys=True)


@dataclass(frozen=True)
class Outcome:
    """One measurement of one setting, as the grader reads it back: its value, or
    the error that prevented it (never both). Made from a probe's `measure` record."""
    setting: Any = None
    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def of(cls, record: Any, setting: Any = None) -> "Outcome":
        if isinstance(record, dict) and set(record) == {"error"}:
            return cls(setting, None, str(record["error"]))
        if isinstance(record, dict) and set(record) == {"value"}:
            return cls(setting, record["value"])
        raise ValueError(f"not a measurement record: {str(record)[:100]}")


def outcomes(rows: list[dict], part: str | tuple[str, ...]) -> list[Outcome]:
    """The outcomes of `part` in each setting of a probe's `each(...)` rows. With
    several parts, the value is a tuple of their values and the first error wins."""
    parts = (part,) if isinstance(part, str) else tuple(part)
    found = []
    for row in rows:
        measured = [Outcome.of(row[p], row["setting"]) for p in parts]
        error = next((o.error for o in measured if not o.ok), None)
        value = measured[0].value if len(parts) == 1 else tuple(o.value for o in measured)
        found.append(Outcome(row["setting"], None if error else value, error))
    return found


def passed(message: str = "", value: float | None = None, figures=(), flag: str = "") -> Verdict:
    return Verdict(True, message, value, tuple(figures), flag)


def failed(message: str, value: float | None = None, figures=(), flag: str = "") -> Verdict:
    return Verdict(False, message, value, tuple(figures), flag)
