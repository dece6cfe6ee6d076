"""The training recipes behind the paper's tables (Cui et al., CVPR 2019, Sec. 5; the authors' scripts).

The configs (configs/optim/cifar.yaml, large_scale.yaml) hold these values (tests/test_scripts_runs.py checks that
a run of the shipped configs has no recipe difference); the CIFAR lr factors depend on the imbalance factor
(cbl.training.config.cifar_lr_factors).  `recipe_differences` says how a run's recorded fields (`fields_from_config`
of its config) differ from its table's recipe: what keeps it out of the paper's cells.  Training names runs by it
(cbl.training.run_names) and the tables select runs by it (cbl.reporting.runs.Run.recipe_differences).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

#: the datasets of each table, as `run.dataset` names them
TABLE2_DATASETS = ("cifar10_lt", "cifar100_lt")
TABLE3_DATASETS = ("inat2017", "inat2018", "ilsvrc2012")

#: The training recipe behind each table (the paper's Sec. 5 and the authors' scripts), in the
#: fields a run records (cbl.training.run_files.run_fields).  `lr` is the rate after warm-up, lr * batch / reference_batch.
#: The CIFAR factors multiply the base lr from each milestone on: x0.01 / x0.0001 in the long-tailed scripts,
#: x0.1 / x0.01 in the balanced one (IF 1, `cifar_trainval.sh` passes no multipliers: cifar_main.py's default).
TABLE2_RECIPE = {
    "model": "resnet32", "epochs": 200, "batch_size": 128, "optimizer": "sgd", "lr": 0.1, "warmup_epochs": 5,
    "milestones": [160, 180], "factors": [0.01, 1e-4], "weight_decay": 2e-4, "momentum": 0.9, "nesterov": False,
}  # fmt: skip
TABLE2_BALANCED_FACTORS = [0.1, 0.01]
TABLE3_RECIPE = {
    "epochs": 90, "batch_size": 1024, "optimizer": "sgd", "lr": 0.4, "warmup_epochs": 5, "milestones": [30, 60, 80],
    "factors": [0.1, 0.01, 0.001], "weight_decay": 1e-4, "momentum": 0.9, "nesterov": True,
}  # fmt: skip


def recipe(dataset: str | None, imbalance_factor: float | None = None) -> dict | None:
    """The paper's recipe for a run's dataset (Table 2 for CIFAR, Table 3 for iNat / ILSVRC), None for others."""
    if dataset in TABLE2_DATASETS:
        return TABLE2_RECIPE | ({"factors": TABLE2_BALANCED_FACTORS} if imbalance_factor == 1 else {})
    if dataset in TABLE3_DATASETS:
        return dict(TABLE3_RECIPE)
    return None


#: what every paper cell also needs besides the paper's recipe (`recipe`): float32 (bf16 autocast is
#: another computation), this repo's default data order (docs/deviations.md), and the official data release
#: (cbl/data/provenance.py); absent precision / order = recorded before the option existed, with these values
REFERENCE_RUNTIME = {"precision": "fp32", "order": "shuffled"}
OFFICIAL_DATA = "official"


def recipe_differences(fields: dict[str, Any], *without: str) -> list[str]:
    """`Run.recipe_differences` of recorded run fields (`Run.config`; `fields_from_config` of a config): what keeps
    them out of the paper's cells, [] for none.  Keys in `without` are not compared."""
    out = []
    reference = {**(recipe(fields.get("dataset"), fields.get("imbalance_factor")) or {}), **REFERENCE_RUNTIME}
    missing = []
    for key, want in reference.items():
        if key in without:
            continue
        have = _recorded(fields, key)
        if have is None and key not in REFERENCE_RUNTIME:
            missing.append(key)
        elif not _same(want if have is None else have, want):
            out.append(f"{key}={_fmt_value(have)}")
    if missing:
        out.append(f"recipe not recorded ({', '.join(missing)})")
    source = fields.get("data_source")
    if "data" not in without and source != OFFICIAL_DATA:
        out.append(f"data={source or 'source not recorded'}")
    return out


#: the fields of a training schedule, as a run records them (`schedule`)
SCHEDULE_KEYS = ("optimizer", "epochs", "batch_size", "lr", "warmup_epochs", "milestones", "factors", "weight_decay",
                 "momentum", "nesterov")


def schedule(fields: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The recorded training schedule as (key, value) texts (`lr` after the linear scaling rule) of a run on a
    dataset without a paper recipe: what runs must share to be averaged in one table row or paired, which there only
    the schedule says (it keeps a 3-epoch run out of a 30-epoch run's row).  () on the paper's datasets, where
    `recipe_differences` names any difference from the paper's recipe already."""
    if recipe(fields.get("dataset"), fields.get("imbalance_factor")) is not None:
        return ()
    return tuple((key, _fmt_value(_recorded(fields, key))) for key in SCHEDULE_KEYS)


def _recorded(fields: dict[str, Any], key: str) -> Any:
    if key == "lr":  # the rate after warm-up: the linear scaling rule applied (cbl.training.optim.scaled_lr)
        lr, batch, ref = fields.get("lr"), fields.get("batch_size"), fields.get("reference_batch")
        return None if None in (lr, batch, ref) else lr * batch / ref
    return fields.get(key)


#: run field <- config.yaml key, for runs whose metrics.json lacks them
_DESCRIPTION_KEYS = {"dataset": ("dataset", "name"), "imbalance_factor": ("dataset", "imbalance_factor"),
                     "model": ("model", "name"), "input_size": ("dataset", "input_size"), "loss": ("loss", "name"),
                     "beta": ("loss", "beta"), "gamma": ("loss", "gamma"), "epochs": ("optim", "epochs"),
                     "batch_size": ("optim", "batch_size"), "order": ("dataset", "order")}  # fmt: skip
_RECIPE_KEYS = {"optimizer": "name", "lr": "lr", "reference_batch": "reference_batch", "warmup_epochs": "warmup_epochs",
                "milestones": "milestones", "factors": "factors", "weight_decay": "weight_decay",
                "momentum": "momentum", "nesterov": "nesterov"}  # fmt: skip


def fields_from_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The run fields a plain config holds: what the run is, its recipe and data source.  A data source that was
    not hashed (a config.yaml written before the data was read) is named by its file: "npz:<file> (not hashed)"."""
    optim, dataset = cfg.get("optim"), cfg.get("dataset")
    out = {k: optim[v] for k, v in _RECIPE_KEYS.items() if isinstance(optim, dict) and v in optim}
    for field_name, (group, key) in _DESCRIPTION_KEYS.items():
        if isinstance(cfg.get(group), dict) and key in cfg[group]:
            out[field_name] = cfg[group][key]
    out.update({k: cfg[k] for k in ("seed", "precision") if k in cfg})
    source = cfg.get("data_source")
    if isinstance(source, dict) and source.get("id"):
        out["data_source"] = source["id"]
    elif isinstance(dataset, dict) and dataset.get("npz"):
        out["data_source"] = f"npz:{Path(str(dataset['npz'])).name} (not hashed)"
    return out


def _same(have: Any, want: Any) -> bool:
    if isinstance(want, list):
        return isinstance(have, list) and len(have) == len(want) and all(_same(h, w) for h, w in zip(have, want))
    if isinstance(want, bool) or isinstance(have, bool) or isinstance(want, str):
        return have == want
    return isinstance(have, (int, float)) and math.isclose(have, want, rel_tol=1e-9, abs_tol=1e-12)


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ",".join(_fmt_value(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)
