"""pyproject.toml (pip users) and environment.yml (conda users) must list the same packages and pins."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def normalise(req: str) -> str:
    return req.replace(" ", "").lower()


def test_environment_yml_lists_the_same_requirements_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_side = {normalise(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip: section"
    conda_side = {normalise(r) for r in pip_sections[0]}
    assert pip_side == conda_side, (
        f"only in pyproject: {sorted(pip_side - conda_side)}; only in environment.yml: {sorted(conda_side - pip_side)}"
    )


def test_torch_pins():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.14.1" in deps and "torchvision==0.29.1" in deps
