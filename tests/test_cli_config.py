"""What `python -m cbl.train` shows before anything runs: the resolved configuration (`--cfg job --resolve`, every
custom resolver of configs/ included), and one line for flags that cannot go together."""

from __future__ import annotations

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


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_resolves_in_place_as_cfg_resolve_does(preset):
    """What `--cfg job --resolve` and `--cfg all --resolve` do (OmegaConf.resolve), for every experiment and sweep."""
    cfg = compose_cfg(preset, "output_dir=/tmp/o", return_hydra_config=True)
    OmegaConf.resolve(cfg)
    assert all(isinstance(f, float) for f in cfg.optim.factors)
    assert cfg.hydra.run.dir == f"/tmp/o/{cfg.name}/{cfg.hydra.sweep.subdir}"


def test_resolve_without_cfg_is_one_line(tmp_path):
    proc = run_cli(["--resolve"], cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr == "error: --resolve goes with --cfg (e.g. --cfg job --resolve) or --help\n"
