"""Stage 5, reporters: a Report as Gradescope results.json, a terminal table, and feedback.

Items graded by hand are 'pending': left out of Gradescope's tests (where any test
below its maximum shows as a failure), and every total says how many points are
still to come. A submission that could not be graded as a whole (no notebook, no
graded cell found) gets its reason once, not once per check. Flags are for a TA.
"""
from __future__ import annotations

import html
import json
import os
from pathlib import Path

from .pipeline import Report
from checklib.scoring import section_totals


def figure_text(value) -> str:
    """A leaderboard figure as people read it: 6,577,610 parameters, 0.978, 4.84 ms."""
    if isinstance(value, (int, float)) and float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def pending(report: Report) -> list:
    """The items still to be graded by hand."""
    return [r for r in report.results if r.status == "pending"]


def not_graded(report: Report) -> bool:
    """Whether the submission as a whole could not be graded (no notebook, a damaged
    zip): every automatic check failed for the one reason the report's notes give.
    Its notes then say everything, once."""
    automatic = [r for r in report.results if r.status != "pending" and r.max_score > 0]
    return bool(automatic) and all(r.status == "failed" and r.output in report.notes for r in automatic)


def score_line(report: Report) -> str:
    """'Score: 72 / 100 (10 more points graded by hand after the deadline)'."""
    line = f"Score: {report.score:g} / {report.max_score:g}"
    later = sum(r.max_score for r in pending(report))
    if later:
        line += f" ({later:g} of these points are graded by hand after the deadline: " \
                + ", ".join(r.name for r in pending(report)) + ")"
    return line


def rule_violations(report: Report) -> dict[str, float]:
    """The engine's rules (`rules.*` items) this submission broke, with the points each took off
    (negative; 0 where the total was already 0). None for a submission not graded at all."""
    if not_graded(report):
        return {}
    return {r.id: r.score for r in report.results if r.id.startswith("rules.") and r.status == "failed"}


def gradescope_results(report: Report) -> dict:
    """The Gradescope autograder results format (results.json)."""
    tests = []
    graded = [r for r in report.results if r.status != "pending"]
    if not_graded(report):
        graded = []
    for number, r in enumerate(graded, start=1):
        tests.append({"name": r.name, "number": str(number), "score": r.score, "max_score": r.max_score,
                      "status": "passed" if r.status == "passed" else "failed", "output": r.output,
                      "output_format": "text", "tags": [r.section, r.id], "visibility": r.visibility})
    notes = report.notes + report.incidents + report.accepted
    if not_graded(report):
        notes = notes + ["Nothing could be graded automatically; fix the problem above and submit again."]
    later = sum(r.max_score for r in pending(report))
    summary = f"Graded {len(tests)} checks of {report.assignment}."
    if later:
        summary += f" {later:g} more points are graded by hand after the deadline: " + \
                   ", ".join(r.name for r in pending(report)) + "."
    return {
        "score": round(report.score, 4),
        "execution_time": round(report.execution_time, 3),
        "output": "\n".join(notes + [summary]) if notes else summary,
        "output_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "extra_data": {"assignment": report.assignment, "max_score": report.max_score,
                       "sections": {k: {"score": s, "max_score": m} for k, (s, m) in section_totals(report.results).items()},
                       "pending": {r.id: r.max_score for r in pending(report)},
                       "isolation": report.isolation, "incidents": report.incidents, "flags": report.flags,
                       "rule_violations": rule_violations(report)},
        "tests": tests,
        "leaderboard": list(report.leaderboard),
    }


def placeholder_results(reason: str) -> dict:
    """A valid results.json written before grading starts, so a crash still leaves one."""
    return {"score": 0, "execution_time": 0, "output": reason, "output_format": "text", "visibility": "visible",
            "stdout_visibility": "hidden", "extra_data": {}, "tests": [], "leaderboard": []}


