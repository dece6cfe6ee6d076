"""Packaging metadata: pyproject.toml keeps ranges, requirements.lock pins the versions behind the README's numbers
(and satisfies the ranges), environment.yml pins the same; the configs ship inside the package as one copy; every
console script points at an importable main()."""

import importlib
import logging
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import cbl.training.config

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirements(lines) -> dict[str, Requirement]:
    reqs = [Requirement(line) for line in lines]
    return {canonicalize_name(r.name): r for r in reqs}


def lock() -> dict[str, Requirement]:
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.lock").read_text().splitlines()]
    return requirements(line for line in lines if line)


def declared() -> dict[str, Requirement]:
    """The dependencies and every extra of pyproject.toml (an extra's range must agree with the base one)."""
    out = requirements(PROJECT["dependencies"])
    for extra in PROJECT["optional-dependencies"].values():
        for name, req in requirements(extra).items():
            assert name not in out or out[name].specifier == req.specifier, f"{name}: two ranges in pyproject.toml"
            out[name] = req
    return out


def environment_pins() -> dict[str, Requirement]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip: section"
    return requirements(pip_sections[0])


def pinned_version(req: Requirement) -> str:
    (spec,) = req.specifier
    assert spec.operator == "==", f"{req}: the lock pins exact versions"
    return spec.version


def test_the_lock_pins_every_declared_package_within_its_range_and_their_dependencies_too():
    pins, ranges = lock(), declared()
    assert set(ranges) <= set(pins), f"declared but not locked: {sorted(set(ranges) - set(pins))}"
    assert all(pinned_version(req) for req in pins.values())  # every line name==version: a lock, not a wish list
    # the dependencies of the dependencies are pinned as well (a whole environment, as `make lock` writes it)
    assert {"omegaconf", "antlr4-python3-runtime", "pyyaml", "pillow", "scipy", "typing-extensions"} <= set(pins)
    for name, req in ranges.items():
        version = pinned_version(pins[name])
        assert req.specifier.contains(version, prereleases=True), f"{name}=={version} is outside pyproject's {req}"


def test_the_readme_numbers_torch_is_locked_and_the_ranges_admit_other_torches():
    pins, ranges = lock(), declared()
    assert pinned_version(pins["torch"]) == "2.14.1" and pinned_version(pins["torchvision"]) == "0.29.1"
    # a range, not a pin: cbl.losses joins environments with another torch 2.x (only 2.14.1 is tested here)
    assert ranges["torch"].specifier.contains("2.4.0") and not ranges["torch"].specifier.contains("3.0.0")
    assert ranges["torchvision"].specifier.contains("0.19.0")


def test_environment_yml_pins_the_declared_packages_at_the_lock_s_versions():
    env, pins, ranges = environment_pins(), lock(), declared()
    assert set(env) == set(ranges), f"only in environment.yml: {sorted(set(env) - set(ranges))}; declared only: {sorted(set(ranges) - set(env))}"
    for name, req in env.items():
        assert pinned_version(req) == pinned_version(pins[name]), f"{name}: environment.yml {req}, lock {pins[name]}"


def test_make_install_uses_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    assert "LOCK   ?= requirements.lock" in makefile and "pip install --quiet -c $(LOCK) -e '.[dev]'" in makefile


def test_configs_are_one_copy_that_the_package_holds():
    link = ROOT / "cbl" / "configs"
    # a link to the repository's configs/ (what people edit), not a second copy that could drift
    assert link.is_symlink() and link.resolve() == (ROOT / "configs").resolve()
    assert cbl.training.config.CONFIG_DIR == (ROOT / "configs").resolve()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["cbl"]
    assert {"configs/*.yaml", "configs/**/*.yaml"} <= set(package_data)


def test_every_console_script_points_at_an_importable_main():
    scripts = PROJECT["scripts"]
    assert {"cbl-train", "cbl-evaluate", "cbl-make-table", "cbl-plot", "cbl-sweep-summary", "cbl-dashboard",
            "cbl-bench", "cbl-weights"} <= set(scripts)  # fmt: skip
    for name, target in scripts.items():
        module, _, attr = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), name


@pytest.mark.parametrize("script", ["make_table", "plot", "sweep_summary", "dashboard", "bench"])
def test_the_scripts_are_thin_wrappers_of_the_commands(script):
    text = (ROOT / "scripts" / f"{script}.py").read_text()
    assert f"from cbl.commands import {script} as _command" in text and len(text.splitlines()) < 30
    assert f'prog="{script}.py"' in text  # messages keep naming the script the user ran


def run_entry_point(monkeypatch, capsys, *argv: str, env: dict | None = None) -> str:
    """cbl.train.cli as the installed `cbl-train` runs it (sys.argv[0] is the executable), in this process."""
    from hydra.core.global_hydra import GlobalHydra

    import cbl.train

    monkeypatch.setattr(sys, "argv", ["/somewhere/bin/cbl-train", *argv])
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        cbl.train.cli()
    except SystemExit as e:  # --help exits, as a console script should
        assert e.code in (0, None)
    finally:
        GlobalHydra.instance().clear()  # so that later tests can initialise Hydra again
        root.handlers[:], root.level = handlers, level  # Hydra configured logging: leave none of it behind
    return capsys.readouterr().out


def test_cbl_train_help_lists_the_groups_and_completion_names_the_console_script(monkeypatch, capsys):
    helped = run_entry_point(monkeypatch, capsys, "--help")
    assert helped.startswith("cbl-train (python -m cbl.train): train one configuration of the class-balanced loss")
    assert "Examples:" in helped and "== Configuration groups ==" in helped
    groups = {line.split(":")[0] for line in helped.split("== Config ==")[0].splitlines() if ": " in line}
    assert {"dataset", "model", "loss", "sampler", "optim", "experiment", "method", "sweep"} <= groups
    script = run_entry_point(monkeypatch, capsys, "-sc", "install=bash")
    assert script.rstrip().endswith("complete -o nospace -o default -F hydra_bash_completion cbl-train")
    query = run_entry_point(monkeypatch, capsys, "-sc", "query=bash", env={"COMP_LINE": "cbl-train optim="})
    assert set(query.split()) == {"optim=cifar", "optim=demo", "optim=large_scale"}


def test_cbl_losses_imports_torch_alone_and_exports_what_it_lists():
    # docs/install.md promises that the loss library joins any torch environment: importing it must not pull in
    # the training stack (Hydra, wandb, plotting) or the rest of cbl
    code = (
        "import sys, cbl.losses as L\n"
        "missing = [n for n in L.__all__ if not hasattr(L, n)]\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'hydra', 'omegaconf', 'wandb', 'matplotlib', 'yaml'}"
        " or m.startswith(('cbl.data', 'cbl.models', 'cbl.training', 'cbl.reporting', 'cbl.training.config')))\n"
        "print(missing, heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "[] []"
