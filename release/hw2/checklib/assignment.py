"""An assignment as data: its rubric (assignments/<name>/rubric.yaml), its checks
(checks.py, run by the grader) and its probes (probes.py, run in the sandbox)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from .cells import SubmissionError, imports_in, setup_source
from .checks import Check
from .runner import load_module_from
from .scoring import RubricItem

KIT_ROOT = Path(__file__).resolve().parents[1]  # the kit, or a student's release folder


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 120       # CPU time of one child, all probes together
    memory_mb: int = 2048        # address space on top of the preloaded libraries
    file_mb: int = 64            # largest file the child may write
    cells_timeout: float = 60.0  # wall seconds for all graded cells
    probe_timeout: float = 30.0  # wall seconds for one probe
    output_kb: int = 32          # captured stdout/stderr kept for feedback

    @classmethod
    def from_rubric(cls, values: dict | None) -> "Limits":
        return cls(**(values or {}))

ENGINE_ITEMS = ("rules.graded_cells", "rules.imports")  # judged by the engine itself
REQUIRED_KEYS = ("title", "notebook", "source_notebook", "setup_cell", "graded_cells", "submission_zip", "sections")


class ConfigError(ValueError):
    """An instructor's mistake in an assignment's files, found before any student is graded."""

    def __init__(self, file: Path, key: str, message: str):
        self.file, self.key = Path(file), key
        super().__init__(f"{file}: {key}: {message}")


@dataclass(frozen=True)
class Assignment:
    name: str
    title: str
    folder: Path
    notebook: str
    source_notebook: Path
    setup_cell: str
    setup_source: str             # that cell's code, read once from the source notebook
    graded_cells: dict            # grade_id -> {"stub": probe-module function run before the cell}
    required_files: tuple[dict, ...]
    submission_zip: str
    limits: Limits
    items: tuple[RubricItem, ...]
    checks: tuple[Check, ...]
    cross_checks: tuple[dict, ...] = ()   # self-reported results vs the notebook's outputs (autograder/crosscheck.py)
    extra_imports: tuple[str, ...] = ()   # rubric's extra_imports: allowed although the setup cell does not import them
    test_set: dict | None = None          # rubric's test_set: {"file": the grader's labelled set, "images": the
                                          # name the child reads the images alone under} (checklib/verified.py)
    leaderboard: tuple[dict, ...] = ()    # rubric's leaderboard: {"name", "figure", "order"} per column

    @property
    def test_set_path(self) -> Path | None:
        """The instructor's labelled test set (grader-only), when the rubric names one."""
        return self.folder / self.test_set["file"] if self.test_set and self.test_set.get("file") else None

    @property
    def allowed_imports(self) -> tuple[str, ...]:
        """What graded cells may import: the packages the setup cell imports (the course's
        rule is that nothing new is imported anywhere), their submodules, and `extra_imports`."""
        return tuple(sorted({name.split(".")[0] for name in imports_in(self.setup_source)
                             if all(part.isidentifier() for part in name.split("."))} | set(self.extra_imports)))

    @property
    def probes_path(self) -> Path:
        return self.folder / "probes.py"


def available(root: Path = KIT_ROOT) -> list[str]:
    return sorted(p.parent.name for p in (root / "assignments").glob("*/rubric.yaml"))


def _read_rubric(path: Path) -> dict:
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(path, "(syntax)", f"not valid YAML: {err}") from None
    if not isinstance(spec, dict):
        raise ConfigError(path, "(top level)", "expected a mapping of keys")
    missing = [k for k in REQUIRED_KEYS if k not in spec]
    if missing:
        raise ConfigError(path, missing[0], "required key missing")
    if not isinstance(spec["graded_cells"], dict):
        raise ConfigError(path, "graded_cells", "expected a mapping grade_id -> options ({} for none)")
    return spec


