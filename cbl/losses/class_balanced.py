"""Class-balanced losses (Cui et al., "Class-Balanced Loss Based on Effective Number of Samples", CVPR 2019).

Equations implemented (C classes, n_i training samples of class i, batch of B examples, logits z):

    effective number (Sec. 3):   E_n = (1 - beta**n) / (1 - beta)
    class-balanced weight:       w_i = 1 / E_{n_i} = (1 - beta) / (1 - beta**n_i),  then  w <- w / sum(w) * C
    softmax CB:   L = 1/B * sum_b  w[y_b] * CE(z_b, y_b)
    sigmoid CB:   L = 1/B * sum_b  w[y_b] * sum_c BCE(z_bc, 1[c = y_b])
    focal CB:     L = 1/B * sum_b  w[y_b] * sum_c (1 - p_t)**gamma * BCE(z_bc, 1[c = y_b])

with p_t = sigmoid(z_t), z_t = z if the label is 1 else -z.  The normalisations follow the authors'
TensorFlow code: every loss divides by the batch size B (the number of positive labels), never by
sum_b w[y_b] (what `F.cross_entropy(weight=w)` does, which rescales the loss batch by batch) and never
by B * C.  beta = 0 gives w = 1 and so the plain softmax / sigmoid / focal losses of the paper's baselines.

`reduction="weighted_mean"` (not used by the paper's losses) divides by sum_b w[y_b] instead of B, i.e.
PyTorch's `F.cross_entropy(weight=w)`, which is what Cao et al.'s LDAM-DRW code uses (see cbl.losses.logit_adjustment).

Public API: `effective_number`, `class_balanced_weights`, `weighted_loss`, `class_balanced_loss`,
`WeightedLoss`, `ClassBalancedLoss`, the registry `LOSS_TYPES` and `REDUCTIONS`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Counts = Sequence[float] | Tensor


# --------------------------------------------------------------------------- validation
def check_beta(beta: float) -> float:
    """beta must lie in [0, 1): beta = 1 would make every effective number infinite."""
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not 0.0 <= float(beta) < 1.0:
        raise ValueError(f"beta must be a number in [0, 1); got {beta!r}")
    return float(beta)


def check_gamma(gamma: float) -> float:
    """gamma is the focal exponent; negative values would up-weight easy examples without bound."""
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not 0.0 <= float(gamma) < math.inf:
        raise ValueError(f"gamma must be a finite number >= 0; got {gamma!r}")
    return float(gamma)


def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}; got {reduction!r}")
    return reduction


def check_loss_type(loss_type: str) -> str:
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {', '.join(LOSS_TYPES)}; got {loss_type!r}")
    return loss_type


def as_counts(samples_per_class: Counts) -> Tensor:
    """Per-class training-set counts as a float64 vector; every class needs at least one sample."""
    counts = torch.as_tensor(samples_per_class, dtype=torch.float64).detach().cpu()
    if counts.dim() != 1 or counts.numel() == 0:
        raise ValueError(f"samples_per_class must be a non-empty 1-D list of counts; got shape {tuple(counts.shape)}")
    bad = (~torch.isfinite(counts)) | (counts < 1)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(
            f"samples_per_class must be >= 1 for every class (a class with no training samples has no "
            f"effective number); class {i} has {counts[i].item():g}"
        )
    return counts


def check_logits_labels(logits: Tensor, labels: Tensor, num_classes: int | None = None) -> None:
    """Shapes, dtypes and label range.  The range check reads the labels on the host (a device sync),
    so the training loop checks the dataset's labels once and calls the losses with validate=False."""
    if logits.dim() != 2:
        raise ValueError(f"logits must be 2-D [batch, classes]; got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be a floating-point tensor; got dtype {logits.dtype}")
    if labels.dim() != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(
            f"labels must be 1-D class indices with one entry per logits row: logits {tuple(logits.shape)}, "
            f"labels {tuple(labels.shape)}"
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices; got dtype {labels.dtype}")
    c = logits.shape[1]
    if num_classes is not None and num_classes != c:
        raise ValueError(f"samples_per_class has {num_classes} classes but logits have {c}")
    if labels.numel():
        out = (labels < 0) | (labels >= c)
        if bool(out.any()):
            i = int(out.nonzero()[0])
            raise ValueError(f"labels must lie in [0, {c}); got {int(labels[i])} at position {i}")


# --------------------------------------------------------------------------- weights
def effective_number(samples_per_class: Counts, beta: float) -> Tensor:
    """E_n = (1 - beta**n) / (1 - beta), the expected volume covered by n samples (float64, shape [C])."""
    beta = check_beta(beta)
    n = as_counts(samples_per_class)
    if beta == 0.0:
        return torch.ones_like(n)
    # 1 - beta**n = -expm1(n * log(beta)) keeps full precision when beta is close to 1
    return -torch.expm1(n * math.log(beta)) / (1.0 - beta)


def class_balanced_weights(samples_per_class: Counts, beta: float) -> Tensor:
    """w_i = (1 - beta) / (1 - beta**n_i), normalised to sum to C (float32, shape [C]).

    beta = 0 gives all ones; beta -> 1 tends to inverse class frequency (normalised the same way).
    """
    w = 1.0 / effective_number(samples_per_class, beta)
    return (w / w.sum() * w.numel()).to(torch.float32)


# --------------------------------------------------------------------------- losses on given weights
def _compute_dtype(logits: Tensor) -> torch.dtype:
    # half / bfloat16 logits (autocast) are computed in float32; float64 stays float64
    return torch.promote_types(logits.dtype, torch.float32)


def _example_weights(weights: Tensor, labels: Tensor, dtype: torch.dtype) -> Tensor:
    return weights.to(device=labels.device, dtype=dtype)[labels]


def softmax_loss(logits: Tensor, labels: Tensor, weights: Tensor, gamma: float = 0.0) -> Tensor:
    """1/B * sum_b w[y_b] * CE(z_b, y_b)."""
    z = logits.to(_compute_dtype(logits))
    ce = F.cross_entropy(z, labels, reduction="none")
    return (_example_weights(weights, labels, z.dtype) * ce).mean()


def sigmoid_loss(logits: Tensor, labels: Tensor, weights: Tensor, gamma: float = 0.0) -> Tensor:
    """1/B * sum_b w[y_b] * sum_c BCE(z_bc, 1[c = y_b])."""
    return focal_loss(logits, labels, weights, gamma=0.0)


def focal_loss(logits: Tensor, labels: Tensor, weights: Tensor, gamma: float = 0.0) -> Tensor:
    """1/B * sum_b w[y_b] * sum_c (1 - p_t)**gamma * BCE(z_bc, 1[c = y_b]).

    With z_t = +z for the true class and -z for the others, BCE = softplus(-z_t) and
    (1 - p_t)**gamma = sigmoid(-z_t)**gamma = exp(-gamma * softplus(z_t)).  Both softplus terms are
    finite for any finite z, so neither the loss nor its gradient overflows (the authors' form
    exp(-g*y*z - g*log1p(exp(-z))) overflows in float32 for z < -88), and the gradient stays finite
    for gamma < 1 where d/dp (1-p)**gamma is unbounded.
    """
    z = logits.to(_compute_dtype(logits))
    positive = F.one_hot(labels, z.shape[1]).bool()
    z_t = torch.where(positive, z, -z)
    terms = F.softplus(-z_t)  # BCE with logits
    if gamma != 0.0:
        terms = torch.exp(-gamma * F.softplus(z_t)) * terms
    return (_example_weights(weights, labels, z.dtype) * terms.sum(dim=1)).mean()


LossFn = Callable[[Tensor, Tensor, Tensor, float], Tensor]

#: how a weighted sum over the batch is normalised: by B (the paper) or by sum_b w[y_b] (PyTorch's weighted mean)
REDUCTIONS = ("batch", "weighted_mean")

#: name -> loss on given per-class weights, f(logits, labels, weights, gamma)
LOSS_TYPES: dict[str, LossFn] = {
    "softmax": softmax_loss,
    "sigmoid": sigmoid_loss,
    "focal": focal_loss,
}


def weighted_loss(
    logits: Tensor,
    labels: Tensor,
    weights: Tensor,
    loss_type: str,
    gamma: float = 0.0,
    validate: bool = True,
    reduction: str = "batch",
) -> Tensor:
    """A loss of `LOSS_TYPES` with per-class weights `weights` (shape [C]) applied as w[y_b] to every
    term of example b, normalised by the batch size B (`reduction="batch"`, the paper) or by sum_b w[y_b]
    (`reduction="weighted_mean"`, what `F.cross_entropy(weight=w)` does).  Any weighting scheme plugs in here."""
    check_loss_type(loss_type)
    check_reduction(reduction)
    gamma = check_gamma(gamma)
    if gamma != 0.0 and loss_type != "focal":
        raise ValueError(f"gamma applies only to loss_type='focal'; got gamma={gamma:g} with loss_type={loss_type!r}")
    if validate:
        check_logits_labels(logits, labels, num_classes=weights.shape[0])
    if logits.shape[0] == 0:
        return logits.sum().to(_compute_dtype(logits))  # zero, and keeps the graph
    if labels.dtype != torch.long:
        labels = labels.long()  # int32/uint8 indices are fine; the gathers below want int64
    loss = LOSS_TYPES[loss_type](logits, labels, weights, gamma)
    if reduction == "weighted_mean":
        # sum_b w[y_b] l_b / sum_b w[y_b] = (the batch mean) * B / sum_b w[y_b]
        loss = loss * (labels.numel() / _example_weights(weights, labels, loss.dtype).sum())
    return loss


def class_balanced_loss(
    logits: Tensor,
    labels: Tensor,
    samples_per_class: Counts,
    loss_type: str,
    beta: float,
    gamma: float = 0.0,
) -> Tensor:
    """Class-balanced softmax / sigmoid / focal loss (a scalar).

    Args:
        logits: [B, C] float tensor (any float dtype; half precision is computed in float32).
        labels: [B] integer class indices.
        samples_per_class: training-set count of each class (length C, all >= 1).
        loss_type: "softmax", "sigmoid" or "focal".
        beta: in [0, 1); 0 gives the unweighted loss.
        gamma: focal exponent >= 0 (only for loss_type="focal"; 0 gives the sigmoid loss).
    """
    check_loss_type(loss_type)
    weights = class_balanced_weights(samples_per_class, beta)
    return weighted_loss(logits, labels, weights, loss_type, gamma)


class WeightedLoss(nn.Module):
    """`weighted_loss` on given per-class weights (a buffer, so `.to(device)` moves them), e.g. the weights of
    any scheme of cbl.losses.weighting.  `set_epoch` is a no-op: the training loop calls it on every criterion, and
    only deferred re-weighting (cbl.losses.weighting.DeferredReweighting) depends on the epoch."""

    weights: Tensor

    def __init__(
        self,
        weights: Tensor | Sequence[float],
        loss_type: str = "softmax",
        gamma: float = 0.0,
        validate: bool = True,
        reduction: str = "batch",
    ) -> None:
        super().__init__()
        self.loss_type = check_loss_type(loss_type)
        self.gamma = check_gamma(gamma)
        if self.gamma != 0.0 and loss_type != "focal":
            raise ValueError(f"gamma applies only to loss_type='focal'; got gamma={gamma:g} with loss_type={loss_type!r}")
        self.reduction = check_reduction(reduction)
        self.validate = validate
        w = torch.as_tensor(weights, dtype=torch.float32).detach().clone()
        if w.dim() != 1 or w.numel() == 0 or not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
            raise ValueError(f"weights must be a non-empty 1-D vector of finite numbers >= 0; got {weights!r}")
        self.register_buffer("weights", w)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        return weighted_loss(logits, labels, self.weights, self.loss_type, self.gamma, validate=self.validate,
                             reduction=self.reduction)

    def set_epoch(self, epoch: int) -> None:
        """Nothing to do: these weights do not depend on the epoch."""

    def extra_repr(self) -> str:
        extra = "" if self.reduction == "batch" else f", reduction={self.reduction!r}"
        return f"loss_type={self.loss_type!r}, gamma={self.gamma:g}, num_classes={self.weights.numel()}{extra}"


class ClassBalancedLoss(WeightedLoss):
    """`class_balanced_loss` as a module; the weights are a buffer, so `.to(device)` moves them.

    Example:
        >>> crit = ClassBalancedLoss([5000, 500, 50], loss_type="focal", beta=0.999, gamma=0.5)
        >>> loss = crit(model(x), y)
    """

    def __init__(
        self,
        samples_per_class: Counts,
        loss_type: str = "softmax",
        beta: float = 0.0,
        gamma: float = 0.0,
        validate: bool = True,
        reduction: str = "batch",
    ) -> None:
        check_loss_type(loss_type)
        self_beta = check_beta(beta)
        super().__init__(class_balanced_weights(samples_per_class, self_beta), loss_type, gamma, validate, reduction)
        self.beta = self_beta

    def extra_repr(self) -> str:
        extra = "" if self.reduction == "batch" else f", reduction={self.reduction!r}"
        return f"loss_type={self.loss_type!r}, beta={self.beta:g}, gamma={self.gamma:g}, num_classes={self.weights.numel()}{extra}"
