"""Train K configurations of one Table 2 cell together on one device, each equal to its separate run.

The runs of a Table 2 cell differ only in the loss (softmax / sigmoid / focal, beta, gamma): same data, seed,
network and schedule, hence the very same batches in the same order.  `train_bank` builds each member exactly as
`cbl.train` would (seeded init, its own criterion and optimizer), puts the K networks side by side in one
`CifarResNetBank` (cbl/models/bank.py), and minimises

    L(theta_1, ..., theta_K) = sum_k L_k(theta_k)        so that   dL / d theta_k = dL_k / d theta_k,

with one SGD over all the members' parameters: SGD with momentum and weight decay acts on each element on its
own, so member k follows the trajectory of its separate run, up to float rounding (grouped kernels add in a
different order).  Each member writes its own run folder, in the format of a separate run: config.yaml,
metrics.jsonl, metrics.json, checkpoints (its network and optimizer state in `CifarResNet`'s layout, so a member
can be resumed alone with `python -m cbl.train ... resume=true`), wandb.  A member whose loss turns non-finite
fails alone (recorded as a separate run would be) and the others go on.

Entry points: `hydra/launcher=bank` (hydra_plugins/cbl_bank_launcher) groups a sweep's jobs into banks;
`train_bank(cfgs, run_dirs)` is the library call.  One process, one device (no torchrun), model resnet32.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from cbl.training import config as cbl_config
from cbl.evaluation.calibration import CalibrationAccumulator, probability_of
from cbl.evaluation.metrics import EvalAccumulator
from cbl.training.predictions import PredictionCollector
from cbl.models.bank import BankError, CifarResNetBank
from cbl.training.checkpoint import CorruptCheckpointError
from cbl.training.active_time import active_now
from cbl.training.distributed import setup_distributed
from cbl.training.engine import DivergenceError, autocast
from cbl.training.faults import maybe_kill
from cbl.training.perf import compile_options
from cbl.training.reproducibility import seed_everything
from cbl.data.multilabel import MULTILABEL_DATASETS
from cbl.training.multilabel import refuse_multilabel
from cbl.training.run import (Progress, Setup, on_sigterm, build_on, build_run_data, build_schedule, final_metrics,
                              logit_scale, open_tracker, record_failure, refuse_to_overwrite, resume, resume_identity,
                              save_run_checkpoint, warn_about_schedule, write_predictions)
from cbl.training.run_files import git_commit, run_fields, write_config, write_history, write_json
from cbl.training.tracking import Tracker, epoch_row

log = logging.getLogger("cbl.training.bank")

#: the config subtree in which the members of a bank may differ
MEMBER_KEYS = ("loss",)
BANK_MODELS = ("resnet32",)


def shared_config(cfg: DictConfig) -> dict[str, Any]:
    """What the members of one bank must have in common: the comparable config (runtime switches left out,
    cbl.training.run_identity.comparable) without MEMBER_KEYS, plus the device they share."""
    plain = cbl_config.comparable(OmegaConf.to_container(cfg, resolve=True))
    for k in MEMBER_KEYS:
        plain.pop(k, None)
    plain["device"] = cfg.device
    return plain


def bank_key(cfg: DictConfig) -> str | None:
    """Configs with equal keys can share a bank (`shared_config` equal); None for a model that cannot be banked."""
    if cfg.model.name not in BANK_MODELS:
        return None
    return repr(sorted(shared_config(cfg).items()))


@dataclass
class Member:
    """One configuration of the bank and its run folder."""

    cfg: DictConfig
    run_dir: Path
    progress: Progress = field(default_factory=Progress)
    setup: Setup | None = None
    comparable: dict = field(default_factory=dict)
    start_epoch: int = 1
    wall_time: float = 0.0
    wandb_id: str | None = None
    tracker: Tracker | None = None
    result: dict[str, Any] | BaseException | None = None

    @property
    def name(self) -> str:
        return self.run_dir.name

    def fail(self, error: BaseException) -> None:
        self.result = error
        record_failure(self.cfg, self.run_dir, error, self.progress)
        if self.tracker is not None:
            self.tracker.finish(1)
        log.error("%s failed: %s", self.name, error)


def train_bank(cfgs: list[DictConfig], run_dirs: list[Path]) -> list[dict[str, Any] | BaseException]:
    """Train every config into its run folder, together; per member its final metrics or the error it failed with.

    A config error or a finished run concerns its member alone; members that cannot share a bank (another
    model or data) are an error of the whole call (`BankError`).  Members resumed at different epochs train
    as successive banks.  SIGTERM and Ctrl-C stop every member ("interrupted") and propagate.
    """
    if len(cfgs) != len(run_dirs) or not cfgs:
        raise BankError(f"train_bank needs one run folder per config; got {len(cfgs)} configs, {len(run_dirs)} folders")
    git_commit()  # the code this process runs (cached; metrics.json reports it at the end)
    members = [Member(cfg, Path(d)) for cfg, d in zip(cfgs, run_dirs)]
    for m in members:
        try:
            cbl_config.check(m.cfg)
            refuse_multilabel("the model bank (hydra/launcher=bank)", m.cfg.dataset.name,
                              m.cfg.dataset.name in MULTILABEL_DATASETS)
            if m is members[0]:  # the members of a bank share their schedule: one warning
                warn_about_schedule(m.cfg)
            m.progress.fields.update(run_fields(m.cfg, num_classes=None))
            m.result = refuse_to_overwrite(m.cfg, m.run_dir)  # a finished run's metrics, or None: train it
        except (ValueError, FileNotFoundError) as e:
            m.fail(e)
    active = [m for m in members if m.result is None]
    if active:
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, on_sigterm) if in_main_thread else None
        try:
            keys = {bank_key(m.cfg) for m in active}
            if None in keys or len(keys) > 1:
                _raise_unbankable([m.cfg for m in active])
            _train_members(active)
        except BaseException as e:
            for m in active:
                if m.result is None:
                    m.fail(e)
            raise
        finally:
            if in_main_thread:
                signal.signal(signal.SIGTERM, previous)
    return [m.result for m in members]


def _raise_unbankable(cfgs: list[DictConfig]) -> None:
    bad = next((c for c in cfgs if bank_key(c) is None), None)
    if bad is not None:
        raise BankError(f"model {bad.model.name} cannot be trained in a bank; allowed: {', '.join(BANK_MODELS)}")
    first = shared_config(cfgs[0])
    for cfg in cfgs[1:]:
        diff = cbl_config.first_difference(first, shared_config(cfg))
        if diff:
            raise BankError(
                f"configs in one bank may differ only in {', '.join(MEMBER_KEYS)}; {diff[0]} is {diff[1]!r} in one "
                f"and {diff[2]!r} in another"
            )


def _train_members(members: list[Member]) -> None:
    first = members[0].cfg
    env = setup_distributed(first.device, first.distributed.backend)
    if env.distributed:
        raise BankError("a model bank trains in one process on one device; run torchrun jobs without hydra/launcher=bank")
    seed_everything(int(first.seed), bool(first.deterministic))
    data = build_run_data(first, env)
    for m in members:
        seed_everything(int(m.cfg.seed), bool(m.cfg.deterministic))  # each network starts as in its separate run
        m.setup = build_on(m.cfg, env, data)
        plain, m.comparable = resume_identity(m.cfg, data, m.progress.fields)
        if m.cfg.resume:
            try:
                m.start_epoch, m.wall_time, m.wandb_id = resume(m.cfg, m.run_dir, env, m.setup, m.comparable,
                                                                m.progress.history)  # fmt: skip
            except (ValueError, CorruptCheckpointError) as e:  # its checkpoint was trained with another config, ...
                m.fail(e)
                continue
        m.progress.started = True  # as a separate run: a member refused before this point leaves no folder
        m.run_dir.mkdir(parents=True, exist_ok=True)
        write_config(m.run_dir, m.cfg, data.source.record() if data.source else None)
        write_history(m.run_dir, m.progress.history)
        m.tracker = open_tracker(m.cfg, m.run_dir, m.progress.fields, plain, m.wandb_id, m.progress.history, data)
    members = [m for m in members if m.result is None]
    # members resumed from different epochs (one of them failed earlier, say) train as successive banks
    for start in sorted({m.start_epoch for m in members}):
        _train_bank_from(start, [m for m in members if m.start_epoch == start], env)


# ----------------------------------------------------------------------------- optimizer state in and out
def _param_names(model: nn.Module) -> dict[int, str]:
    return {id(p): n for n, p in model.named_parameters()}


def _bank_parameter(bank: CifarResNetBank, index: int, name: str) -> nn.Parameter:
    return bank.fcs[index].get_parameter(name[3:]) if name.startswith("fc.") else bank.get_parameter(name)


def _member_part(bank: CifarResNetBank, index: int, name: str, tensor: torch.Tensor) -> torch.Tensor:
    """Member `index`'s part (a view) of a tensor shaped like `_bank_parameter(bank, index, name)`: all of a
    head's tensor, one block of a body tensor."""
    return tensor if name.startswith("fc.") else bank.block(tensor, index)


