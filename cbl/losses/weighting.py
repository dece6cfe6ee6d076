"""Per-class weighting schemes and deferred re-weighting, for the comparisons beyond the paper.

Schemes (C classes, n_i training samples of class i; every scheme is normalised to sum to C, like the
class-balanced weights of Cui et al. 2019, so they differ only in shape, not in overall scale):

    effective_number   w_i ∝ (1 - beta) / (1 - beta**n_i)     Cui et al., CVPR 2019 (beta = 0: all ones)
    inverse            w_i ∝ 1 / n_i                          inverse class frequency (Cui et al. Sec. 2;
                                                              e.g. Huang et al., CVPR 2016)
    inverse_sqrt       w_i ∝ 1 / sqrt(n_i)                    its smoothed version (Mikolov et al., NeurIPS 2013;
                                                              Mahajan et al., ECCV 2018)

Deferred re-weighting (DRW; Cao et al., "Learning Imbalanced Datasets with Label-Distribution-Aware Margin
Loss", NeurIPS 2019, Sec. 3.3): train with all-ones weights first, then with the scheme's weights.  The
switch epoch `drw_epoch` is counted like the lr milestones of cbl.training.optim (epochs completed): with the 1-based
epoch e that `set_epoch(e)` receives, the weights apply iff e > drw_epoch, so drw_epoch = 160 turns them on
at the first step of epoch 161, the same step as an lr milestone at 160 (Cao et al. defer to the first lr
decay).  The weights are a pure function of the epoch, so a resumed run replays them exactly.

Public API: `WEIGHTINGS`, `inverse_frequency_weights`, `class_weights`, `check_weighting`, `check_drw_epoch`,
`deferred_weights`, `DeferredReweighting`.
"""

from __future__ import annotations

import numbers
from typing import Callable

import torch
from torch import Tensor, nn

from cbl.losses.class_balanced import Counts, as_counts, check_beta, class_balanced_weights


def inverse_frequency_weights(samples_per_class: Counts, power: float = 1.0) -> Tensor:
    """w_i = n_i**(-power), normalised to sum to C (float32, shape [C]).  power 1: inverse frequency,
    0.5: inverse square root, 0: all ones.  Also the beta -> 1 limit of `class_balanced_weights` (power 1)."""
    if isinstance(power, bool) or not isinstance(power, numbers.Real) or not 0.0 <= float(power) < float("inf"):
        raise ValueError(f"power must be a finite number >= 0; got {power!r}")
    n = as_counts(samples_per_class)
    w = n.pow(-float(power))
    return (w / w.sum() * w.numel()).to(torch.float32)


def _effective_number(samples_per_class: Counts, beta: float) -> Tensor:
    return class_balanced_weights(samples_per_class, beta)


def _no_beta(name: str, power: float) -> Callable[[Counts, float], Tensor]:
    def scheme(samples_per_class: Counts, beta: float) -> Tensor:
        if check_beta(beta) != 0.0:
            raise ValueError(f"beta applies only to weighting='effective_number'; got beta={beta:g} with weighting={name!r}")
        return inverse_frequency_weights(samples_per_class, power)

    scheme.__name__ = name
    return scheme


#: name -> f(samples_per_class, beta) giving float32 weights that sum to C
WEIGHTINGS: dict[str, Callable[[Counts, float], Tensor]] = {
    "effective_number": _effective_number,
    "inverse": _no_beta("inverse", 1.0),
    "inverse_sqrt": _no_beta("inverse_sqrt", 0.5),
}


def check_weighting(weighting: str) -> str:
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}; got {weighting!r}")
    return weighting


def class_weights(samples_per_class: Counts, weighting: str = "effective_number", beta: float = 0.0) -> Tensor:
    """The per-class weights of scheme `weighting` (float32, shape [C], sum C).  `beta` is the effective-number
    hyper-parameter (0 = all ones) and must be 0 for the other schemes."""
    return WEIGHTINGS[check_weighting(weighting)](samples_per_class, beta)


def check_drw_epoch(drw_epoch: int | None) -> int | None:
    """None (no deferral) or an integer >= 1: the number of epochs trained with all-ones weights."""
    if drw_epoch is None:
        return None
    if isinstance(drw_epoch, bool) or not isinstance(drw_epoch, numbers.Integral) or drw_epoch < 1:
        raise ValueError(f"drw_epoch must be null or an integer >= 1 (epochs trained before re-weighting); got {drw_epoch!r}")
    return int(drw_epoch)


def deferred_weights(weights: Tensor, epoch: int, drw_epoch: int | None) -> Tensor:
    """The weights in force during (1-based) epoch `epoch`: all ones while epoch <= drw_epoch, else `weights`."""
    drw_epoch = check_drw_epoch(drw_epoch)
    if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 1:
        # 1-based as in cbl.train: a 0-based loop would switch one epoch later than drw_epoch says, silently
        raise ValueError(f"epoch must be an integer >= 1 (epochs count from 1: the first epoch is 1); got {epoch!r}")
    if drw_epoch is not None and epoch <= drw_epoch:
        return torch.ones_like(weights)
    return weights


class DeferredReweighting(nn.Module):
    """Wraps a loss module that holds its per-class weights in a `weights` buffer (every loss of
    cbl.losses.class_balanced and cbl.losses.logit_adjustment does): `set_epoch(e)` sets them to all ones for e <= drw_epoch and to the
    wrapped loss's weights afterwards.  Call `set_epoch` before the first step of every epoch; epochs count from 1,
    so `drw_epoch=160` trains epochs 1-160 unweighted and re-weights from epoch 161 on.

    Example:
        >>> crit = DeferredReweighting(WeightedLoss(class_weights(counts, beta=0.9999)), drw_epoch=160)
        >>> for epoch in range(1, epochs + 1):
        ...     crit.set_epoch(epoch); loss = crit(logits, labels)
    """

    deferred: Tensor

    def __init__(self, loss: nn.Module, drw_epoch: int) -> None:
        super().__init__()
        if not isinstance(getattr(loss, "weights", None), Tensor):
            raise ValueError(f"DeferredReweighting needs a loss with a `weights` buffer; {type(loss).__name__} has none")
        drw_epoch = check_drw_epoch(drw_epoch)
        if drw_epoch is None:
            raise ValueError("DeferredReweighting needs drw_epoch >= 1; got None (use the loss itself)")
        self.loss = loss
        self.drw_epoch = drw_epoch
        self.register_buffer("deferred", loss.weights.detach().clone())
        self.epoch: int | None = None

    def set_epoch(self, epoch: int) -> None:
        with torch.no_grad():
            self.loss.weights.copy_(deferred_weights(self.deferred, epoch, self.drw_epoch))
        self.epoch = int(epoch)

    @property
    def active(self) -> bool:
        """Whether the deferred weights are in force (False before the first set_epoch)."""
        return self.epoch is not None and self.epoch > self.drw_epoch

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        if self.epoch is None:
            raise RuntimeError("DeferredReweighting: call set_epoch(epoch) before the first step (the weights depend on the epoch)")
        return self.loss(logits, labels)

    def extra_repr(self) -> str:
        return f"drw_epoch={self.drw_epoch}, epoch={self.epoch}, active={self.active}"
