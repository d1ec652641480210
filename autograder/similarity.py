"""A class similarity report: `python -m autograder similarity SUBMISSIONS --assignment hwN --out DIR`.

What is compared is the code of the graded cells (`# AUTOGRADED`), the part students
write. Each submission's cells become a set of fingerprints, as MOSS does
(Schleimer, Wilkerson and Aiken, "Winnowing: local algorithms for document
fingerprinting", SIGMOD 2003):

  1. tokens: Python's own tokenizer, with every identifier replaced by `V`, every
     string by `S` and every number by `N`, comments and blank lines dropped, so
     renaming variables or rewording comments changes nothing;
  2. k-grams of K consecutive tokens, each hashed; in every window of W hashes the
     smallest is kept (winnowing): any match of at least K + W - 1 tokens is found;
  3. fingerprints of the starter code (the release's graded cells) are removed,
     and so are those shared by more than COMMON_FRACTION of a class (and by more
     than COMMON_AT_LEAST submissions), so the handout and the obvious idioms do not count.

Fingerprints are local, so moving whole methods or functions around changes few
of them. A pair's score is the fraction of the smaller submission's fingerprints
that the other also has; pairs at or above the threshold are shown side by side
(the shared lines highlighted) in similarity.html, and every pair with anything in
common is in similarity.csv. A class of 300 takes seconds (benchmarks/similarity.py).

A high score is a reason for a person to look, never a verdict.
"""
from __future__ import annotations

import csv
import hashlib
import html
import io
import keyword
import re
import tempfile
import tokenize
from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from checklib.assignment import KIT_ROOT, Assignment
from checklib.cells import SubmissionError, extract_cells, find_file, read_notebook, strip_magics

K = 12                  # tokens per k-gram: shorter matches are coincidence
W = 8                   # winnowing window: every match of K + W - 1 = 19 tokens or more is seen
COMMON_FRACTION = 0.5   # a fingerprint in more than this fraction of the class is an idiom, not a copy,
COMMON_AT_LEAST = 10    # once more than this many share it (MOSS's -m 10): in a small class, sharing is the point
MIN_FINGERPRINTS = 8    # a submission with fewer of its own (after the starter code) is not scored
SOLUTION = re.compile(r"### BEGIN SOLUTION.*?### END SOLUTION", re.S)


@dataclass
class Document:
    """One submission's graded cells, as text and as fingerprints."""
    student: str
    text: str                                                  # the graded cells, one after the other
    fingerprints: dict[int, list[int]] = field(default_factory=dict)  # hash -> line numbers (1-based) it covers


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    score: float      # shared fingerprints / fingerprints of the smaller submission
    shared: int
    size_a: int
    size_b: int


@dataclass
class SimilarityReport:
    submissions: int
    pairs: list[Pair]            # every pair with something in common, best first
    flagged: list[Pair]          # pairs at or above the threshold
    skipped: dict[str, str]      # student -> why they could not be compared
    html: Path
    csv: Path


# --- tokens and fingerprints ------------------------------------------------------------------

def normalized_tokens(source: str) -> list[tuple[str, int]]:
    """(token, line) pairs of `source` with identifiers, strings and numbers made anonymous."""
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.ENCODING, tokenize.ENDMARKER):
                continue
            if tok.type == tokenize.NAME:
                text = tok.string if keyword.iskeyword(tok.string) else "V"
            elif tok.type == tokenize.STRING:
                text = "S"
            elif tok.type == tokenize.NUMBER:
                text = "N"
            elif tok.type in (tokenize.INDENT, tokenize.DEDENT):
                text = tok.type == tokenize.INDENT and "{" or "}"
            else:
                text = tok.string
            out.append((text, tok.start[0]))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        # Unfinished code: what was tokenized so far still counts.
        pass
    return out


def fingerprints(source: str, k: int = K, w: int = W) -> dict[int, list[int]]:
    """Winnowed k-gram hashes of `source` -> the lines each covers."""
    tokens = normalized_tokens(source)
    grams = []
    for i in range(len(tokens) - k + 1):
        text = " ".join(t for t, _ in tokens[i:i + k])
        h = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
        grams.append((h, tokens[i][1], tokens[i + k - 1][1]))
    chosen: dict[int, list[int]] = {}
    for start in range(max(1, len(grams) - w + 1)):
        window = grams[start:start + w]
        if not window:
            break
        h, first, last = min(window, key=lambda g: g[0])
        chosen.setdefault(h, [])
        chosen[h] = sorted(set(chosen[h]) | set(range(first, last + 1)))
    return chosen


def cells_text(cells: dict[str, str], order: list[str]) -> str:
    return "\n".join(strip_magics(cells[gid]) for gid in order if gid in cells)


# --- reading a class -----------------------------------------------------------------------------

def starter_cells(assignment: Assignment, root: Path = KIT_ROOT) -> dict[str, str]:
    """The graded cells as students received them: the release's notebook, or the
    source notebook with its solution regions cut out."""
    release = root / "release" / assignment.name / assignment.notebook
    if release.is_file():
        nb = read_notebook(release)
    else:
        nb = read_notebook(assignment.source_notebook)
        for cell in nb.cells:
            cell.source = SOLUTION.sub("raise NotImplementedError()", cell.source)  # as nbgrader does
    cells, _ = extract_cells(nb, list(assignment.graded_cells))
    return cells


def read_submission(path: Path, assignment: Assignment) -> dict[str, str]:
    """The graded cells of one submission (a zip, a folder or a notebook)."""
    from .notebook import unpack

    with tempfile.TemporaryDirectory(prefix="similarity-") as tmp:
        folder = unpack(Path(path), Path(tmp))
        nb_path = Path(path) if Path(path).suffix == ".ipynb" else (
            find_file(folder, assignment.notebook) or find_file(folder, "*.ipynb"))
        if nb_path is None:
            raise SubmissionError(f"no notebook found (expected {assignment.notebook})")
        cells, _ = extract_cells(read_notebook(nb_path), list(assignment.graded_cells))
    return cells


