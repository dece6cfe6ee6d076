"""The training recipes behind the paper's tables (Cui et al., CVPR 2019, Sec. 5; the authors' scripts).

The configs (configs/optim/cifar.yaml, large_scale.yaml) hold these values (tests/test_scripts_runs.py checks that
a run of the shipped configs has no recipe difference); the CIFAR lr factors depend on the imbalance factor
(cbl.config.cifar_lr_factors), and the tables use `recipe` to decide which runs may fill a paper cell
(cbl.reporting.runs.Run.recipe_differences).
"""

from __future__ import annotations

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
