"""Write synthetic run directories in the exact on-disk format of cbl.train (metrics.json, metrics.jsonl,
config.yaml), for the tests of cbl.reporting.runs, cbl.reporting.tables, cbl.reporting.figures and the scripts.  Written from the format
description, not from cbl.reporting.runs."""

from __future__ import annotations

import json
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def cifar_counts(n_max: int, classes: int, imbalance_factor: float) -> list[int]:
    return [int(n_max * (1 / imbalance_factor) ** (i / (classes - 1))) for i in range(classes)]


#: the paper's recipes as a run records them (cbl.training.run_files.run_fields), written from the paper and the authors' scripts
CIFAR_RECIPE = {"epochs": 200, "batch_size": 128, "optimizer": "sgd", "lr": 0.1, "reference_batch": 128,
                "warmup_epochs": 5, "milestones": [160, 180], "factors": [0.01, 0.0001], "weight_decay": 0.0002,
                "momentum": 0.9, "nesterov": False}  # fmt: skip
LARGE_SCALE_RECIPE = {"epochs": 90, "batch_size": 1024, "optimizer": "sgd", "lr": 0.1, "reference_batch": 256,
                      "warmup_epochs": 5, "milestones": [30, 60, 80], "factors": [0.1, 0.01, 0.001],
                      "weight_decay": 0.0001, "momentum": 0.9, "nesterov": True}  # fmt: skip


def paper_recipe(dataset: str, imbalance_factor: float | None) -> dict:
    if not dataset.startswith("cifar"):
        return dict(LARGE_SCALE_RECIPE)
    # the authors' balanced script (IF 1) keeps cifar_main.py's default multipliers
    return CIFAR_RECIPE | ({"factors": [0.1, 0.01]} if imbalance_factor == 1 else {})


def write_run(
    path: Path,
    *,
    top1: float = 30.0,
    top5: float = 2.0,
    best: float | None = None,
    dataset: str = "cifar10_lt",
    imbalance_factor: float | None = 100,
    model: str = "resnet32",
    input_size: int = 32,
    loss: str = "softmax",
    beta: float = 0.0,
    gamma: float = 0.0,
    method: str | None = None,
    seed: int = 0,
    subset_seed: int = 0,
    epochs: int | None = None,
    status: str = "finished",
    error: str | None = None,
    shots: dict | None = None,
    samples_per_class: list[int] | None = None,
    history: bool = True,
    precision: str | None = None,
    recipe: dict | None = None,
    data_source: str | None = "official",
    finished_at: float | None = None,
) -> Path:
    """A finished (or failed) run; every epoch logged to metrics.jsonl.  Its recipe is the paper's for its dataset
    (epochs included, unless `epochs` is given), with `recipe` overriding fields; `data_source` None: not recorded."""
    path.mkdir(parents=True, exist_ok=True)
    run_recipe = paper_recipe(dataset, imbalance_factor) | (recipe or {})
    if epochs is None:
        epochs = run_recipe["epochs"]
    run_recipe["epochs"] = epochs
    classes = 100 if dataset.startswith("cifar100") else 10
    if samples_per_class is None:
        samples_per_class = cifar_counts(500 if classes == 100 else 5000, classes, imbalance_factor or 1)
    done = epochs if status == "finished" else max(epochs - 1, 0)
    metrics = {
        "status": status,
        "error": error,
        "top1_err": top1 if status == "finished" else None,
        "top5_err": top5 if status == "finished" else None,
        "best_top1_err": top1 - 0.5 if best is None else best,
        "best_epoch": done,
        "epochs": epochs,
        "epochs_completed": done,
        "per_class_acc": [100.0 - top1] * classes,
        "shot_acc": shots if shots is not None else {"many": 90.0, "medium": 70.0, "few": 40.0},
        "samples_per_class": samples_per_class,
        "seed": seed,
        "subset_seed": subset_seed,
        "git_commit": "abc1234",
        "wall_time_s": 12.5,
        "run": {
            "dataset": dataset,
            "imbalance_factor": imbalance_factor,
            "model": model,
            "input_size": input_size,
            "loss": loss,
            "beta": beta,
            "gamma": gamma,
            "method": method or loss,
            **run_recipe,
        },
    }
    if data_source is not None:  # runs recorded before provenance existed have no "data_source" field
        metrics["run"]["data_source"] = data_source
    if finished_at is not None:
        metrics["finished_at"] = finished_at
    if precision is not None:  # runs recorded before the option existed have no "precision" field
        metrics["run"]["precision"] = precision
    (path / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (path / "config.yaml").write_text(f"loss:\n  name: {loss}\n  beta: {beta}\n")
    if history:
        write_history(path, done)
    return path


def write_history(path: Path, epochs: int, truncated_tail: bool = False) -> Path:
    """metrics.jsonl with epochs 1..epochs: lr 0.1*e, train_loss 3/e, top1_err 90-10e, top5_err 50-5e."""
    path.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"epoch": e, "lr": 0.1 * e, "train_loss": 3.0 / e, "top1_err": 90.0 - 10 * e,
                    "top5_err": 50.0 - 5 * e, "seconds": 1.0})  # fmt: skip
        for e in range(1, epochs + 1)
    ]
    text = "".join(line + "\n" for line in lines)
    if truncated_tail:
        text += '{"epoch": ' + str(epochs + 1) + ', "lr": 0.'  # the writer was killed mid-line
    (path / "metrics.jsonl").write_text(text)
    return path


def load_script(name: str):
    """Import scripts/<name>.py as a module (scripts/ is not a package), to call its main() in-process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"cbl_script_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(name: str, *args: str, cwd: Path | None = None):
    """Run scripts/<name>.py in a fresh interpreter, as a user would; returns the CompletedProcess."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(SCRIPTS.parent), MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, str(SCRIPTS / f"{name}.py"), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60
    )