def similarity_report(root: Path, assignment: Assignment, out: Path, threshold: float = 0.5,
                      starter: dict[str, str] | None = None) -> SimilarityReport:
    """Compare every pair of submissions under `root` (laid out as for grade-all); write the report to `out`."""
    from .batch import discover

    order = list(assignment.graded_cells)
    starter_prints = set(fingerprints(cells_text(starter if starter is not None else starter_cells(assignment), order)))
    documents, skipped = [], {}
    for entry in discover(Path(root), assignment.name):
        try:
            text = cells_text(read_submission(entry.path, assignment), order)
        except (SubmissionError, OSError, ValueError) as err:
            skipped[entry.student] = str(err)
            continue
        prints = {h: lines for h, lines in fingerprints(text).items() if h not in starter_prints}
        documents.append(Document(entry.student, text, prints))
    pairs = compare(documents)
    flagged = [p for p in pairs if p.score >= threshold]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, html_path = out / "similarity.csv", out / "similarity.html"
    write_csv(pairs, csv_path)
    by_student = {d.student: d for d in documents}
    html_path.write_text(render_html(assignment, flagged, by_student, skipped, threshold, len(documents)))
    return SimilarityReport(len(documents), pairs, flagged, skipped, html_path, csv_path)


def compare(documents: list[Document]) -> list[Pair]:
    """Every pair sharing at least one fingerprint, scored, best first (idioms left out).
    Set intersections over all pairs: 300 submissions (44,850 pairs) take under a
    second (benchmarks/similarity.py), faster than an inverted index at this size."""
    owners = Counter(h for doc in documents for h in doc.fingerprints)
    common_limit = max(COMMON_AT_LEAST, int(COMMON_FRACTION * len(documents)))
    for doc in documents:
        doc.fingerprints = {h: lines for h, lines in doc.fingerprints.items() if owners[h] <= common_limit}
    sets = [frozenset(doc.fingerprints) for doc in documents]
    pairs = []
    for a, b in combinations(range(len(documents)), 2):
        count = len(sets[a] & sets[b])
        if not count:
            continue
        smaller = min(len(sets[a]), len(sets[b]))
        score = count / smaller if smaller >= MIN_FINGERPRINTS else 0.0
        pairs.append(Pair(documents[a].student, documents[b].student, round(score, 4), count, len(sets[a]), len(sets[b])))
    return sorted(pairs, key=lambda p: (-p.score, -p.shared, p.a, p.b))


# --- output --------------------------------------------------------------------------------------

def write_csv(pairs: list[Pair], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student_a", "student_b", "score", "shared_fingerprints", "fingerprints_a", "fingerprints_b"])
        for p in pairs:
            writer.writerow([p.a, p.b, f"{p.score:.4f}", p.shared, p.size_a, p.size_b])


def _highlighted(doc: Document, shared: set[int]) -> str:
    lines = {line for h in shared for line in doc.fingerprints.get(h, ())}
    rows = []
    for number, text in enumerate(doc.text.splitlines(), start=1):
        cls = " class='same'" if number in lines else ""
        rows.append(f"<span{cls}>{number:4d}  {html.escape(text)}</span>")
    return "".join(rows)  # each line is a block of its own


def render_html(assignment: Assignment, flagged: list[Pair], docs: dict[str, Document], skipped: dict[str, str],
                threshold: float, count: int) -> str:
    esc = html.escape
    parts = [f"<!doctype html><meta charset='utf-8'><title>Similarity: {esc(assignment.name)}</title>",
             "<style>body{font:14px/1.4 system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse}"
             "td,th{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left}"
             ".pair{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:1em}pre{background:#f7f7f7;padding:.5em;"
             "overflow-x:auto;font-size:12px}pre span{display:block;white-space:pre}.same{background:#ffe08a}</style>",
             f"<h1>Similarity of the graded cells: {esc(assignment.title)}</h1>",
             f"<p>{count} submissions compared; {len(flagged)} pair(s) at or above {threshold:.0%} of the smaller "
             "submission's fingerprints (starter code and idioms shared by most of the class excluded). "
             "Highlighted lines hold shared code. A high score is a reason to look, not a verdict.</p>"]
    if skipped:
        parts.append("<h2>Not compared</h2><ul>" + "".join(f"<li>{esc(s)}: {esc(r)}</li>" for s, r in skipped.items())
                     + "</ul>")
    parts.append("<h2>Pairs above the threshold</h2><table><tr><th>#</th><th>student</th><th>student</th>"
                 "<th>score</th><th>shared</th></tr>")
    for n, p in enumerate(flagged, start=1):
        parts.append(f"<tr><td><a href='#pair{n}'>{n}</a></td><td>{esc(p.a)}</td><td>{esc(p.b)}</td>"
                     f"<td>{p.score:.0%}</td><td>{p.shared}</td></tr>")
    parts.append("</table>")
    for n, p in enumerate(flagged, start=1):
        a, b = docs[p.a], docs[p.b]
        shared = set(a.fingerprints) & set(b.fingerprints)
        parts.append(f"<h3 id='pair{n}'>{n}. {esc(p.a)} and {esc(p.b)}: {p.score:.0%}</h3><div class='pair'>"
                     f"<div><b>{esc(p.a)}</b><pre>{_highlighted(a, shared)}</pre></div>"
                     f"<div><b>{esc(p.b)}</b><pre>{_highlighted(b, shared)}</pre></div></div>")
    return "\n".join(parts) + "\n"