def bank_optimizer(bank: CifarResNetBank, members: list[Setup]) -> torch.optim.Optimizer:
    """One optimizer over the bank with the members' parameter groups: a body parameter sits in the group its
    members put it in (the same for all: same optim config), each head's weight and bias in its member's group
    (a softmax head decays its bias, a sigmoid / focal head does not).  Momentum buffers are copied in."""
    template = members[0].optimizer
    groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": []} for g in template.param_groups]
    for i, s in enumerate(members):
        names = _param_names(s.model)
        for group, member_group in zip(groups, s.optimizer.param_groups):
            for p in member_group["params"]:
                name = names[id(p)]
                if name.startswith("fc.") or i == 0:
                    group["params"].append(_bank_parameter(bank, i, name))
    optimizer = type(template)(groups, **template.defaults)
    _copy_momentum_in(optimizer, bank, members)
    return optimizer


def _copy_momentum_in(optimizer: torch.optim.Optimizer, bank: CifarResNetBank, members: list[Setup]) -> None:
    for i, s in enumerate(members):
        names = _param_names(s.model)
        for p, state in s.optimizer.state.items():
            if "momentum_buffer" not in state or state["momentum_buffer"] is None:
                continue
            name = names[id(p)]
            q = _bank_parameter(bank, i, name)
            buf = optimizer.state[q].setdefault("momentum_buffer", torch.zeros_like(q))
            _member_part(bank, i, name, buf).copy_(state["momentum_buffer"])


