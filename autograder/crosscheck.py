"""Self-reported results cross-checked against what the notebook's saved outputs show.

A student submits a results table (e.g. HW4's experiments.xlsx) that the checks
score; the notebook they ran also holds what it displayed (the table, as the cell
that made it showed it) and what training printed (the per-epoch log). A table
the notebook never showed, or numbers the log never printed, is flagged for a TA:
a flag never changes a score.

What to compare is rubric data (`cross_checks` in rubric.yaml), one entry each:

    - file: experiments.xlsx        # a required file: a table, first column its index
      columns: [train_acc, test_acc]
      shown_in: table               # grade_id of the cell whose saved output displays the table, or
      logged_in: experiment         # grade_id of the cell whose saved output logs the values
      pattern: 'test_acc[=: ]+([0-9.]+)'   # (with logged_in) how a logged value is written
      tolerance: 0.0005             # how far apart two numbers may be (display rounding)

`shown_in`: every row of the file must be in the displayed table with the same
values. `logged_in`: every value of those columns must appear in the log.
"""
from __future__ import annotations

import math
import re
from html.parser import HTMLParser
from pathlib import Path

MAX_TABLE_BYTES = 5 * 2**20   # a results table is kilobytes; larger is not read
SHOWN = 3                     # mismatches spelled out per cross-check (the rest counted)


def mismatches(entries, notebook, files: dict[str, Path]) -> list[str]:
    """One flag per cross-check that fails (empty when all agree or nothing was submitted)."""
    flags = []
    for entry in entries:
        path = files.get(entry["file"])
        if path is None or notebook is None:
            continue  # the checks already say what is missing
        try:
            table = read_table(path)
        except ValueError as err:
            flags.append(f"{entry['file']} could not be read to compare it with the notebook ({err}).")
            continue
        if "shown_in" in entry:
            problem = _against_display(entry, table, notebook)
        else:
            problem = _against_log(entry, table, notebook)
        if problem:
            flags.append(problem)
    return flags


# --- the two comparisons ------------------------------------------------------------------------

def _against_display(entry, table: dict, notebook) -> str | None:
    cell = entry["shown_in"]
    shown = None
    for output in _outputs(notebook, cell):
        page = output.get("data", {}).get("text/html")
        if page:
            shown = parse_html_table("".join(page) if isinstance(page, list) else page) or shown
    if shown is None:
        return (f"{entry['file']} is not supported by the notebook: the saved output of cell '{cell}' shows no table "
                "(the notebook was not run, or its outputs were cleared).")
    wrong = []
    for index, row in table.items():
        if index not in shown:
            wrong.append(f"row {index} is not in the table the notebook shows")
            continue
        for column in entry["columns"]:
            mine, theirs = row.get(column), shown[index].get(column)
            if _number(mine) is None:
                continue
            if _number(theirs) is None or abs(_number(mine) - _number(theirs)) > entry.get("tolerance", 1e-4):
                wrong.append(f"row {index}, {column}: {mine} in the file, {theirs} in the notebook")
    return _summary(entry, f"the table cell '{cell}' displayed", wrong)


def _against_log(entry, table: dict, notebook) -> str | None:
    cell, pattern = entry["logged_in"], re.compile(entry["pattern"])
    logged = []
    for output in _outputs(notebook, entry["logged_in"]):
        text = output.get("text") or output.get("data", {}).get("text/plain") or ""
        text = "".join(text) if isinstance(text, list) else text
        logged += [v for v in (_number(m) for m in pattern.findall(text)) if v is not None]
    if not logged:
        return (f"{entry['file']} is not supported by the notebook: the saved output of cell '{cell}' logs no "
                f"values matching {entry['pattern']!r} (the notebook was not run, or its outputs were cleared).")
    tolerance = entry.get("tolerance", 1e-4)
    wrong = []
    for index, row in table.items():
        for column in entry["columns"]:
            value = _number(row.get(column))
            if value is not None and not any(abs(value - v) <= tolerance for v in logged):
                wrong.append(f"row {index}, {column} = {row.get(column)}: never logged")
    span = f" (logged values range {min(logged):g} to {max(logged):g})"
    return _summary(entry, f"the training log of cell '{cell}' printed{span}", wrong)


def _summary(entry, what: str, wrong: list[str]) -> str | None:
    if not wrong:
        return None
    more = f"; and {len(wrong) - SHOWN} more" if len(wrong) > SHOWN else ""
    return f"{entry['file']} does not match what {what}: " + "; ".join(wrong[:SHOWN]) + more + "."


# --- reading -------------------------------------------------------------------------------------------

def _outputs(notebook, grade_id: str) -> list[dict]:
    outputs = []
    for cell in notebook.cells:
        if cell.get("cell_type") == "code" and cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            outputs += cell.get("outputs", [])
    return outputs


def read_table(path: Path) -> dict[str, dict]:
    """index -> {column: value} of a submitted table (.xlsx, or .csv), read as data only."""
    import pandas as pd

    if path.stat().st_size > MAX_TABLE_BYTES:
        raise ValueError(f"larger than {MAX_TABLE_BYTES // 2**20} MB")
    try:
        if path.suffix.lower() == ".csv":
            frame = pd.read_csv(path, index_col=0, dtype={0: str})
        else:
            frame = pd.read_excel(path, index_col=0, dtype={0: str})
    except Exception as err:  # whatever the file is, it is not a table: say so, do not crash
        raise ValueError(f"{type(err).__name__}: {str(err)[:200]}") from None
    return {str(index): {str(k): v for k, v in row.items()} for index, row in frame.iterrows()}


class _TableParser(HTMLParser):
    """The first HTML <table>: a list of rows, each a list of cell texts."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._tables = 0

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._tables += 1
        elif self._tables == 1 and tag == "tr":
            self.rows.append([])
        elif self._tables == 1 and tag in ("td", "th") and self.rows:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse_html_table(page: str) -> dict[str, dict] | None:
    """index -> {column: text} of a table as pandas displays it (DataFrame.to_html), or None."""
    parser = _TableParser()
    parser.feed(page)
    rows = [r for r in parser.rows if r]
    if len(rows) < 2:
        return None
    header = rows[0]
    table = {}
    for row in rows[1:]:
        if len(row) != len(header) or not any(row[1:]):
            continue  # pandas' second header row (the index name alone) or a malformed row
        table[row[0]] = dict(zip(header[1:], row[1:]))
    return table or None


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