def write_json(data: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def text_table(report: Report, width: int = 100) -> str:
    """A per-check table for the terminal: points, status, and the first line of the message."""
    lines = [f"{report.assignment}: {report.submission}"]
    for note in report.notes + report.incidents + report.accepted:
        lines.append(f"  ! {note.splitlines()[0]}")
    for flag in report.flags:
        lines.append(f"  FLAG {flag.splitlines()[0]}")
    if report.leaderboard:
        lines.append("  leaderboard: " + ", ".join(f"{c['name']} {figure_text(c['value'])}" for c in report.leaderboard))
    lines.append(f"{'points':>11}  {'status':<7}  check")
    sections, section = section_totals(report.results), None
    for r in report.results:
        if r.section != section:
            section = r.section
            s, m = sections[section]
            lines.append(f"-- {section} ({s:g}/{m:g})")
        first = r.output.strip().splitlines()[0] if r.output.strip() else ""
        points = f"{'-':>5}" if r.status == "pending" else f"{r.score:>5g}"
        line = f"{points}/{r.max_score:<5g}  {r.status:<7}  {r.name}"
        if r.status == "failed" and first:
            line += f"\n{'':>23}{first[: width - 23]}"
        lines.append(line)
    later = sum(r.max_score for r in pending(report))
    lines.append(f"TOTAL {report.score:g} / {report.max_score:g}" + (f", {later:g} of them by hand later" if later else "")
                 + f"  ({report.execution_time:.1f} s)")
    return "\n".join(lines)


def _title(report: Report, student: str | None) -> str:
    return f"Feedback: {report.assignment}" + (f" for {student}" if student else "")


def markdown_feedback(report: Report, student: str | None = None) -> str:
    """Feedback for the student: every check with its points and the full message."""
    out = [f"# {_title(report, student)}", "", f"**{score_line(report)}**", ""]
    for note in report.notes + report.incidents + report.accepted:
        out += [f"> {note}", ""]
    if report.flags:
        out += ["**Flagged for your TA to look at** (a flag itself costs nothing; a broken rule's deduction is listed with the checks below):", "",
                *(f"- {flag}" for flag in report.flags), ""]
    if not_graded(report):
        return "\n".join(out + ["Nothing could be graded automatically; fix the problem above and submit again."]) + "\n"
    if report.leaderboard:
        out += ["Leaderboard entry: " + ", ".join(f"{c['name']} {figure_text(c['value'])}" for c in report.leaderboard), ""]
    sections, section = section_totals(report.results), None
    for r in report.results:
        if r.section != section:
            section = r.section
            s, m = sections[section]
            out += [f"## {section} ({s:g}/{m:g})", ""]
        mark = {"passed": "✅", "failed": "❌", "pending": "⏳"}[r.status]
        points = f"–/{r.max_score:g} (graded by hand)" if r.status == "pending" else f"{r.score:g}/{r.max_score:g}"
        out.append(f"- {mark} **{r.name}**: {points}")
        if r.output and r.status != "pending":
            out += ["", "  ```", *(f"  {line}" for line in r.output.splitlines()), "  ```", ""]
    return "\n".join(out) + "\n"


def html_feedback(report: Report, student: str | None = None) -> str:
    """The same feedback as a self-contained HTML page."""
    esc = html.escape
    parts = [f"<!doctype html><meta charset='utf-8'><title>{esc(_title(report, student))}</title>",
             "<style>body{font:15px/1.45 system-ui,sans-serif;max-width:900px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.35em;text-align:left;vertical-align:top}"
             "pre{background:#f6f6f6;padding:.6em;white-space:pre-wrap;margin:.3em 0}.passed{color:#1a7f37}"
             ".failed{color:#c62828}.pending{color:#8a6d00}</style>",
             f"<h1>{esc(_title(report, student))}</h1><p><b>{esc(score_line(report))}</b></p>"]
    parts += [f"<blockquote>{esc(note)}</blockquote>" for note in report.notes + report.incidents + report.accepted]
    if report.flags:
        parts.append("<p><b>Flagged for your TA to look at</b> (a flag itself costs nothing; a broken rule's deduction is listed with the checks below):</p><ul>"
                     + "".join(f"<li>{esc(flag)}</li>" for flag in report.flags) + "</ul>")
    if not_graded(report):
        parts.append("<p>Nothing could be graded automatically; fix the problem above and submit again.</p>")
        return "\n".join(parts) + "\n"
    sections, section = section_totals(report.results), None
    for r in report.results:
        if r.section != section:
            if section is not None:
                parts.append("</table>")
            section = r.section
            s, m = sections[section]
            parts.append(f"<h2>{esc(section)} ({s:g}/{m:g})</h2><table><tr><th>check</th><th>points</th><th>status</th></tr>")
        message = f"<pre>{esc(r.output)}</pre>" if r.output and r.status != "pending" else ""
        points = f"–/{r.max_score:g}" if r.status == "pending" else f"{r.score:g}/{r.max_score:g}"
        parts.append(f"<tr><td>{esc(r.name)}{message}</td><td>{points}</td>"
                     f"<td class='{r.status}'>{r.status}</td></tr>")
    parts.append("</table>")
    return "\n".join(parts) + "\n"