def sync_member(bank: CifarResNetBank, optimizer: torch.optim.Optimizer, index: int, member: Setup) -> None:
    """Copy member `index`'s network, momentum buffers and group settings (lr) from the bank into its own
    model and optimizer, so that their state dicts are those of the separate run."""
    member.model.load_state_dict(bank.member_state_dict(index))
    for group, bank_group in zip(member.optimizer.param_groups, optimizer.param_groups):
        group.update({k: v for k, v in bank_group.items() if k != "params"})
    names = _param_names(member.model)
    for group in member.optimizer.param_groups:
        for p in group["params"]:
            name = names[id(p)]
            buf = optimizer.state.get(_bank_parameter(bank, index, name), {}).get("momentum_buffer")
            if buf is not None:
                member.optimizer.state[p]["momentum_buffer"] = _member_part(bank, index, name, buf).detach().clone()


# ----------------------------------------------------------------------------- the loops
def _train_bank_from(start_epoch: int, members: list[Member], env) -> None:
    cfg, device = members[0].cfg, env.device
    setups = [m.setup for m in members]
    data = setups[0].data
    bank = CifarResNetBank([s.model for s in setups]).to(device)
    if cfg.channels_last:
        bank = bank.to(memory_format=torch.channels_last)
    optimizer = bank_optimizer(bank, setups)
    scheduler = build_schedule(cfg, optimizer, data)
    scheduler.load_state_dict(setups[0].scheduler.state_dict())  # the members' schedules are one schedule
    for group, member_group in zip(optimizer.param_groups, setups[0].optimizer.param_groups):
        group["lr"] = member_group["lr"]  # building a scheduler resets lr; the (resumed) member's is the current one
    train_model = torch.compile(bank, **compile_options(cfg.compile)) if cfg.compile else bank
    alive = torch.ones(len(members), dtype=torch.bool, device=device)
    epochs = int(cfg.optim.epochs)
    session_start = active_now()
    log.info("bank of %d from epoch %d: %s", len(members), start_epoch, ", ".join(m.name for m in members))
    for epoch in range(start_epoch, epochs + 1):
        data.train.set_epoch(epoch)
        for s in setups:
            s.criterion.set_epoch(epoch)
        stats = train_bank_epoch(train_model, data.train, [s.criterion for s in setups], optimizer, scheduler, alive,
                                 epoch=epoch, device=device, amp_dtype=setups[0].amp_dtype,
                                 check_every=int(cfg.loss_check_every))  # fmt: skip
        for i, error in stats["diverged"].items():
            members[i].fail(error)
        evaluated = epoch % int(cfg.eval_every) == 0 or epoch == epochs
        evals = evaluate_bank(train_model, data.test, data.num_classes, _heads(members), device=device,
                              amp_dtype=setups[0].amp_dtype, keep=_keep(members, final=epoch == epochs)
                              ) if evaluated else None  # fmt: skip
        for i, m in enumerate(members):
            if m.result is not None:
                continue
            record = {"epoch": epoch, "lr": stats["lr"], "train_loss": stats["train_loss"][i], "top1_err": None,
                      "top5_err": None, "ece": None, "nll": None, "seconds": stats["seconds"]}  # fmt: skip
            if evals is not None:
                record.update(top1_err=evals[i]["top1_err"], top5_err=evals[i]["top5_err"], ece=evals[i]["ece"],
                              nll=evals[i]["nll"])
            m.progress.history.append(record)
            if evals is not None:  # before the checkpoint, as a single run
                write_predictions(m.cfg, m.run_dir, epoch, evals[i], m.progress.history)
            row = epoch_row(record, evals[i] if evals is not None else None)
            m.tracker.keep(row)  # before the checkpoint: a resumed member replays every epoch it holds in full
            sync_member(bank, optimizer, i, m.setup)
            save_run_checkpoint(
                m.cfg, m.run_dir, epoch, model=m.setup.model, optimizer=m.setup.optimizer, scheduler=scheduler,
                history=m.progress.history, comparable=m.comparable,
                wall_time_s=m.wall_time + active_now() - session_start, wandb_id=m.tracker.run_id,
                world_size=env.world_size,
            )
            write_history(m.run_dir, m.progress.history)
            m.tracker.log_epoch(row)  # after the checkpoint: wandb never holds an epoch it lacks
            if epoch == epochs:
                _finish(m, env, evals[i], m.wall_time + active_now() - session_start)
        maybe_kill("epoch")
        running = [m.name for m in members if m.result is None]
        log.info("epoch %d/%d | lr %.4g | %d of %d members running | %.1f s", epoch, epochs, stats["lr"],
                 len(running), len(members), stats["seconds"])  # fmt: skip
        if not running:
            break
    if any(m.result is None for m in members):  # resumed after the last epoch's checkpoint, before metrics.json
        evals = evaluate_bank(train_model, data.test, data.num_classes, _heads(members), device=device,
                              amp_dtype=setups[0].amp_dtype, keep=_keep(members, final=True))  # fmt: skip
        for m, last_eval in zip(members, evals):
            if m.result is None:
                write_predictions(m.cfg, m.run_dir, epochs, last_eval, [])
                _finish(m, env, last_eval, m.wall_time + active_now() - session_start)