def _validate(name: str, folder: Path, spec: dict, items, checks, complete: bool = True) -> None:
    """What can be checked without the notebook: every check has a rubric item and vice
    versa, ids are unique, every graded cell a check needs is declared and (where all
    checks are here, `complete`: not a student's release without the hidden ones)
    every declared graded cell is used by a check."""
    rubric = folder / "rubric.yaml"
    ids = [i.id for i in items]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ConfigError(rubric, f"sections: item {dupes[0]!r}", "this id appears more than once")
    graded = {i.id for i in items if not i.manual and i.id not in ENGINE_ITEMS}
    defined = {c.id for c in checks}
    if defined - graded:
        check = sorted(defined - graded)[0]
        raise ConfigError(folder / "checks.py", f"Check({check!r})",
                          f"no rubric item in {rubric.name} has this id (add one, or mark it manual)")
    if graded - defined:
        item = sorted(graded - defined)[0]
        raise ConfigError(rubric, f"sections: item {item!r}",
                          "no check in checks.py or hidden_checks.py has this id (write one, or mark the item manual: true)")
    cells = set(spec["graded_cells"])
    files = {f["name"] for f in spec.get("required_files", ())}
    for entry in spec.get("required_files", ()):
        also = entry.get("also", [])
        if not isinstance(also, list) or not all(isinstance(n, str) for n in also):
            raise ConfigError(rubric, f"required_files {entry['name']!r}: also", "a list of other names the file is accepted under")
    _validate_cross_checks(rubric, spec.get("cross_checks", ()), files)
    _validate_test_set(rubric, spec, checks, complete)
    unused = sorted(cells - {c for check in checks for c in check.cells})
    if unused and complete:
        raise ConfigError(rubric, f"graded_cells {unused[0]!r}", "no check uses this graded cell (name it in a "
                                                                 "check's cells=..., or remove it)")
    for check in checks:
        unknown = [c for c in check.cells if c not in cells]
        if unknown:
            raise ConfigError(rubric, "graded_cells", f"check {check.id!r} needs graded cell {unknown[0]!r}, "
                                                      f"which is not declared (declared: {', '.join(sorted(cells))})")
        unknown = [f for f in check.files if f not in files]
        if unknown:
            raise ConfigError(rubric, "required_files", f"check {check.id!r} reads {unknown[0]!r}, "
                                                        "which is not a required file")


def _check_source(source: Path, spec: dict) -> str:
    """The instructor's notebook has the setup cell and every declared graded cell
    (a '# AUTOGRADED' code cell with that grade_id); returns the setup cell's code."""
    import nbformat

    from .cells import TAG, grade_id, is_graded

    nb = nbformat.read(source, as_version=4)
    setup = [c.source for c in nb.cells if c.cell_type == "code" and grade_id(c) == spec["setup_cell"]]
    if not setup:
        raise ConfigError(source, f"setup_cell {spec['setup_cell']!r}", "no code cell has this grade_id")
    every = {grade_id(c) for c in nb.cells}
    for n, entry in enumerate(spec.get("cross_checks", ())):
        cell = entry.get("shown_in") or entry.get("logged_in")
        if cell not in every:
            raise ConfigError(source, f"cross_checks[{n}] cell {cell!r}", "no cell of the notebook has this grade_id")
    found = {grade_id(c) for c in nb.cells if is_graded(c)}
    for gid in spec["graded_cells"]:
        if gid not in found:
            raise ConfigError(source, f"graded_cells {gid!r}", f"the rubric names this graded cell, but no code cell "
                                                               f"starting '{TAG}' has this grade_id")
    return setup[0]


def _validate_test_set(rubric: Path, spec: dict, checks, complete: bool) -> None:
    """`test_set` names the grader's file (the grader's rubric only: a student's release
    has none) and the images' name in the child; every check that reads the test set
    needs it; leaderboard columns name a figure and an order."""
    test_set = spec.get("test_set")
    if test_set is not None:
        if not isinstance(test_set, dict) or not isinstance(test_set.get("images"), str) or (
                complete and not isinstance(test_set.get("file"), str)):
            raise ConfigError(rubric, "test_set", "expected {file: the labelled test set (grader-only, e.g. assets/test_batch), "
                                                  "images: the file name the sandboxed child reads the images under}")
        if complete and test_set["file"] not in spec.get("hidden_files", ()):
            raise ConfigError(rubric, "test_set.file", f"{test_set['file']!r} holds the labels: list it in hidden_files "
                                                       "so that it never ships in the release")
    users = [c.id for c in checks if c.test_set]
    if users and test_set is None:
        raise ConfigError(rubric, "test_set", f"check {users[0]!r} reads the test set, but the rubric names none")
    for n, entry in enumerate(spec.get("leaderboard", ())):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not isinstance(entry.get("figure"), str) \
                or entry.get("order", "desc") not in ("asc", "desc"):
            raise ConfigError(rubric, f"leaderboard[{n}]", "expected {name: column title, figure: a figure a check "
                                                           "measures, order: asc or desc}")


