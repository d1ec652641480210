"""An assignment as data: its rubric (assignments/<name>/rubric.yaml), its checks
(checks.py, run by the grader) and its probes (probes.py, run in the sandbox)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from .cells import SubmissionError, setup_source
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
    allowed_imports: tuple[str, ...]
    required_files: tuple[dict, ...]
    submission_zip: str
    limits: Limits
    items: tuple[RubricItem, ...]
    checks: tuple[Check, ...]

    @property
    def probes_path(self) -> Path:
        return self.folder / "probes.py"


def available(root: Path = KIT_ROOT) -> list[str]:
    return sorted(p.parent.name for p in (root / "assignments").glob("*/rubric.yaml"))


def load_assignment(name: str, root: Path = KIT_ROOT) -> Assignment:
    folder = root / "assignments" / name
    if not (folder / "rubric.yaml").is_file():
        raise LookupError(f"unknown assignment {name!r}; known: {', '.join(available(root)) or 'none'}")
    spec = yaml.safe_load((folder / "rubric.yaml").read_text())
    entries = [(item, section["name"]) for section in spec["sections"] for item in section["items"]]
    # Hidden checks live in hidden_checks.py, which only the grader has: a student's
    # release holds checks.py alone, and its self-check leaves the hidden items out.
    has_hidden = (folder / "hidden_checks.py").is_file()
    items = tuple(RubricItem.from_dict(item, section) for item, section in entries
                  if has_hidden or not item.get("hidden"))
    public = load_module_from(folder / "checks.py", f"assignment_{name}_checks")
    checks = tuple(public.CHECKS)
    if has_hidden:  # hidden_checks.py sees the public module as `public`
        checks += tuple(load_module_from(folder / "hidden_checks.py", f"assignment_{name}_hidden_checks", public=public).CHECKS)

    graded = {i.id for i in items if not i.manual and i.id not in ENGINE_ITEMS}
    defined = {c.id for c in checks}
    if graded != defined:
        raise ValueError(f"{name}: rubric items and checks differ: only in rubric {sorted(graded - defined)}, "
                         f"only in the check files {sorted(defined - graded)}")
    # In a student's release there is no source/ folder: their notebook holds the (locked)
    # setup cell; if it is unreadable the self-check says so and runs nothing.
    source = root / spec["source_notebook"]
    setup = setup_source(source, spec["setup_cell"]) if source.is_file() else ""
    if not source.is_file():
        source = root / spec["notebook"]
        try:
            setup = setup_source(source, spec["setup_cell"])
        except (SubmissionError, LookupError, OSError):
            setup = ""
    return Assignment(
        name=name, title=spec["title"], folder=folder, notebook=spec["notebook"],
        source_notebook=source, setup_cell=spec["setup_cell"],
        setup_source=setup,
        graded_cells={k: v or {} for k, v in spec["graded_cells"].items()},
        allowed_imports=tuple(spec.get("allowed_imports", ())),
        required_files=tuple(spec.get("required_files", ())), submission_zip=spec["submission_zip"],
        limits=Limits.from_rubric(spec.get("limits")), items=items, checks=checks,
    )
