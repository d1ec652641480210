"""An assignment as data: its rubric (assignments/<name>/rubric.yaml), its checks
(checks.py, run by the grader) and its probes (probes.py, run in the sandbox)."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import yaml

from .checks import Check
from .notebook import setup_source
from .sandbox import KIT_ROOT, Limits
from .scoring import RubricItem

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


def _load_checks(path: Path, name: str) -> list[Check]:
    spec = importlib.util.spec_from_file_location(f"assignment_checks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.CHECKS)


def load_assignment(name: str, root: Path = KIT_ROOT) -> Assignment:
    folder = root / "assignments" / name
    if not (folder / "rubric.yaml").is_file():
        raise LookupError(f"unknown assignment {name!r}; known: {', '.join(available(root)) or 'none'}")
    spec = yaml.safe_load((folder / "rubric.yaml").read_text())
    items = tuple(RubricItem.from_dict(item, section["name"]) for section in spec["sections"] for item in section["items"])
    checks = tuple(_load_checks(folder / "checks.py", name))

    graded = {i.id for i in items if not i.manual and i.id not in ENGINE_ITEMS}
    defined = {c.id for c in checks}
    if graded != defined:
        raise ValueError(f"{name}: rubric items and checks differ: only in rubric {sorted(graded - defined)}, "
                         f"only in checks.py {sorted(defined - graded)}")
    return Assignment(
        name=name, title=spec["title"], folder=folder, notebook=spec["notebook"],
        source_notebook=root / spec["source_notebook"], setup_cell=spec["setup_cell"],
        setup_source=setup_source(root / spec["source_notebook"], spec["setup_cell"]),
        graded_cells={k: v or {} for k, v in spec["graded_cells"].items()},
        allowed_imports=tuple(spec.get("allowed_imports", ())),
        required_files=tuple(spec.get("required_files", ())), submission_zip=spec["submission_zip"],
        limits=Limits.from_rubric(spec.get("limits")), items=items, checks=checks,
    )
