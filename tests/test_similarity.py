"""The class similarity report: a planted copy (renamed variables, reordered methods)
among 20 distinct solutions is flagged; sharing only the starter code is not.

Submissions are the example homework of docs/instructors.md (tests/example_course/):
its graded cell holds starter code (`relu_table`) that every student receives.
"""
import csv
import random
import re
from pathlib import Path

import nbformat
import pytest

from autograder.__main__ import main
from autograder.similarity import fingerprints, normalized_tokens, similarity_report, starter_cells
from checklib.assignment import load_assignment

EXAMPLE = Path(__file__).parent / "example_course"
THRESHOLD = 0.5


@pytest.fixture(scope="module")
def hw0():
    return load_assignment("hw0", EXAMPLE)


def starter_source(hw0) -> str:
    return starter_cells(hw0)["relu"]


def submit(folder: Path, student: str, graded: str) -> Path:
    """A bare-notebook submission whose graded cell is `graded`."""
    nb = nbformat.read(EXAMPLE / "source" / "hw0" / "HW0.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "relu":
            cell.source = graded
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{student}.ipynb")
    return folder / f"{student}.ipynb"


OPS = ["+", "-", "*", "//", "%", "**"]


def _expr(rng, names) -> str:
    parts = [rng.choice(names + [str(rng.randint(1, 9))])]
    for _ in range(rng.randint(1, 3)):
        parts += [rng.choice(OPS), rng.choice(names + [str(rng.randint(1, 9))])]
    text = " ".join(parts)
    return f"({text})" if rng.random() < 0.3 else text


def _statements(rng, names, depth=0) -> list[str]:
    lines = []
    for _ in range(rng.randint(3, 6)):
        kind = rng.choice(["assign", "assign", "for", "if", "while", "call", "list"] if depth < 2 else ["assign", "call"])
        target = rng.choice(names)
        if kind == "assign":
            lines.append(f"{target} = {_expr(rng, names)}")
        elif kind == "call":
            lines.append(f"{target} = {rng.choice(['abs', 'min', 'max', 'round'])}({_expr(rng, names)}"
                         + (f", {_expr(rng, names)})" if rng.random() < 0.5 else ")"))
        elif kind == "list":
            lines.append(f"{target} = sum([{_expr(rng, names)} for {names[0]} in range({rng.randint(2, 9)})])")
        else:
            head = {"for": f"for {target} in range({_expr(rng, names)}):",
                    "if": f"if {_expr(rng, names)} {rng.choice(['<', '>', '==', '!='])} {_expr(rng, names)}:",
                    "while": f"while {target} < {rng.randint(10, 99)}:"}[kind]
            body = _statements(rng, names, depth + 1)
            if kind == "while":
                body.append(f"{target} = {target} + {rng.randint(1, 5)}")
            lines += [head, *(f"    {b}" for b in body)]
    return lines


def distinct_solution(seed: int) -> tuple[str, list[str]]:
    """A student's relu and a helper class of their own making: (relu part, methods)."""
    rng = random.Random(seed)
    relu = rng.choice(["return x.clamp(min=0)", "return x * (x > 0)", "return torch.where(x > 0, x, torch.zeros_like(x))",
                       "return (x + x.abs()) / 2", "return torch.maximum(x, torch.zeros_like(x))"])
    methods = []
    for m in range(4):
        names = [f"v{seed}_{m}_{i}" for i in range(4)]
        body = [f"{names[i]} = {rng.randint(0, 9)}" for i in range(4)] + _statements(rng, names)
        body.append(f"return {_expr(rng, names)}")
        methods.append(f"    def method_{seed}_{m}(self, {names[0]}):\n" + "\n".join(f"        {b}" for b in body))
    return relu, methods


def graded_cell(starter: str, relu: str, methods: list[str], class_name: str) -> str:
    """The starter cell with the student's relu filled in, plus their own class."""
    filled = starter.replace("raise NotImplementedError()", relu)
    return f"{filled}\n\n\nclass {class_name}:\n" + "\n\n".join(methods) + "\n"


def test_tokens_ignore_names_comments_and_literals():
    a = normalized_tokens("total = price * 2  # the price\nname = 'x'")
    b = normalized_tokens("s = p * 7\nlabel = \"y\"  # renamed")
    assert [t for t, _ in a] == [t for t, _ in b]
    assert fingerprints("x = 1") == {}  # shorter than one k-gram: nothing to match


def test_planted_copy_is_flagged_and_starter_code_is_not(tmp_path, hw0):
    starter = starter_source(hw0)
    assert "raise NotImplementedError()" in starter and "relu_table" in starter
    subs = tmp_path / "subs"
    for n in range(20):
        relu, methods = distinct_solution(n)
        submit(subs, f"student{n:02d}", graded_cell(starter, relu, methods, f"Helper{n}"))

    # The copy of student07: every name of theirs renamed, methods in another order.
    relu, methods = distinct_solution(7)
    copied = graded_cell(starter, relu, [methods[2], methods[0], methods[3], methods[1]], "Tools")
    copied = re.sub(r"\bv7_(\d)_(\d)\b", lambda m: f"item{m.group(2)}{'abcd'[int(m.group(1))]}", copied)
    copied = re.sub(r"\bmethod_7_(\d)\b", lambda m: f"step_{m.group(1)}", copied)
    assert "v7_" not in copied and "method_7" not in copied
    submit(subs, "copier", copied)

    # Two students who only filled in relu: they share the starter code and nothing else.
    submit(subs, "starter_only_a", graded_cell(starter, "return x.clamp(min=0)", [], "A").rsplit("class", 1)[0])
    submit(subs, "starter_only_b", graded_cell(starter, "return x * (x > 0)", [], "B").rsplit("class", 1)[0])

    out = tmp_path / "report"
    report = similarity_report(subs, hw0, out, threshold=THRESHOLD)
    assert report.submissions == 23 and not report.skipped
    assert [{p.a, p.b} for p in report.flagged] == [{"student07", "copier"}]
    with open(report.csv) as f:
        rows = {frozenset((r["student_a"], r["student_b"])): float(r["score"]) for r in csv.DictReader(f)}
    assert rows[frozenset(("student07", "copier"))] >= 0.8
    assert rows.get(frozenset(("starter_only_a", "starter_only_b")), 0.0) < THRESHOLD

    page = report.html.read_text()
    assert "student07" in page and "copier" in page and "class='same'" in page
    assert "starter_only_a" not in page  # only flagged pairs are shown side by side


def test_two_students_sharing_only_the_starter_code_are_not_flagged(tmp_path, hw0):
    # Alone (no class in which the starter is common to most), so the starter subtraction must do it.
    starter = starter_source(hw0)
    subs = tmp_path / "subs"
    submit(subs, "a", graded_cell(starter, "return x.clamp(min=0)", [], "A").rsplit("class", 1)[0])
    submit(subs, "b", graded_cell(starter, "return x * (x > 0)", [], "B").rsplit("class", 1)[0])
    assert similarity_report(subs, hw0, tmp_path / "report", threshold=THRESHOLD).flagged == []
    # Without the starter subtracted, the same pair looks like a copy.
    unsubtracted = similarity_report(subs, hw0, tmp_path / "raw", threshold=THRESHOLD, starter={})
    assert [{p.a, p.b} for p in unsubtracted.flagged] == [{"a", "b"}]


def test_cli_writes_the_report_and_lists_what_it_could_not_read(tmp_path, hw0, monkeypatch, capsys):
    subs = tmp_path / "subs"
    submit(subs, "ann", starter_source(hw0))
    (subs / "bo.zip").write_bytes(b"PK\x03\x04 not really a zip")
    from autograder import __main__ as cli

    monkeypatch.setattr(cli, "_assignment", lambda name: hw0)
    assert main(["similarity", str(subs), "--assignment", "hw0", "--out", str(tmp_path / "out")]) == 0
    assert "1 submissions" in capsys.readouterr().out
    assert "bo" in (tmp_path / "out" / "similarity.html").read_text()