def _heads(members: list[Member]) -> list[tuple[str, float]]:
    return [(probability_of(m.cfg.loss.name), logit_scale(m.cfg)) for m in members]


def _keep(members: list[Member], final: bool) -> list[bool]:
    """Which members' predictions an evaluation keeps: every epoch's with keep_best, else the last epoch's."""
    return [bool(m.cfg.get("save_predictions", True)) and (final or bool(m.cfg.get("keep_best", False)))
            for m in members]


def _finish(m: Member, env, last_eval: dict[str, Any], wall_time: float) -> None:
    final = final_metrics(m.cfg, env, m.setup.data, m.progress.history, last_eval, m.progress.fields, wall_time)
    write_json(m.run_dir / "metrics.json", final)
    m.tracker.log_final(final)
    m.tracker.finish(0)
    m.result = final
    log.info("%s done: top-1 error %.2f%%", m.name, final["top1_err"])


def train_bank_epoch(
    bank: nn.Module,
    loader,
    criteria: list[nn.Module],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    alive: torch.Tensor,
    *,
    epoch: int,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    check_every: int = 1,
) -> dict[str, Any]:
    """One pass over `loader` for the whole bank.  `alive` (K bools, updated in place) masks out members whose
    loss turned non-finite: their loss no longer reaches the backward pass, so it cannot touch the others.
    Returns per-member mean losses and {member: DivergenceError} for the members lost in this epoch."""
    bank.train()
    steps = len(loader)
    losses = torch.zeros(max(steps, 1), len(criteria), device=device)
    diverged: dict[int, DivergenceError] = {}
    checked, start = 0, active_now()
    for step, (images, labels) in enumerate(loader):
        with autocast(device, amp_dtype):
            logits = bank(images)
            per_member = torch.stack([c(logits[i], labels) for i, c in enumerate(criteria)]).float()
        # where(), not a product: 0 * inf is nan, and a dead member's nan must not reach the shared backward pass
        total = torch.where(alive, per_member, torch.zeros_like(per_member)).sum()
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        scheduler.step()
        losses[step] = per_member.detach()
        maybe_kill("step")
        if (step + 1) % check_every == 0 or step + 1 == steps:
            window = losses[checked : step + 1]
            bad = ~torch.isfinite(window) & alive
            if bool(bad.any()):
                for i in bad.any(dim=0).nonzero().flatten().tolist():
                    first = checked + int(bad[:, i].nonzero()[0])
                    diverged[i] = DivergenceError(
                        f"non-finite training loss ({losses[first, i].item()}) at epoch {epoch}, step {first + 1}/{steps}; "
                        f"lower optim.lr or check the data"
                    )
                    alive[i] = False
            checked = step + 1
    means = losses[:steps].mean(dim=0).tolist() if steps else [math.nan] * len(criteria)
    return {"train_loss": means, "lr": optimizer.param_groups[0]["lr"], "steps": steps,
            "seconds": active_now() - start, "diverged": diverged}  # fmt: skip


