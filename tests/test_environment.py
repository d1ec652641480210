"""The student environment (environment.yml) and the kit (pyproject.toml) agree."""
import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}  # conda's name -> the pip name pyproject uses


def _name(requirement: str) -> str:
    return re.split(r"[<>=!\[ ]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_names_the_same_packages_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pyproject = {_name(r) for r in project["dependencies"]}
    for group in project["optional-dependencies"].values():
        pyproject |= {_name(r) for r in group}

    env = yaml.safe_load((REPO / "environment.yml").read_text())
    names = set()
    for dep in env["dependencies"]:
        for req in (dep["pip"] if isinstance(dep, dict) else [dep]):
            names.add(CONDA_NAMES.get(_name(req), _name(req)))
    names -= {"python", "pip"}
    assert names == pyproject


def test_requirements_pin_every_pyproject_package():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for group in project["optional-dependencies"].values():
        wanted |= {_name(r) for r in group}
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower()] = version
    assert wanted <= set(pins)
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    assert pins["nbgrader"].startswith("0.9.")
