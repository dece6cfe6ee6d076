"""Helpers for the training tests: compose configs with Hydra's compose API, run `python -m cbl.train` in a
subprocess, and small fake datasets in the real on-disk formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import cbl.training.config  # noqa: F401  (registers the cbl_dirname resolver)
from tests.data_fakes import write_cifar10

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "configs"

#: variables by which a launcher (torchrun, submitit) tells a process its rank: never inherited by the test runs
LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "SUBMITIT_EXECUTOR")

#: fast, deterministic, quiet settings for short CPU runs
QUIET = ["device=cpu", "deterministic=true", "progress=false", "wandb.mode=disabled"]


def compose_cfg(*overrides: str, return_hydra_config: bool = False) -> DictConfig:
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=return_hydra_config)


def tiny_cifar_overrides(root: Path, epochs: int = 2) -> list[str]:
    """ResNet-32 on a fake CIFAR-10 archive (12 images per class before long-tailing)."""
    if not (root / "cifar-10-batches-py").is_dir():
        write_cifar10(root, per_class_train=12, per_class_test=3)
    return [
        "dataset=cifar10_lt", f"dataset.root={root}", "dataset.n_max=12", "dataset.imbalance_factor=4",
        f"optim.epochs={epochs}", "optim.batch_size=16", "optim.reference_batch=16", "optim.warmup_epochs=1",
        "optim.milestones=[]", "optim.factors=[]", "eval_batch_size=10",
    ]


def demo_overrides(epochs: int = 3) -> list[str]:
    """The offline digits demo, shortened."""
    return ["experiment=demo", f"optim.epochs={epochs}", "optim.milestones=[]", "optim.factors=[]"]


def run_cli(args: list[str], cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m cbl.train <args>` with the repository importable and one CPU thread (deterministic)."""
    full_env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    full_env.update({"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0",
                     **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "cbl.train", *args], cwd=cwd, env=full_env, capture_output=True, text=True,
        timeout=timeout,
    )


def run_torchrun(args: list[str], cwd: Path, nproc: int = 2, env: dict | None = None,
                 timeout: float = 300) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=<nproc> -m cbl.train <args>` (CPU processes, gloo), as run_cli."""
    full_env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}  # torchrun sets its own
    full_env.update({"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0",
                     **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "cbl.train",
         *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def read_history(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
