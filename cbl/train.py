"""Training entrypoint: `python -m cbl.train [group=option ...] [key=value ...]` (installed: `cbl-train`, with
Hydra's --help and tab completion, docs/install.md; --version), also under `torchrun`.

Composes dataset x model x loss x optim from configs/ (Hydra), trains with the class-balanced loss of
Cui et al. (CVPR 2019), evaluates top-1 / top-5 error on the balanced test set, and writes its run directory:

    config.yaml        the resolved config and the data source (cbl/data/provenance.py)
    metrics.jsonl      one line per epoch: epoch, lr, train_loss, top1_err, top5_err, ece, nll, seconds
    metrics.json       at the end: last-epoch and best errors, ECE and NLL, per-class and many/medium/few-shot accuracy,
                       samples_per_class, seed, data source, git commit, wall time (status "failed" + error when the
                       run fails after it started; a run refused before it started leaves no folder, and its
                       one-line reason is on stderr: cbl/training/refusal.py, cbl/training/failures.py)
    (multi-label datasets, docs/multilabel.md: metrics.jsonl and metrics.json hold mAP, per-class AP and the head /
    medium / tail mAP instead of the errors, and no predictions file is written; cbl/training/multilabel.py)
    predictions_last.npz  the last epoch's test logits and labels (cbl/training/predictions.py; predictions_best.npz too with
                       keep_best=true; none with save_predictions=false)
    checkpoints/       epoch_NNNN.pt, the newest two (and the best epoch's with keep_best=true); `resume=true`
                       continues from the newest valid one; `cbl-evaluate <run dir>` re-evaluates one (cbl/evaluate.py)
    wandb/             the wandb run (offline by default)

Examples:
    python -m cbl.train dataset=cifar100_lt dataset.imbalance_factor=50 loss=focal loss.beta=0.99 loss.gamma=0.5
    python -m cbl.train -m loss=focal loss.beta=0.9,0.99,0.999,0.9999 loss.gamma=0.5,1.0,2.0
    python -m cbl.train sweep=table2_focal                # a whole column block of Table 2
    torchrun --nproc_per_node=8 -m cbl.train experiment=table3 dataset=inat2018

Under torchrun (or a multi-task submitit job, cbl/training/distributed.py) optim.batch_size stays the GLOBAL batch,
each process trains on its 1/N share and evaluates its share of the test set (counts are summed), and rank 0
alone writes the files above; the result equals the single-process run up to float rounding (and per-process
BatchNorm statistics unless distributed.sync_bn=true).  docs/scaling_out.md has the recipes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from cbl.training import config as cbl_config
from cbl.training import overrides
from cbl.training.failures import exit_status, last_sweep_status, report_job, stop_status
from cbl.training.refusal import discard_unstarted, job_logs
from cbl.training.run import USER_ERRORS, train


# ----------------------------------------------------------------------------- Hydra entry
# an absolute path: the same configs whether this file runs as __main__ or is imported as cbl.train (below)
@hydra.main(version_base="1.3", config_path=str(cbl_config.CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> dict[str, Any] | None:
    """The task Hydra runs for each job: one run (cbl.training.run.train) into the folder Hydra named."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    logs = job_logs()  # before the run logs anything: which log files this job opened
    try:
        return train(cfg, run_dir)
    except BaseException as e:
        # refused before it started: take away the folder Hydra made for it (a started run's folder stays)
        discard_unstarted(run_dir, logs, wrote_hydra_subdir=hydra_cfg.output_subdir is not None)
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        stopped = stop_status(e)
        if stopped is not None and hydra_cfg.mode != RunMode.MULTIRUN:  # a single run stopped from outside
            ctrl_c = ("interrupted (Ctrl-C); resume=true goes on from its newest checkpoint (from the start if none was "
                      "written)")
            print(f"stopped: {e or ctrl_c}", file=sys.stderr)
            sys.exit(stopped)
        if not isinstance(e, Exception):
            raise
        if hydra_cfg.mode == RunMode.MULTIRUN:
            report_job(int(hydra_cfg.job.num), run_dir.name, e)
            raise  # the sweeper counts the failed job and goes on with the others (hydra_plugins/cbl_sweeper)
        if not isinstance(e, USER_ERRORS):
            raise  # a bug: Hydra prints its traceback
        print(f"error: {e}", file=sys.stderr)
        sys.exit(exit_status(e))


# ----------------------------------------------------------------------------- command line
def cli() -> None:
    """`cbl-train` and `python -m cbl.train`: Hydra's command line (`main`), and what Hydra leaves to the app:
    `--version`, one line for flags that cannot go together or an override that does not compose
    (cbl.training.overrides.override_problem), and a sweep's exit status (cbl/training/failures.py)."""
    from cbl.cli import resolved_hydra_node_request, train_flag_problem, version

    argv = sys.argv[1:]
    multirun = [a for a in argv if a in ("-m", "--multirun")]
    if multirun and argv[: len(multirun)] != multirun:  # Hydra's parser wants its flags before the overrides
        argv = multirun + [a for a in argv if a not in multirun]
        sys.argv[1:] = argv
    if "--version" in argv:
        print(version())
        return
    problem = train_flag_problem(argv) or overrides.override_problem(argv)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    hydra_node = resolved_hydra_node_request(argv)
    if hydra_node is not None:
        from hydra.errors import HydraException

        try:
            print(overrides.resolved_hydra_config(hydra_node), end="")
            return
        except HydraException:
            pass  # an override that does not compose: Hydra's main() below says so, as for any command
    try:
        main()
    except BaseException as e:  # a sweep stopped from outside: its job recorded the run as interrupted
        stopped = stop_status(e)
        if stopped is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"stopped: {e or 'interrupted (Ctrl-C)'}; the sweep's other jobs did not run (resume=true runs them)",
              file=sys.stderr)
        sys.exit(stopped)
    sys.exit(last_sweep_status() or 0)


if __name__ == "__main__":
    # `python -m cbl.train` runs this file as __main__; call the entry point of the importable cbl.train instead,
    # so that launchers which pickle the task function into other processes (hydra/launcher=joblib,
    # submitit_local, slurm) pickle a reference to cbl.train.main rather than this module's globals by value
    from cbl.train import cli as _importable_cli

    _importable_cli()