def _validate_cross_checks(rubric: Path, entries, files: set) -> None:
    import re

    for n, entry in enumerate(entries):
        key = f"cross_checks[{n}]"
        if not isinstance(entry, dict) or entry.get("file") not in files:
            raise ConfigError(rubric, f"{key}.file", f"must name a required file (one of {', '.join(sorted(files))})")
        if not isinstance(entry.get("columns"), list) or not entry["columns"]:
            raise ConfigError(rubric, f"{key}.columns", "a list of the table's columns to compare")
        if ("shown_in" in entry) == ("logged_in" in entry):
            raise ConfigError(rubric, key, "give exactly one of shown_in (the cell displaying the table) and "
                                           "logged_in (the cell whose output logs the values)")
        if "logged_in" in entry:
            try:
                groups = re.compile(entry.get("pattern", "")).groups
            except re.error as err:
                raise ConfigError(rubric, f"{key}.pattern", f"not a regular expression: {err}") from None
            if groups != 1:
                raise ConfigError(rubric, f"{key}.pattern", "needs exactly one group, the logged number")


def load_assignment(name: str, root: Path = KIT_ROOT) -> Assignment:
    folder = root / "assignments" / name
    if not (folder / "rubric.yaml").is_file():
        raise LookupError(f"unknown assignment {name!r}; known: {', '.join(available(root)) or 'none'}")
    rubric = folder / "rubric.yaml"
    spec = _read_rubric(rubric)
    try:
        entries = [(item, section["name"]) for section in spec["sections"] for item in section["items"]]
    except (KeyError, TypeError) as err:
        raise ConfigError(rubric, "sections", f"each section needs a name and a list of items (missing {err})") from None
    # Hidden checks live in hidden_checks.py, which only the grader has: a student's
    # release holds checks.py alone, and its self-check leaves the hidden items out.
    has_hidden = (folder / "hidden_checks.py").is_file()
    items = []
    for item, section in entries:
        if has_hidden or not item.get("hidden"):
            try:
                items.append(RubricItem.from_dict(item, section))
            except (KeyError, TypeError, ValueError) as err:
                raise ConfigError(rubric, f"sections[{section!r}].items[{item.get('id', '?')!r}]",
                                  f"{type(err).__name__}: {err}") from None
    items = tuple(items)
    public = load_module_from(folder / "checks.py", f"assignment_{name}_checks")
    checks = tuple(public.CHECKS)
    if has_hidden:  # hidden_checks.py sees the public module as `public`
        checks += tuple(load_module_from(folder / "hidden_checks.py", f"assignment_{name}_hidden_checks", public=public).CHECKS)
    # A student's release has neither source/ nor the hidden checks, which may be all that use a cell.
    _validate(name, folder, spec, items, checks, complete=(root / spec["source_notebook"]).is_file())

    # In a student's release there is no source/ folder: their notebook holds the (locked)
    # setup cell; if it is unreadable the self-check says so and runs nothing.
    source = root / spec["source_notebook"]
    if source.is_file():
        setup = _check_source(source, spec)
    else:
        source = root / spec["notebook"]
        try:
            setup = setup_source(source, spec["setup_cell"])
        except (SubmissionError, LookupError, OSError):
            setup = ""
    try:
        limits = Limits.from_rubric(spec.get("limits"))
    except TypeError as err:
        raise ConfigError(folder / "rubric.yaml", "limits", f"{err} (known: {', '.join(Limits.__dataclass_fields__)})") from None
    return Assignment(
        name=name, title=spec["title"], folder=folder, notebook=spec["notebook"],
        source_notebook=source, setup_cell=spec["setup_cell"],
        setup_source=setup,
        graded_cells={k: v or {} for k, v in spec["graded_cells"].items()},
        required_files=tuple(spec.get("required_files", ())), submission_zip=spec["submission_zip"],
        limits=limits, items=items, checks=checks, cross_checks=tuple(spec.get("cross_checks", ())),
        extra_imports=tuple(spec.get("extra_imports", ())),
        test_set=spec.get("test_set"), leaderboard=tuple(spec.get("leaderboard", ())),
    )
