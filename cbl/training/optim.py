"""Optimiser and learning-rate schedule of Cui et al. (CVPR 2019), as in the authors' TensorFlow code
(richardaecn/class-balanced-loss: src/cifar_main.py `learning_rate_schedule`, tpu/.../resnet_main.py).

Learning rate at optimizer step t, with fractional epoch e = t / steps_per_epoch:

    lr(t) = base_lr * e / warmup_epochs      while e < warmup_epochs       (linear warm-up from 0, per step)
          = base_lr * factors[i]              for the last milestones[i] <= e
          = base_lr                           otherwise

    CIFAR (Table 2):      base 0.1 at batch 128, warm-up 5, milestones (160, 180), factors (0.01, 1e-4), 200 epochs
    Large scale (Table 3): base 0.1 per 256 images -> 0.4 at batch 1024 (linear scaling rule, Goyal et al. 2017),
                           warm-up 5, milestones (30, 60, 80), factors (0.1, 0.01, 0.001), 90 epochs, Nesterov

`lr_multiplier` is a pure function; `build_scheduler` wraps it in `torch.optim.lr_scheduler.LambdaLR`, stepped
once per optimizer step, so `scheduler.state_dict()` checkpoints and resumes it.  Weight decay is SGD's
coupled L2 decay (the authors add wd * ||w||^2 / 2 to the loss) over `cbl.models.parameter_groups`.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from cbl.models.heads import check_head_type
from cbl.models.param_groups import parameter_groups

OPTIMIZER_NAMES = ("sgd",)


def _real(x) -> bool:
    return not isinstance(x, bool) and isinstance(x, numbers.Real) and math.isfinite(x)


def check_schedule(steps_per_epoch: float, warmup_epochs: float, milestones: Sequence[float], factors: Sequence[float]) -> None:
    """Raise ValueError on a schedule `lr_multiplier` cannot follow."""
    if not _real(steps_per_epoch) or steps_per_epoch <= 0:
        raise ValueError(f"steps_per_epoch must be a positive number; got {steps_per_epoch!r}")
    if not _real(warmup_epochs) or warmup_epochs < 0:
        raise ValueError(f"warmup_epochs must be a finite number >= 0; got {warmup_epochs!r}")
    milestones, factors = list(milestones), list(factors)
    if len(milestones) != len(factors):
        raise ValueError(f"milestones and factors must have the same length; got {len(milestones)} milestones {milestones} and {len(factors)} factors {factors}")
    if not all(_real(m) for m in milestones) or any(b <= a for a, b in zip(milestones, milestones[1:])):
        raise ValueError(f"milestones must be strictly increasing epochs; got {milestones}")
    if milestones and milestones[0] < warmup_epochs:
        raise ValueError(f"milestones must not fall inside the warm-up; got milestone {milestones[0]} < warmup_epochs {warmup_epochs}")
    if not all(_real(f) and f >= 0 for f in factors):
        raise ValueError(f"factors must be finite numbers >= 0; got {factors}")


def lr_multiplier(step: int, steps_per_epoch: float, warmup_epochs: float, milestones: Sequence[float], factors: Sequence[float]) -> float:
    """The learning rate at optimizer step `step` (0-based) relative to the base rate (see module doc).

    `factors[i]` applies from epoch `milestones[i]` on (relative to the base, not to the previous stage).
    `steps_per_epoch` may be fractional (the authors use num_images / batch_size).
    """
    check_schedule(steps_per_epoch, warmup_epochs, milestones, factors)
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        raise ValueError(f"step must be an integer >= 0; got {step!r}")
    epoch = step / steps_per_epoch
    if epoch < warmup_epochs:
        return epoch / warmup_epochs
    multiplier = 1.0
    for milestone, factor in zip(milestones, factors):
        if epoch >= milestone:
            multiplier = float(factor)
    return multiplier


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    steps_per_epoch: float,
    warmup_epochs: float,
    milestones: Sequence[float],
    factors: Sequence[float],
) -> LambdaLR:
    """LambdaLR over `lr_multiplier`; call `scheduler.step()` after every `optimizer.step()`.

    The lr used by optimizer step t is base * lr_multiplier(t) (so step 0 runs at lr 0, as in the authors'
    code).  Resume by loading both `optimizer.state_dict()` and `scheduler.state_dict()`.
    """
    check_schedule(steps_per_epoch, warmup_epochs, milestones, factors)
    fn = functools.partial(
        lr_multiplier,
        steps_per_epoch=steps_per_epoch,
        warmup_epochs=warmup_epochs,
        milestones=tuple(milestones),
        factors=tuple(factors),
    )
    return LambdaLR(optimizer, lr_lambda=fn)


def scaled_lr(base_lr: float, batch_size: int, reference_batch: int) -> float:
    """Linear scaling rule (Goyal et al. 2017): base_lr * batch_size / reference_batch, e.g. 0.1 per 256 -> 0.4 at 1024.
    `batch_size` is the global batch (all processes together)."""
    if not _real(base_lr) or base_lr <= 0:
        raise ValueError(f"base_lr must be a positive number; got {base_lr!r}")
    for name, v in (("batch_size", batch_size), ("reference_batch", reference_batch)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must be a positive integer; got {v!r}")
    return float(base_lr) * batch_size / reference_batch


def resolve_decay_fc_bias(setting: bool | str, loss_type: str) -> bool:
    """The `decay_fc_bias` config field: true, false, or "auto" = decay only for softmax heads (the CIFAR recipe:
    the -log(C - 1) prior bias of sigmoid / focal heads is not decayed)."""
    check_head_type(loss_type)
    if isinstance(setting, bool):
        return setting
    if setting == "auto":
        return loss_type == "softmax"
    raise ValueError(f"decay_fc_bias must be true, false or 'auto'; got {setting!r}")


def build_optimizer(
    model: nn.Module,
    *,
    name: str = "sgd",
    lr: float,
    momentum: float,
    weight_decay: float,
    nesterov: bool,
    decay_bn: bool,
    decay_fc_bias: bool,
) -> torch.optim.Optimizer:
    """SGD with momentum over `parameter_groups(model, weight_decay, decay_bn=..., decay_fc_bias=...)`.

    `lr` is the rate after warm-up (apply `scaled_lr` first for a batch other than the reference one).
    """
    if name not in OPTIMIZER_NAMES:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZER_NAMES)}")
    if not _real(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive number; got {lr!r}")
    if not _real(momentum) or not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be a number in [0, 1); got {momentum!r}")
    if not isinstance(nesterov, bool):
        raise ValueError(f"nesterov must be True or False; got {nesterov!r}")
    if nesterov and momentum == 0:
        raise ValueError("nesterov=True needs momentum > 0; got momentum=0")
    if not isinstance(decay_fc_bias, bool):
        raise ValueError(f"decay_fc_bias must be True or False here (resolve 'auto' with resolve_decay_fc_bias); got {decay_fc_bias!r}")
    groups = parameter_groups(model, weight_decay, decay_bn=decay_bn, decay_fc_bias=decay_fc_bias)
    return torch.optim.SGD(groups, lr=float(lr), momentum=float(momentum), nesterov=nesterov)
