"""The inner loops: one training epoch (SGD on the class-balanced loss) and one evaluation pass
(top-1 / top-5 error and per-class accuracy on the balanced test set, and the calibration of the head's
probabilities: ECE over 15 confidence bins and NLL, cbl.evaluation.calibration).

The training loop keeps per-step losses on the device and reads them back every `check_every` steps, so
on a GPU the host does not wait for every step; a non-finite loss is still caught within that window and
stops the run (the model of the last checkpoint is intact, since checkpoints are written at epoch ends).

Under DDP each rank's loss is scaled by the loader's `loss_scale(step)` (1.0 except for a last batch that
splits unevenly over the ranks, see cbl/data/epoch.py), so the averaged gradient is that of the global-batch
mean, and the loss window is averaged over the ranks before it is checked: every rank sees the same
(global-batch) losses, stops at the same step on a non-finite one, and reports the single-process loss.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from cbl.evaluation.calibration import CalibrationAccumulator
from cbl.evaluation.metrics import EvalAccumulator
from cbl.training.active_time import active_now
from cbl.training.distributed import all_reduce_mean
from cbl.training.faults import maybe_kill


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    *,
    epoch: int,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    check_every: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """One pass over `loader`; the scheduler steps once per optimizer step (per-step warm-up)."""
    model.train()
    steps = len(loader)
    losses = torch.zeros(max(steps, 1), device=device)
    checked = 0
    start = active_now()  # seconds of training, without the time the process was stopped
    scale = getattr(loader, "loss_scale", lambda k: 1.0)
    bar = tqdm(loader, total=steps, desc=f"epoch {epoch}", leave=False, disable=not progress, dynamic_ncols=True)
    for step, (images, labels) in enumerate(bar):
        with autocast(device, amp_dtype):
            loss = criterion(model(images), labels)
        if (factor := scale(step)) != 1.0:
            loss = loss * factor
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses[step] = loss.detach()
        maybe_kill("step")
        if (step + 1) % check_every == 0 or step + 1 == steps:
            window = losses[checked : step + 1]
            reduced = all_reduce_mean(window)  # the window itself in a single process
            if reduced is not window:
                window.copy_(reduced)
            finite = torch.isfinite(window)
            if not bool(finite.all()):
                bad = checked + int((~finite).nonzero()[0])
                raise DivergenceError(
                    f"non-finite training loss ({losses[bad].item()}) at epoch {epoch}, step {bad + 1}/{steps}; "
                    f"lower optim.lr or check the data"
                )
            checked = step + 1
            if progress:
                bar.set_postfix(loss=f"{window.mean().item():.4f}", lr=f"{optimizer.param_groups[0]['lr']:.4g}")
    return {
        "train_loss": losses[:steps].mean().item() if steps else math.nan,
        "lr": optimizer.param_groups[0]["lr"],
        "steps": steps,
        "seconds": active_now() - start,
    }


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    num_classes: int,
    *,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    on_batch: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
    probability: str | None = None,
    logit_scale: float = 1.0,
) -> dict[str, Any]:
    """Top-1 / top-5 error (percent) and per-class accuracy over the whole test loader (all processes), and with
    `probability` ("softmax" / "sigmoid", cbl.evaluation.calibration) the ECE (%) and NLL of the head's probabilities;
    `on_batch(logits, labels)` sees each batch's float32 logits (cbl.training.predictions keeps them)."""
    model.eval()
    acc = EvalAccumulator(num_classes, ks=(1, 5))
    calib = CalibrationAccumulator(probability, logit_scale) if probability is not None else None
    for images, labels in loader:
        with autocast(device, amp_dtype):
            logits = model(images)
        logits = logits.float()
        acc.update(logits, labels)
        if calib is not None:
            calib.update(logits, labels)
        if on_batch is not None:
            on_batch(logits, labels)
    acc.all_reduce()
    out = acc.compute()
    if calib is not None:
        out.update(calib.all_reduce().compute())
    return out
