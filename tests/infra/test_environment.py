"""environment.yml (conda) and pyproject.toml describe the same package and Python."""

import re
import tomllib
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]


def test_environment_yml_agrees_with_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = env["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    pythons = [d for d in conda if re.match(r"python\b", d)]
    assert len(pythons) == 1, f"environment.yml must pin python once, got {pythons}"
    version = re.match(r"python\s*=+\s*([\d.]+)", pythons[0]).group(1)
    assert version in SpecifierSet(project["project"]["requires-python"]), (version, project["project"])
    assert project["tool"]["ruff"]["target-version"] == "py" + "".join(version.split(".")[:2])
    # one source of truth: conda only brings python and pip; everything else comes from pyproject via pip
    assert set(conda) - set(pythons) == {"pip"}, f"extra conda packages: {set(conda) - set(pythons) - {'pip'}}"
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    local = [p for p in pip if re.match(r"(-e\s+)?\.(\[|$)", p)]
    assert local == pip, f"the pip section must install only this project, got {pip}"
    extras = re.findall(r"\[([^\]]*)\]", local[0])
    for extra in (extras[0].split(",") if extras else []):
        assert extra.strip() in project["project"]["optional-dependencies"], extra
