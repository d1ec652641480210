"""Stage 5, reporters: a Report as Gradescope results.json, a terminal table, and feedback."""
from __future__ import annotations

import html
import json
import os
from pathlib import Path

from .pipeline import Report
from checklib.scoring import section_totals


def gradescope_results(report: Report) -> dict:
    """The Gradescope autograder results format (results.json)."""
    tests = []
    for number, r in enumerate(report.results, start=1):
        tests.append({"name": r.name, "number": str(number), "score": r.score, "max_score": r.max_score,
                      "status": "passed" if r.status == "passed" else "failed", "output": r.output,
                      "output_format": "text", "tags": [r.section, r.id], "visibility": r.visibility})
    notes = report.notes + report.incidents
    return {
        "score": round(report.score, 4),
        "execution_time": round(report.execution_time, 3),
        "output": "\n".join(notes) if notes else f"Graded {len(tests)} checks of {report.assignment}.",
        "output_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "extra_data": {"assignment": report.assignment, "max_score": report.max_score,
                       "sections": {k: {"score": s, "max_score": m} for k, (s, m) in section_totals(report.results).items()},
                       "isolation": report.isolation, "incidents": report.incidents},
        "tests": tests,
        "leaderboard": [],
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
    for note in report.notes + report.incidents:
        lines.append(f"  ! {note.splitlines()[0]}")
    lines.append(f"{'points':>11}  {'status':<7}  check")
    sections, section = section_totals(report.results), None
    for r in report.results:
        if r.section != section:
            section = r.section
            s, m = sections[section]
            lines.append(f"-- {section} ({s:g}/{m:g})")
        first = r.output.strip().splitlines()[0] if r.output.strip() else ""
        line = f"{r.score:>5g}/{r.max_score:<5g}  {r.status:<7}  {r.name}"
        if r.status != "passed" and first:
            line += f"\n{'':>23}{first[: width - 23]}"
        lines.append(line)
    lines.append(f"TOTAL {report.score:g} / {report.max_score:g}  ({report.execution_time:.1f} s)")
    return "\n".join(lines)


def markdown_feedback(report: Report) -> str:
    """Feedback for the student: every check with its points and the full message."""
    out = [f"# Feedback: {report.assignment}", "", f"**Score: {report.score:g} / {report.max_score:g}**", ""]
    for note in report.notes + report.incidents:
        out += [f"> {note}", ""]
    sections, section = section_totals(report.results), None
    for r in report.results:
        if r.section != section:
            section = r.section
            s, m = sections[section]
            out += [f"## {section} ({s:g}/{m:g})", ""]
        mark = {"passed": "✅", "failed": "❌", "pending": "⏳"}[r.status]
        out.append(f"- {mark} **{r.name}**: {r.score:g}/{r.max_score:g}")
        if r.output:
            out += ["", "  ```", *(f"  {line}" for line in r.output.splitlines()), "  ```", ""]
    return "\n".join(out) + "\n"


def html_feedback(report: Report) -> str:
    """The same feedback as a self-contained HTML page."""
    esc = html.escape
    parts = [f"<!doctype html><meta charset='utf-8'><title>Feedback: {esc(report.assignment)}</title>",
             "<style>body{font:15px/1.45 system-ui,sans-serif;max-width:900px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.35em;text-align:left;vertical-align:top}"
             "pre{background:#f6f6f6;padding:.6em;white-space:pre-wrap;margin:.3em 0}.passed{color:#1a7f37}"
             ".failed{color:#c62828}.pending{color:#8a6d00}</style>",
             f"<h1>Feedback: {esc(report.assignment)}</h1><p><b>Score: {report.score:g} / {report.max_score:g}</b></p>"]
    parts += [f"<blockquote>{esc(note)}</blockquote>" for note in report.notes + report.incidents]
    sections, section = section_totals(report.results), None
    for r in report.results:
        if r.section != section:
            if section is not None:
                parts.append("</table>")
            section = r.section
            s, m = sections[section]
            parts.append(f"<h2>{esc(section)} ({s:g}/{m:g})</h2><table><tr><th>check</th><th>points</th><th>status</th></tr>")
        message = f"<pre>{esc(r.output)}</pre>" if r.output else ""
        parts.append(f"<tr><td>{esc(r.name)}{message}</td><td>{r.score:g}/{r.max_score:g}</td>"
                     f"<td class='{r.status}'>{r.status}</td></tr>")
    parts.append("</table>")
    return "\n".join(parts) + "\n"
