"""What `python -m cbl.train` shows before anything runs: the resolved configuration (`--cfg job --resolve`, every
custom resolver of configs/ included), --help and --version."""

from __future__ import annotations

import re

import pytest
import yaml
from omegaconf import OmegaConf

from tests.train_utils import CONFIG_DIR, compose_cfg, run_cli

PRESETS = [f"{group}={p.stem}" for group in ("experiment", "sweep") for p in sorted((CONFIG_DIR / group).glob("*.yaml"))]


@pytest.mark.parametrize("overrides,factors", [([], [0.01, 0.0001]), (["dataset.imbalance_factor=1"], [0.1, 0.01])])
def test_cfg_job_resolve_prints_the_resolved_config(tmp_path, overrides, factors):
    proc = run_cli([*overrides, "--cfg", "job", "--resolve"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    shown = yaml.safe_load(proc.stdout)
    assert shown["optim"]["factors"] == factors and shown["name"] == "table2"
    assert not list(tmp_path.iterdir())  # showing the config writes nothing


def test_cfg_hydra_resolve_prints_hydra_node_with_the_run_dir(tmp_path):
    """Hydra resolves its own node with the job's keys removed, so its run dir (${output_dir}/...) cannot resolve;
    cbl-train prints it resolved against the whole config, the run dir as the run would get it."""
    from cbl.training.config import run_name

    proc = run_cli(["dataset.imbalance_factor=1", "output_dir=somewhere", "--cfg", "hydra", "--resolve"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    shown = yaml.safe_load(proc.stdout)["hydra"]
    name = run_name(OmegaConf.to_container(compose_cfg("dataset.imbalance_factor=1"), resolve=True))
    assert shown["run"]["dir"] == f"somewhere/table2/{name}" and shown["runtime"]["output_dir"] == shown["run"]["dir"]
    assert shown["job_logging"]["handlers"]["file"]["filename"] == f"somewhere/table2/{name}/train.log"
    assert not list(tmp_path.iterdir())
    typo = run_cli(["bogus=1", "--cfg", "hydra", "--resolve"], cwd=tmp_path)  # one line, as for any command
    assert typo.returncode == 2 and typo.stderr.startswith("error: bogus=1: the config has no key 'bogus'")
    assert "Traceback" not in typo.stderr


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_resolves_in_place_as_cfg_resolve_does(preset):
    """What `--cfg job --resolve` and `--cfg all --resolve` do (OmegaConf.resolve), for every experiment and sweep."""
    cfg = compose_cfg(preset, "output_dir=/tmp/o", return_hydra_config=True)
    OmegaConf.resolve(cfg)
    assert all(isinstance(f, float) for f in cfg.optim.factors)
    assert cfg.hydra.run.dir == f"/tmp/o/{cfg.name}/{cfg.hydra.sweep.subdir}"


def test_help_describes_cbl_and_version_names_cbl_torch_and_hydra(tmp_path):
    import cbl

    helped = run_cli(["--help"], cwd=tmp_path)
    assert helped.returncode == 0 and helped.stdout.startswith("cbl-train (python -m cbl.train): train one configuration")
    assert "Examples:" in helped.stdout and "sweep: demo, demo_multilabel, evidence_lossy" in helped.stdout
    version = run_cli(["--version"], cwd=tmp_path)
    assert version.returncode == 0
    assert re.fullmatch(rf"cbl {re.escape(cbl.__version__)} \(torch \S+, hydra \S+, python \S+\)\n", version.stdout)


def test_resolve_without_cfg_is_one_line(tmp_path):
    proc = run_cli(["--resolve"], cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr == "error: --resolve goes with --cfg (e.g. --cfg job --resolve) or --help\n"


def test_a_sweep_file_s_values_are_tried_too_unless_the_command_line_replaces_them(tmp_path, monkeypatch):
    """A typo among a sweep file's hydra.sweeper.params refuses the sweep in one line, as on the command line."""
    import shutil

    from cbl.training import overrides

    configs = tmp_path / "configs"
    shutil.copytree(overrides.CONFIG_DIR, configs)
    (configs / "sweep" / "typo.yaml").write_text(
        "# @package _global_\nhydra:\n  mode: MULTIRUN\n  sweeper:\n    params:\n      loss: softmax,focall\n"
        "      loss.beta: 0.0,0.9\n")
    (configs / "sweep" / "key_typo.yaml").write_text(
        "# @package _global_\nhydra:\n  sweeper:\n    params:\n      loss.bta: 0.0,0.9\n")
    monkeypatch.setattr(overrides, "CONFIG_DIR", configs)
    assert overrides.override_problem(["sweep=typo"]).startswith("loss=focall: no such loss option; choose one of")
    assert overrides.override_problem(["sweep=key_typo"]).startswith("loss.bta=0.0: the config has no key 'loss.bta'")
    assert overrides.override_problem(["sweep=typo", "loss=softmax"]) is None  # the command line's loss replaces it
    assert overrides.override_problem(["sweep=evidence_lossy"]) is None


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_passes_the_override_check(preset):
    """The check before Hydra runs never refuses a shipped experiment or sweep, every swept value included."""
    from cbl.training.overrides import override_problem

    assert override_problem([preset]) is None