@torch.no_grad()
def evaluate_bank(bank: nn.Module, loader, num_classes: int, heads: list[tuple[str, float]], *, device: torch.device,
                  amp_dtype: torch.dtype | None = None, keep: list[bool] | None = None) -> list[dict[str, Any]]:
    """`cbl.training.engine.evaluate` (as cbl.training.run.run_evaluation) for each member of the bank, in one pass
    over the test set: `heads` holds each member's (class probability, logit scale) for its calibration
    (cbl.evaluation.calibration); members whose `keep` is true get their predictions too (a bank is one process)."""
    bank.eval()
    accs = [EvalAccumulator(num_classes, ks=(1, 5)) for _ in heads]
    calibs = [CalibrationAccumulator(probability, scale) for probability, scale in heads]
    kept = [PredictionCollector() if k else None for k in (keep or [False] * len(heads))]
    for images, labels in loader:
        with autocast(device, amp_dtype):
            logits = bank(images)
        for acc, calib, collector, member_logits in zip(accs, calibs, kept, logits):
            acc.update(member_logits.float(), labels)
            calib.update(member_logits.float(), labels)
            if collector is not None:
                collector(member_logits.float(), labels)
    return [{**acc.compute(), **calib.compute(), **({"predictions": c.local()} if c is not None else {})}
            for acc, calib, c in zip(accs, calibs, kept)]
