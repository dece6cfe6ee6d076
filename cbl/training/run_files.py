"""Writing a run directory (cbl/reporting/runs.py reads it): config.yaml, metrics.jsonl, metrics.json.

Every file goes through an atomic write (cbl/training/checkpoint.py), so a reader never sees half a file.
metrics.jsonl is rewritten whole from the run's history each epoch, so it always agrees with the newest
checkpoint, and a resumed run never logs an epoch twice.  A failure record never replaces a finished run's
metrics.json.
"""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from cbl.data.multilabel import MULTILABEL_DATASETS
from cbl.losses.criterion import method_label
from cbl.training.checkpoint import atomic_write_text


@functools.cache
def git_commit() -> str:
    """The checkout's commit (`-dirty` with uncommitted changes), read once per process: a sweep's last run
    reports the code the process loaded, not a commit made while it trained (cbl.train reads it at start)."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_config(run_dir: Path, cfg: DictConfig, data_source: dict | None) -> None:
    """config.yaml: the resolved config, then the record of where the images came from (cbl/data/provenance.py)."""
    text = OmegaConf.to_yaml(cfg, resolve=True)
    if data_source is not None:
        text += OmegaConf.to_yaml({"data_source": data_source})
    atomic_write_text(run_dir / "config.yaml", text)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))


def is_finished(run_dir: Path) -> dict[str, Any] | None:
    """The metrics of a finished run in `run_dir`, or None."""
    metrics = read_json(run_dir / "metrics.json")
    return metrics if metrics and metrics.get("status") == "finished" else None


def write_failure(run_dir: Path, *, status: str, error: BaseException, epochs: int | None, seed: int | None,
                  epochs_completed: int, fields: dict[str, Any]) -> None:
    """metrics.json of a run that stopped ("failed" or "interrupted"), unless the folder holds a finished run."""
    if is_finished(run_dir):
        return
    write_json(run_dir / "metrics.json", {
        "status": status,
        "error": f"{type(error).__name__}: {error}".splitlines()[0],
        "epochs": epochs,
        "epochs_completed": epochs_completed,
        "seed": seed,
        "git_commit": git_commit(),
        "run": fields,
    })


def run_fields(cfg: DictConfig, num_classes: int | None) -> dict[str, Any]:
    """The fields tables and dashboards group runs by (metrics.json "run", wandb's top-level config)."""
    return {
        "dataset": cfg.dataset.name,
        "imbalance_factor": cfg.dataset.get("imbalance_factor"),
        "num_classes": num_classes,
        "model": cfg.model.name,
        "input_size": cfg.dataset.get("input_size"),
        "loss": cfg.loss.name,
        "beta": float(cfg.loss.beta),
        "gamma": float(cfg.loss.gamma),
        "method": method_label(cfg.loss, cfg.sampler.name),
        # beyond the paper (cbl.reporting.runs.Run.settings shows the ones that differ from the paper's defaults)
        "weighting": cfg.loss.get("weighting", "effective_number"),
        "drw_epoch": cfg.loss.get("drw_epoch"),
        "reduction": cfg.loss.get("reduction", "batch"),
        "sampler": cfg.sampler.name,
        # multi-label data only (cbl/data/multilabel.py): single-label runs keep the fields (and wandb groups) they had
        **({"multilabel_weighting": cfg.loss.get("multilabel_weighting", "sample")}
           if cfg.dataset.name in MULTILABEL_DATASETS else {}),
        **{k: float(cfg.loss[k]) for k in ("tau", "max_m", "s") if k in cfg.loss},
        # the recipe: a run whose recipe differs from the paper's never fills a paper cell (cbl.reporting.runs)
        "epochs": int(cfg.optim.epochs),
        "batch_size": int(cfg.optim.batch_size),
        "optimizer": cfg.optim.name,
        "lr": float(cfg.optim.lr),
        "reference_batch": int(cfg.optim.reference_batch),
        "warmup_epochs": cfg.optim.warmup_epochs,
        "milestones": list(cfg.optim.milestones),
        "factors": [float(f) for f in cfg.optim.factors],
        "weight_decay": float(cfg.optim.weight_decay),
        "momentum": float(cfg.optim.momentum),
        "nesterov": bool(cfg.optim.nesterov),
        "seed": int(cfg.seed),
        "precision": cfg.precision,
        "order": cfg.dataset.get("order", "shuffled"),  # the training order (cbl/data/epoch.py)
        "data_source": None,  # known once the data is read (cbl.training.run.resume_identity)
    }
