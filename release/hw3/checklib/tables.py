"""Judges of a submitted experiments table (probes.read_table's data) and the
config files that go with it (probes.read_yaml's). Runs in the grader.

    index_named(name, pattern)          the index is called `name`, its values match `pattern`, unique
    columns_from_configs(files, metrics)    one column per key of each config file, plus the metrics
    numeric(metrics, fractions)         every metric a number, the `fractions` ones in [0, 1]
    best_configs(files, metric)         the submitted configs equal the best row's values
    best_value(metric)                  the best value of `metric` (for rubric thresholds)
Accuracies written in percent (e.g. 87.9) are read as fractions where a best row is chosen.
"""
from __future__ import annotations

import re

from .checks import failed, passed
from .judges import literal, number, same


def records(table: dict) -> list[dict]:
    return [dict(zip(table["columns"], row)) for row in table["rows"]]


def fraction(value):
    value = number(value)
    return None if value is None else value / 100 if 1 < value <= 100 else value


def best_row(table: dict, metric: str):
    """(row, its index value, its metric as a fraction), or Nones when no row has a number."""
    rows = records(table)
    scored = [(v, i) for i, row in enumerate(rows) if (v := fraction(row.get(metric))) is not None]
    if not scored:
        return None, None, None
    value, i = max(scored)
    return rows[i], table["index"][i], value


def index_named(name: str, pattern: str, described: str):
    def judge(table):
        if table["index_name"] != name:
            return failed(f"The table's index is called {table['index_name']!r}; it must be called {name!r} (table.index.name = {name!r}).")
        bad = [v for v in table["index"] if not (isinstance(v, str) and re.fullmatch(pattern, v))]
        if bad:
            return failed(f"Index values must be {described}; found {bad[0]!r}.")
        if len(set(table["index"])) != len(table["index"]):
            return failed("Two rows of the table share a name; each experiment appears once.")
        return passed(f"Index {name!r} with {len(table['index'])} names.")
    return judge


def columns_from_configs(files, metrics):
    def judge(data):
        wanted = [k for f in files if isinstance(data["configs"].get(f), dict) for k in data["configs"][f]] + list(metrics)
        missing = [c for c in wanted if c not in data["table"]["columns"]]
        if missing:
            return failed(f"The table lacks the column(s) {', '.join(missing)}; there must be one column per key of "
                          f"{' and '.join(files)}, plus {', '.join(metrics)}.")
        return passed(f"All {len(wanted)} expected columns are present.")
    return judge


def numeric(metrics, fractions):
    def judge(table):
        rows = records(table)
        if not rows:
            return failed("The table has no rows.")
        for name, row in zip(table["index"], rows):
            for metric in (m for m in metrics if m in row):  # a missing column: the columns check reports it
                value = number(row[metric])
                if value is None:
                    return failed(f"Row {name!r}: {metric} is {row[metric]!r}; expected a number.")
                if metric in fractions and not 0 <= value <= 1:
                    return failed(f"Row {name!r}: {metric} is {value}; it is a fraction in [0, 1], as the Tracker records it.")
        return passed(f"{len(rows)} rows with numeric {', '.join(metrics)}.")
    return judge


def best_configs(files, metric: str):
    def judge(data):
        row, name, _ = best_row(data["table"], metric)
        if row is None:
            return failed(f"No row of the table has a numeric {metric}, so the best experiment is unknown.")
        for file in files:
            config = data["configs"].get(file)
            if not isinstance(config, dict):
                return failed(f"{file} is missing or is not a dictionary.")
            wrong = next((k for k, v in config.items() if k in row and not same(row[k], v, rel=1e-9)), None)
            if wrong:
                return failed(f"{file} says {wrong}={config[wrong]!r}, but the best experiment ({name}) has "
                              f"{wrong}={literal(row[wrong])!r}; submit the best experiment's configs.")
        return passed(f"{' and '.join(files)} match the best experiment, {name}.")
    return judge


def best_value(metric: str):
    def judge(table):
        row, name, value = best_row(table, metric)
        if row is None:
            return failed(f"No numeric {metric} in the table.", value=0.0)
        return passed(f"Best {metric} {value:.2%} (experiment {name}), as reported in the table.", value=value)
    return judge
