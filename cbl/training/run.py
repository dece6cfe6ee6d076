"""One training run, from a resolved config to a finished run folder: what `python -m cbl.train` (cbl/train.py)
does for each configuration, and what the model bank (cbl/training/bank.py), `cbl-evaluate` and the benchmark reuse.

    build            seed, then data (cbl.data), model (cbl.models), criterion (cbl.losses.criterion: the class-balanced
                     loss, w_i = (1 - beta) / (1 - beta**n_i) normalised to sum to C), SGD and the lr schedule
    resume           the newest valid checkpoint, checked against the run's identity (config, data source)
    _train           the epochs (cbl.training.engine), evaluation every `eval_every` epochs, checkpoints, wandb
    final_metrics    metrics.json: last-epoch and best top-1 / top-5 error, per-class and many / medium / few accuracy,
                     ECE and NLL (cbl.evaluation.calibration); the last (and with keep_best the best) epoch's test predictions
                     are saved beside it (cbl.training.predictions)
    train            all of it, with every failure after the run started recorded in metrics.json (status "failed" /
                     "interrupted"); a run refused before it started writes nothing (cbl.training.refusal)

The files a run writes are listed in cbl/train.py's docstring.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from torch import nn

from cbl.training import config as cbl_config
from cbl.evaluation.calibration import probability_of
from cbl.data import DataBundle, build_data
from cbl.evaluation.multilabel import GROUPS
from cbl.losses.criterion import build_criterion, head_type
from cbl.evaluation.metrics import shot_accuracy
from cbl.models import build_model, use_sync_batchnorm
from cbl.training.predictions import BEST, LAST, PredictionCollector, save_predictions
from cbl.training import multilabel
from cbl.training.active_time import active_now
from cbl.training.checkpoint import (CorruptCheckpointError, best_epoch, list_checkpoints, load_checkpoint,
                                     load_latest_checkpoint, save_checkpoint)
from cbl.training.distributed import DistEnv, barrier, broadcast_object, setup_distributed
from cbl.training.engine import DivergenceError, evaluate, train_one_epoch
from cbl.training.faults import maybe_kill
from cbl.training.optim import build_optimizer, build_scheduler, resolve_decay_fc_bias, scaled_lr
from cbl.training.perf import compile_options, machine, slow_bf16_warning, tune_host_allocator
from cbl.training.reproducibility import rng_state, seed_everything, set_rng_state
from cbl.training.run_files import (git_commit, is_finished, run_fields, write_config, write_failure, write_history,
                                    write_json)
from cbl.training.tracking import Classes, Tracker, epoch_row, run_tags, wandb_group

log = logging.getLogger("cbl.train")  # named after the command a user runs: its log lines read [cbl.train]

#: errors a user can fix (bad config, missing data, divergence): one line, no traceback, in a single run
USER_ERRORS = (ValueError, FileNotFoundError, DivergenceError, CorruptCheckpointError)


class Preempted(BaseException):
    """SIGTERM (a cluster scheduler's preemption notice): stop cleanly; `resume=true` continues.

    A BaseException, like KeyboardInterrupt: a stop is not an error of the code it interrupts, so no `except
    Exception` around reading a data file or a checkpoint may take it for a bad file (and fall back to an older
    checkpoint, or report the data as unreadable), and a sweep ends at it instead of going on with its next job.
    """


def on_sigterm(signum, frame):
    raise Preempted("stopped by SIGTERM; resume=true goes on from its newest checkpoint (from the start if none was "
                    "written)")


@dataclass
class Progress:
    """What a failed run's metrics.json reports: filled in as the run gets going."""

    history: list[dict[str, Any]] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    is_main: bool = True
    started: bool = False  # the run has written its first file: from then on a failure is recorded in its folder


@dataclass
class Setup:
    """Everything a run trains with, built from the config."""

    data: DataBundle
    model: nn.Module
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    amp_dtype: torch.dtype | None


# ----------------------------------------------------------------------------- the run
def train(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train one configuration into `run_dir` and return its final metrics (metrics.json).

    A failure once the run has started (divergence, SIGTERM, a crash mid-epoch) is recorded in metrics.json with
    status "failed" or "interrupted" and a one-line reason, so a sweep's summary can list it; a finished run's
    metrics.json is never overwritten.  A run refused before it started (a bad config value, a folder that holds a
    run, missing data) raises without writing anything: the folder is created only when the run starts.
    """
    progress = Progress()
    git_commit()  # the code this process runs (cached; metrics.json reports it at the end)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if in_main_thread else None
    try:
        cbl_config.check(cfg)
        warn_about_schedule(cfg)
        env = setup_distributed(cfg.device, cfg.distributed.backend, job_num=multirun_job_num())
        progress.is_main = env.is_main
        check_distributed(cfg, env)
        return _train(cfg, run_dir, env, progress)
    except BaseException as e:
        if progress.is_main:
            record_failure(cfg, run_dir, e, progress)
        raise
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
        # the process group (if any) stays for the next job of a multirun; it is left at exit (cbl.training.distributed)


def warn_about_schedule(cfg: DictConfig) -> None:
    """One log line for a schedule that is allowed but likely not meant: fewer epochs than warm-up epochs (the
    README's smoke run: optim.epochs=2 of the CIFAR recipe's 5-epoch warm-up)."""
    epochs, warmup = int(cfg.optim.epochs), cfg.optim.warmup_epochs
    if epochs < warmup:
        log.warning("optim.epochs=%d is shorter than optim.warmup_epochs=%s: the lr never leaves its linear warm-up "
                    "and reaches only %d/%s of its peak", epochs, warmup, epochs, warmup)


def multirun_job_num() -> int | None:
    """Hydra's job number inside a multirun (device=auto spreads a sweep's jobs over the GPUs), else None."""
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    return int(hydra_cfg.job.num) if hydra_cfg.mode == RunMode.MULTIRUN else None


def check_distributed(cfg: DictConfig, env: DistEnv) -> None:
    """What only the launch can tell (the number of processes, the device), checked before any work starts."""
    if int(cfg.optim.batch_size) % env.world_size:
        raise cbl_config.ConfigError(
            f"optim.batch_size={cfg.optim.batch_size} is not allowed: it is the global batch and must be divisible by "
            f"the number of processes ({env.world_size}), each of which gets batch_size / {env.world_size}"
        )
    if cfg.distributed.sync_bn and env.distributed and env.device.type != "cuda":
        raise cbl_config.ConfigError(
            f"distributed.sync_bn=true is not allowed on device {env.device.type}: torch's SyncBatchNorm runs on CUDA "
            f"only; use GPUs or distributed.sync_bn=false (per-process BatchNorm)"
        )


def record_failure(cfg: DictConfig, run_dir: Path, error: BaseException, progress: Progress) -> None:
    """metrics.json of a run that stopped after it started; nothing for one refused before (cbl.training.refusal)."""
    if not progress.started:
        return
    try:
        epochs, seed = int(cfg.optim.epochs), int(cfg.seed)
    except Exception:  # the config itself may be what failed
        epochs = seed = None
    write_failure(
        run_dir, status="interrupted" if isinstance(error, (KeyboardInterrupt, Preempted)) else "failed",
        error=error, epochs=epochs, seed=seed, fields=progress.fields,
        epochs_completed=progress.history[-1]["epoch"] if progress.history else 0,
    )


def refuse_to_overwrite(cfg: DictConfig, run_dir: Path) -> dict[str, Any] | None:
    """A finished run's metrics when resume=true; an error when the folder holds a run and resume=false."""
    finished = is_finished(run_dir)
    if finished and cfg.resume:
        log.info("%s already finished (%s); nothing to do", run_dir, multilabel.headline(finished))
        return finished
    if finished:
        raise cbl_config.ConfigError(
            f"{run_dir} already holds a finished run; pass resume=true to keep it, or delete the folder to train again"
        )
    existing = list_checkpoints(run_dir)
    if existing and not cfg.resume:
        raise cbl_config.ConfigError(
            f"{run_dir} already holds a run stopped after epoch {existing[0][0]}; pass resume=true to continue it, "
            f"or delete the folder to start over"
        )
    return None


#: torch.autocast dtype of each `precision` (None: plain float32)
AMP_DTYPES = {"fp32": None, "bf16": torch.bfloat16}
_warned: set[str] = set()  # warnings given once per process (a sweep, a bank and the bench build many setups)


def warn_once(message: str | None) -> None:
    if message and message not in _warned:
        _warned.add(message)
        log.warning(message)


def build(cfg: DictConfig, env: DistEnv) -> Setup:
    """Data, model, criterion, optimizer and lr schedule of a config, on the run's device."""
    seed_everything(int(cfg.seed), bool(cfg.deterministic))
    return build_on(cfg, env, build_run_data(cfg, env))


def build_run_data(cfg: DictConfig, env: DistEnv) -> DataBundle:
    """The training and test loaders of a config (their randomness is a function of (seed, epoch) alone)."""
    if env.device.type == "cpu":
        tune_host_allocator()  # fewer page faults per step; same arithmetic (cbl/training/perf.py)
    # the top-level channels_last switch covers the batches as well as the model
    data_cfg = {**OmegaConf.to_container(cfg.dataset, resolve=True), "channels_last": bool(cfg.channels_last)}
    return build_data(
        data_cfg, seed=int(cfg.seed), device=env.device, batch_size=int(cfg.optim.batch_size),
        eval_batch_size=int(cfg.eval_batch_size), rank=env.rank, world_size=env.world_size, sampler=cfg.sampler.name,
    )


def build_on(cfg: DictConfig, env: DistEnv, data: DataBundle) -> Setup:
    """Model (initialised from the global RNG: seed it first), criterion, optimizer and lr schedule for `data`."""
    device = env.device
    warn_once(slow_bf16_warning(device, AMP_DTYPES[cfg.precision]))
    head = head_type(cfg.loss.name)
    model_options = {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k != "name"}
    model = build_model(cfg.model.name, data.num_classes, loss_type=head, in_channels=data.in_channels, **model_options)
    if env.distributed and cfg.distributed.sync_bn:
        model = use_sync_batchnorm(model)
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    o = cfg.optim
    optimizer = build_optimizer(
        model, name=o.name, lr=scaled_lr(o.lr, o.batch_size, o.reference_batch), momentum=o.momentum,
        weight_decay=o.weight_decay, nesterov=o.nesterov, decay_bn=o.decay_bn,
        decay_fc_bias=resolve_decay_fc_bias(o.decay_fc_bias, head),
    )
    return Setup(data=data, model=model, criterion=build_criterion(cfg.loss, data.samples_per_class).to(device),
                 optimizer=optimizer, scheduler=build_schedule(cfg, optimizer, data),
                 amp_dtype=AMP_DTYPES[cfg.precision])


def build_schedule(cfg: DictConfig, optimizer: torch.optim.Optimizer, data: DataBundle) -> torch.optim.lr_scheduler.LRScheduler:
    o = cfg.optim
    return build_scheduler(
        optimizer, steps_per_epoch=len(data.train), warmup_epochs=o.warmup_epochs, milestones=list(o.milestones),
        factors=list(o.factors),
    )


def resume(cfg: DictConfig, run_dir: Path, env: DistEnv, setup: Setup, comparable: dict,
           history: list[dict[str, Any]]) -> tuple[int, float, str | None]:
    """Load the newest valid checkpoint into `setup` and `history`: (first epoch to train, wall time so far,
    wandb run id).  Rank 0 picks the checkpoint and every rank loads that very file."""
    newest = load_latest_checkpoint(run_dir, map_location=env.device) if env.is_main else None
    path = broadcast_object(newest["path"] if newest is not None else None)
    if path is None:
        log.info("resume=true but %s has no valid checkpoint; starting from epoch 1", run_dir)
        return 1, 0.0, None
    state = newest if env.is_main else {**load_checkpoint(path, map_location=env.device), "path": path}
    saved = cbl_config.with_added_keys(state["config"])
    if "data_source" not in saved:
        log.warning("the checkpoint %s predates data-source records: assuming it was trained on the data read now "
                    "(%s)", state["path"], comparable.get("data_source"))
        saved["data_source"] = comparable.get("data_source")
    differs = cbl_config.first_difference(saved, comparable)
    if differs:
        raise cbl_config.ConfigError(
            f"cannot resume {run_dir}: its checkpoint was trained with {differs[0]}={differs[1]!r}, "
            f"this run asks for {differs[2]!r}"
        )
    setup.model.load_state_dict(state["model"])
    setup.optimizer.load_state_dict(state["optimizer"])
    setup.scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    history[:] = state["history"]
    log.info("resuming %s from %s (epoch %d)", run_dir, state["path"], state["epoch"])
    if state.get("world_size", env.world_size) != env.world_size:
        log.warning("the checkpoint was written by %d process(es), this run has %d: the same optimisation "
                    "(global batch), except that BatchNorm statistics are per process", state["world_size"],
                    env.world_size)
    return state["epoch"] + 1, state["wall_time_s"], state.get("wandb_id")


def save_run_checkpoint(cfg: DictConfig, run_dir: Path, epoch: int, *, model: nn.Module,
                        optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
                        history: list[dict[str, Any]], comparable: dict, wall_time_s: float, wandb_id: str | None,
                        world_size: int) -> None:
    """The epoch's checkpoint, in the one format `resume` reads (a bank member's too, cbl/training/bank.py); with keep_best
    the best epoch's checkpoint survives the pruning to the newest keep_checkpoints."""
    save_checkpoint(
        {
            "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "rng": rng_state(), "history": history, "config": comparable,
            "wall_time_s": wall_time_s, "wandb_id": wandb_id, "world_size": world_size,
        },
        run_dir, epoch, keep=int(cfg.keep_checkpoints),
        keep_epoch=best_epoch(history) if cfg.get("keep_best", False) else None,
    )


def resume_identity(cfg: DictConfig, data: DataBundle, fields: dict[str, Any]) -> tuple[dict, dict]:
    """Adds what the data is to the run's `fields`; returns the plain resolved config and the comparable one: what a
    checkpoint must match to be resumed (the config without runtime keys, and the data source)."""
    fields.update(num_classes=data.num_classes, data_source=data.source.id if data.source else None)
    plain = OmegaConf.to_container(cfg, resolve=True)
    return plain, {**cbl_config.comparable(plain), "data_source": fields["data_source"]}


def open_tracker(cfg: DictConfig, run_dir: Path, fields: dict[str, Any], plain_cfg: dict, wandb_id: str | None,
                 history: list[dict[str, Any]], data: DataBundle) -> Tracker:
    """The run's wandb run (cbl/training/tracking.py): seeds of one configuration share a group, the grouping fields are
    top-level config keys, and a resumed run (`wandb_id` and `history` from its checkpoint) replays its history."""
    group = wandb_group(fields)
    return Tracker(
        mode=cfg.wandb.mode, project=cfg.wandb.project, entity=cfg.wandb.entity, run_dir=run_dir,
        name=run_dir.name, group=group, job_type=fields["method"], tags=run_tags(fields, cfg.wandb.tags),
        config={**fields, "group": group, "sweep": cfg.get("name"), "subset_seed": cfg.dataset.get("subset_seed"),
                "cfg": plain_cfg},
        run_id=wandb_id, init_timeout=cfg.wandb.init_timeout, history=history,
        classes=Classes(list(data.class_names), list(data.samples_per_class)),
    )


def final_metrics(cfg: DictConfig, env: DistEnv, data: DataBundle, history: list[dict[str, Any]],
                  last_eval: dict[str, Any], fields: dict[str, Any], wall_time: float) -> dict[str, Any]:
    """metrics.json of a finished run: the last epoch's errors (what the paper reports) and the best; for a multi-label
    run its mAP instead (cbl.training.multilabel)."""
    return {
        "status": "finished",
        "error": None,
        **(multilabel.final_results(history, last_eval) if data.multilabel else
           single_label_results(cfg, data, history, last_eval)),
        "epochs": int(cfg.optim.epochs),
        "epochs_completed": history[-1]["epoch"] if history else 0,
        "samples_per_class": list(data.samples_per_class),
        "seed": int(cfg.seed),
        "subset_seed": cfg.dataset.get("subset_seed"),
        "data_source": data.source.record() if data.source else None,
        "git_commit": git_commit(),
        "wall_time_s": wall_time,
        "machine": machine(env.device),  # what wall_time_s was measured on
        "finished_at": time.time(),  # seconds since the epoch: of duplicate runs, tables count the newest
        "world_size": env.world_size,
        "run": fields,
    }


def single_label_results(cfg: DictConfig, data: DataBundle, history: list[dict[str, Any]],
                         last_eval: dict[str, Any]) -> dict[str, Any]:
    """The errors, calibration and per-class accuracy of a finished single-label run's metrics.json."""
    best = next(r for r in history if r["epoch"] == best_epoch(history))
    return {
        "top1_err": last_eval["top1_err"],
        "top5_err": last_eval["top5_err"],
        "best_top1_err": best["top1_err"],
        "best_epoch": best["epoch"],
        "ece": last_eval["ece"],
        "nll": last_eval["nll"],
        "probability": probability_of(cfg.loss.name),  # the class probabilities ece and nll score (cbl.evaluation.calibration)
        "per_class_acc": last_eval["per_class_acc"],
        "shot_acc": shot_accuracy(last_eval["per_class_acc"], data.samples_per_class),
    }


def _train(cfg: DictConfig, run_dir: Path, env: DistEnv, progress: Progress) -> dict[str, Any]:
    fields, history = progress.fields, progress.history
    fields.update(run_fields(cfg, num_classes=None))
    finished = refuse_to_overwrite(cfg, run_dir)
    if finished:
        return finished

    setup = build(cfg, env)
    data, model, device = setup.data, setup.model, env.device
    plain_cfg, comparable = resume_identity(cfg, data, fields)
    start_epoch, wall_time, wandb_id = resume(cfg, run_dir, env, setup, comparable, history) if cfg.resume else (1, 0.0, None)

    tracker = Tracker(mode="disabled", project="", run_dir=run_dir, name="")
    progress.started = True
    if env.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_config(run_dir, cfg, data.source.record() if data.source else None)
        write_history(run_dir, history)
        tracker = open_tracker(cfg, run_dir, fields, plain_cfg, wandb_id, history, data)

    train_model = model
    if env.distributed:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile:
        train_model = torch.compile(train_model, **compile_options(cfg.compile))

    epochs = int(cfg.optim.epochs)
    keep_best = bool(cfg.get("keep_best", False))
    last_eval: dict[str, Any] | None = None
    session_start = active_now()  # wall_time_s leaves out the time the process was stopped (kill -STOP)
    log.info(
        "%s | %s | %s (beta=%g, gamma=%g) | %d train / %d classes | %d steps/epoch | device %s x%d",
        fields["dataset"], fields["model"], fields["loss"], fields["beta"], fields["gamma"],
        sum(data.samples_per_class), data.num_classes, len(data.train), device, env.world_size,
    )
    try:
        for epoch in range(start_epoch, epochs + 1):
            data.train.set_epoch(epoch)
            setup.criterion.set_epoch(epoch)  # deferred re-weighting: the weights are a function of the epoch
            stats = train_one_epoch(
                train_model, data.train, setup.criterion, setup.optimizer, setup.scheduler, epoch=epoch,
                device=device, amp_dtype=setup.amp_dtype, check_every=int(cfg.loss_check_every),
                progress=cfg.progress and env.is_main,
            )
            record: dict[str, Any] = {
                "epoch": epoch, "lr": stats["lr"], "train_loss": stats["train_loss"], "top1_err": None,
                "top5_err": None, "ece": None, "nll": None, "seconds": stats["seconds"],
            }
            evaluated = epoch % int(cfg.eval_every) == 0 or epoch == epochs
            if evaluated:
                last_eval = run_evaluation(cfg, env, setup, train_model, keep=epoch == epochs or keep_best)
                record.update(top1_err=last_eval["top1_err"], top5_err=last_eval["top5_err"], ece=last_eval["ece"],
                              nll=last_eval["nll"])
                if data.multilabel:
                    record.update(multilabel.epoch_record(last_eval))
            history.append(record)
            if evaluated and env.is_main:  # before the checkpoint: a resumed run redoes the epoch
                write_predictions(cfg, run_dir, epoch, last_eval, history)
            log.info(
                "epoch %d/%d | lr %.4g | loss %.4f | top-1 err %s | top-5 err %s | %.1f s",
                epoch, epochs, record["lr"], record["train_loss"], _pct(record["top1_err"]), _pct(record["top5_err"]),
                record["seconds"],
            )
            if evaluated and data.multilabel:
                log.info("epoch %d/%d | %s | head / medium / tail mAP %s / %s / %s", epoch, epochs,
                         multilabel.headline({"task": "multilabel", **record}), *(_pct(record[f"map_{g}"]) for g in GROUPS))
            if env.is_main:
                row = epoch_row(record, last_eval if evaluated else None)
                tracker.keep(row)  # before the checkpoint: a resumed run replays every epoch it holds in full
                save_run_checkpoint(
                    cfg, run_dir, epoch, model=model, optimizer=setup.optimizer, scheduler=setup.scheduler,
                    history=history, comparable=comparable, wall_time_s=wall_time + active_now() - session_start,
                    wandb_id=tracker.run_id, world_size=env.world_size,
                )
                maybe_kill("checkpoint")
                write_history(run_dir, history)
                tracker.log_epoch(row)  # after the checkpoint: wandb never holds an epoch it lacks
                maybe_kill("epoch")
            barrier()

        if last_eval is None:  # resumed after the final epoch's checkpoint but before metrics.json
            last_eval = run_evaluation(cfg, env, setup, train_model, keep=True)
            if env.is_main:
                write_predictions(cfg, run_dir, epochs, last_eval, [])
        final = final_metrics(cfg, env, data, history, last_eval, fields, wall_time + active_now() - session_start)
        if env.is_main:
            write_json(run_dir / "metrics.json", final)
            tracker.log_final(final)
            tracker.finish(0)
        if data.multilabel:
            log.info("done: %s (best %.2f%% at epoch %d) -> %s", multilabel.headline(final), final["best_map"],
                     final["best_epoch"], run_dir)
        else:
            log.info("done: top-1 error %.2f%% (best %.2f%% at epoch %d), top-5 error %.2f%% -> %s",
                     final["top1_err"], final["best_top1_err"], final["best_epoch"], final["top5_err"], run_dir)
        return final
    except BaseException:
        tracker.finish(1)  # the run is marked failed in wandb too; train() writes metrics.json
        raise


def logit_scale(cfg: DictConfig) -> float:
    """What the loss multiplies the logits by before its softmax: LDAM's s (its head outputs cosines), else 1."""
    return float(cfg.loss.s) if cfg.loss.name == "ldam" else 1.0


def run_evaluation(cfg: DictConfig, env: DistEnv, setup: Setup, model: nn.Module, keep: bool) -> dict[str, Any]:
    """The test set's errors, per-class accuracy and calibration; with `keep` (and save_predictions) also its logits
    and labels in test-set order, under "predictions" on rank 0 (cbl.training.predictions)."""
    if setup.data.multilabel:  # mAP, per-class and group AP; no predictions file (cbl.training.multilabel)
        return multilabel.evaluate_multilabel(model, setup.data.test, setup.data.samples_per_class, device=env.device,
                                              amp_dtype=setup.amp_dtype)
    collector = PredictionCollector() if keep and cfg.get("save_predictions", True) else None
    result = evaluate(model, setup.data.test, setup.data.num_classes, device=env.device, amp_dtype=setup.amp_dtype,
                      on_batch=collector, probability=probability_of(cfg.loss.name), logit_scale=logit_scale(cfg))
    if collector is not None:
        result["predictions"] = collector.gather(int(cfg.eval_batch_size), env.rank, env.world_size)
    return result


def write_predictions(cfg: DictConfig, run_dir: Path, epoch: int, evaluation: dict[str, Any],
                      history: list[dict[str, Any]]) -> None:
    """predictions_last.npz after the last epoch; predictions_best.npz (keep_best) whenever the epoch is the best."""
    kept = evaluation.get("predictions")
    if kept is None:
        return
    meta = {"epoch": epoch, "probability": probability_of(cfg.loss.name), "logit_scale": logit_scale(cfg)}
    if epoch == int(cfg.optim.epochs):
        save_predictions(run_dir / LAST, *kept, **meta)
    if cfg.get("keep_best", False) and history and best_epoch(history) == epoch:
        save_predictions(run_dir / BEST, *kept, **meta)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}%"
