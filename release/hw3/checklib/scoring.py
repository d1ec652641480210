"""Stage 4, scoring: the rubric as data, and the one function that turns verdicts into points."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .checks import Verdict

VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")


@dataclass(frozen=True)
class RubricItem:
    id: str
    name: str
    section: str
    points: float
    visibility: str = "visible"
    thresholds: tuple[tuple[float, float], ...] = ()  # (minimum value, points), best first
    manual: bool = False
    deduction: float = 0.0  # points taken off the total when this item fails (a rule), at most the total

    @classmethod
    def from_dict(cls, d: dict, section: str) -> "RubricItem":
        thresholds = tuple(sorted((tuple(map(float, t)) for t in d.get("thresholds", ())), reverse=True))
        item = cls(id=d["id"], name=d.get("name", d["id"]), section=section, points=float(d["points"]),
                   visibility=d.get("visibility", "visible"), thresholds=thresholds, manual=bool(d.get("manual")),
                   deduction=float(d.get("deduction", 0)))
        if item.deduction < 0:
            raise ValueError(f"rubric item {item.id}: deduction must be a number of points >= 0")
        if item.visibility not in VISIBILITIES:
            raise ValueError(f"rubric item {item.id}: visibility must be one of {VISIBILITIES}")
        return item


@dataclass(frozen=True)
class ItemResult:
    id: str
    name: str
    section: str
    score: float
    max_score: float
    status: str      # passed | failed | pending (manual)
    output: str
    visibility: str


def resolve(items: list[RubricItem], verdicts: dict[str, Verdict]) -> list[ItemResult]:
    """Points for every rubric item, from the verdicts of its checks.

    - manual items score 0 and stay 'pending' until graded by hand;
    - threshold items score the points of the best threshold the verdict's value
      reaches (which may exceed max_score: that is bonus);
    - every other item scores all its points when its check passed, else none;
    - an item without a verdict failed (its check could not run);
    - a failed item with a `deduction` (a broken rule) then takes that many points off
      the total, once, and never below 0: its score is minus what it took.
    """
    results = []
    for item in items:
        if item.manual:
            results.append(ItemResult(item.id, item.name, item.section, 0.0, item.points, "pending",
                                      "Graded by hand after the deadline.", item.visibility))
            continue
        verdict = verdicts.get(item.id) or Verdict(False, "This check could not be run.")
        if item.thresholds:
            value = verdict.value
            score = 0.0
            if verdict.passed and value is not None:
                score = next((pts for low, pts in item.thresholds if value >= low), 0.0)
        else:
            score = item.points if verdict.passed else 0.0
        status = "passed" if verdict.passed and score >= item.points else "failed"
        results.append(ItemResult(item.id, item.name, item.section, score, item.points, status,
                                  verdict.message, item.visibility))
    return _deduct(items, results)


def _deduct(items: list[RubricItem], results: list[ItemResult]) -> list[ItemResult]:
    left = sum(r.score for r in results)
    for n, (item, r) in enumerate(zip(items, results)):
        if item.deduction and r.status == "failed":
            taken = min(item.deduction, max(left, 0.0))
            left -= taken
            note = f"Rule broken: {taken:g} points taken off your total" + \
                   (f" (the rule costs {item.deduction:g}; your total cannot go below 0)." if taken < item.deduction else ".")
            results[n] = dataclasses.replace(r, score=r.score - taken, output=f"{r.output}\n{note}".strip())
    return results


def total(results: list[ItemResult]) -> tuple[float, float]:
    """(score, maximum without bonus) over all items."""
    return sum(r.score for r in results), sum(r.max_score for r in results)


def section_totals(results: list[ItemResult]) -> dict[str, tuple[float, float]]:
    sections: dict[str, tuple[float, float]] = {}
    for r in results:
        score, top = sections.get(r.section, (0.0, 0.0))
        sections[r.section] = (score + r.score, top + r.max_score)
    return sections
