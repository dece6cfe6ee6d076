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

Besides class indices y [B], the losses take (derivations in cbl.losses.targets):

    multi-hot t [B, C] (sigmoid, focal), multilabel_weighting="sample" (default):
                  L = 1/B * sum_b  omega_b * sum_c l_bc,   omega_b = mean of w_c over the positives of row b
                  (mean_c w_c = 1 for a row without any),   l_bc = (1 - p_t)**gamma * BCE(z_bc, t_bc)
    multilabel_weighting="class":   L = 1/B * sum_b sum_c  w_c * l_bc
    dense y [B, d1, ...] with logits [B, C, d1, ...]:   the loss of the N_valid positions with y != ignore_index,
                  as rows of [N_valid, C] (so divided by N_valid); 0 with a zero gradient when none is valid

A one-hot row gives exactly the loss of its class index, and beta = 0 gives the plain BCE summed over classes / B.

Public API: `effective_number`, `class_balanced_weights`, `weighted_loss`, `class_balanced_loss`, `softmax_loss`,
`sigmoid_loss`, `focal_loss`, `WeightedLoss`, `ClassBalancedLoss`, the registry `LOSS_TYPES` and `REDUCTIONS`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cbl.losses.targets import (IGNORE_INDEX, check_dense, check_ignore_index, check_multi_hot, check_multilabel_weighting,
                                example_weights, flatten_dense, target_form)

Counts = Sequence[float] | Tensor


# --------------------------------------------------------------------------- validation
def check_beta(beta: float) -> float:
    """beta must lie in [0, 1): beta = 1 would make every effective number infinite."""
    if isinstance(beta, Tensor) and beta.numel() == 1 and beta.is_floating_point():
        beta = beta.item()  # a 0-d tensor, as a config or a scheduler may hold it
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
        # a zero is either a class the training set lacks or a count taken over one batch, which misses classes
        hint = ("; a class absent from the training set has no weight to give (leave it out of the label space), "
                "and counts must come from the whole training set (cbl.losses.samples_per_class(train_labels, "
                "num_classes)), not from a batch") if counts[i] == 0 else ""
        raise ValueError(
            f"samples_per_class must be >= 1 for every class (a class with no training samples has no "
            f"effective number); class {i} has {counts[i].item():g}{hint}"
        )
    return counts


def check_logits(logits: Tensor, num_classes: int | None = None) -> None:
    """[batch, classes] floating-point logits, with `num_classes` classes when given."""
    if logits.dim() != 2:
        raise ValueError(f"logits must be 2-D [batch, classes]; got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be a floating-point tensor; got dtype {logits.dtype}")
    if num_classes is not None and num_classes != logits.shape[1]:
        raise ValueError(f"samples_per_class has {num_classes} classes but logits have {logits.shape[1]}")


def check_logits_labels(logits: Tensor, labels: Tensor, num_classes: int | None = None) -> None:
    """Shapes, dtypes and label range.  The range check reads the labels on the host (a device sync),
    so the training loop checks the dataset's labels once and calls the losses with validate=False."""
    check_logits(logits, num_classes)
    if labels.dim() != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(
            f"labels must be 1-D class indices with one entry per logits row: logits {tuple(logits.shape)}, "
            f"labels {tuple(labels.shape)}"
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices; got dtype {labels.dtype}")
    check_same_device(logits, labels)
    c = logits.shape[1]
    if labels.numel():
        out = (labels < 0) | (labels >= c)
        if bool(out.any()):
            i = int(out.nonzero()[0])
            # PyTorch's -100 padding: cross_entropy skips it for [N] labels, these losses only for dense targets
            ignored = (f" (ignore_index applies to dense targets [B, d1, ...] only: drop the ignored rows first, "
                       f"e.g. keep = labels != {int(labels[i])}; loss(logits[keep], labels[keep]))"
                       if int(labels[i]) == IGNORE_INDEX else "")
            raise ValueError(f"labels must lie in [0, {c}); got {int(labels[i])} at position {i}{ignored}")


def check_same_device(logits: Tensor, labels: Tensor) -> None:
    if labels.device != logits.device:
        raise ValueError(f"logits are on {logits.device} but labels on {labels.device}; move both to one device")


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


def _binary_terms(z: Tensor, positive: Tensor, gamma: float) -> Tensor:
    """(1 - p_t)**gamma * BCE(z, t) for every element, t = 1 where `positive`.

    With z_t = +z for a positive and -z for a negative, BCE = softplus(-z_t) and
    (1 - p_t)**gamma = sigmoid(-z_t)**gamma = exp(-gamma * softplus(z_t)).  Both softplus terms are
    finite for any finite z, so neither the loss nor its gradient overflows (the authors' form
    exp(-g*y*z - g*log1p(exp(-z))) overflows in float32 for z < -88), and the gradient stays finite
    for gamma < 1 where d/dp (1-p)**gamma is unbounded.
    """
    z_t = torch.where(positive, z, -z)
    terms = F.softplus(-z_t)  # BCE with logits
    if gamma != 0.0:
        terms = torch.exp(-gamma * F.softplus(z_t)) * terms
    return terms


def _softmax_indices(logits: Tensor, labels: Tensor, weights: Tensor, gamma: float) -> Tensor:
    """1/B * sum_b w[y_b] * CE(z_b, y_b)."""
    z = logits.to(_compute_dtype(logits))
    ce = F.cross_entropy(z, labels, reduction="none")
    return (_example_weights(weights, labels, z.dtype) * ce).mean()


def _focal_indices(logits: Tensor, labels: Tensor, weights: Tensor, gamma: float) -> Tensor:
    """1/B * sum_b w[y_b] * sum_c (1 - p_t)**gamma * BCE(z_bc, 1[c = y_b]); gamma = 0: the sigmoid loss."""
    z = logits.to(_compute_dtype(logits))
    positive = F.one_hot(labels, z.shape[1]).bool()
    return (_example_weights(weights, labels, z.dtype) * _binary_terms(z, positive, gamma).sum(dim=1)).mean()


def _binary_loss(logits: Tensor, positive: Tensor, weights: Tensor, gamma: float, per_class: bool,
                 reduction: str) -> Tensor:
    """The sigmoid / focal loss of positives `positive` [B, C], weighted per class (multilabel_weighting="class")
    or per example (omega_b of "sample"), divided by B or, for "sample", by sum_b omega_b (reduction)."""
    z = logits.to(_compute_dtype(logits))
    terms = _binary_terms(z, positive, gamma)
    if per_class:  # reduction is "batch": check_loss_options refuses the other
        return (terms * weights.to(device=z.device, dtype=z.dtype)).sum(dim=1).mean()
    omega = example_weights(weights, positive, z.dtype)
    loss = (omega * terms.sum(dim=1)).mean()
    return loss * (omega.numel() / omega.sum()) if reduction == "weighted_mean" else loss


#: class indices [B] -> loss; the paper's path, also taken by dense targets once flattened
_INDEX_LOSSES = {"softmax": _softmax_indices, "sigmoid": _focal_indices, "focal": _focal_indices}

LossFn = Callable[[Tensor, Tensor, Tensor, float], Tensor]

#: how a weighted sum over the batch is normalised: by B (the paper) or by sum_b w[y_b] (PyTorch's weighted mean)
REDUCTIONS = ("batch", "weighted_mean")


def check_loss_options(loss_type: str, gamma: float, reduction: str, multilabel_weighting: str) -> float:
    """The options of a loss, checked together (they constrain each other); returns gamma as a float."""
    check_loss_type(loss_type)
    check_reduction(reduction)
    gamma = check_gamma(gamma)
    if gamma != 0.0 and loss_type != "focal":
        raise ValueError(f"gamma applies only to loss_type='focal'; got gamma={gamma:g} with loss_type={loss_type!r}")
    if check_multilabel_weighting(multilabel_weighting) == "class" and loss_type != "softmax" and reduction != "batch":
        # "class" weights classes, not examples: there is no sum_b omega_b to divide by
        raise ValueError(f"reduction={reduction!r} divides by the examples' weights, which multilabel_weighting='class' "
                         f"does not have; use reduction='batch'")
    return gamma


def weighted_loss(
    logits: Tensor,
    labels: Tensor,
    weights: Tensor,
    loss_type: str,
    gamma: float = 0.0,
    validate: bool = True,
    reduction: str = "batch",
    *,
    multilabel_weighting: str = "sample",
    ignore_index: int = IGNORE_INDEX,
) -> Tensor:
    """A loss of `LOSS_TYPES` with per-class weights `weights` (shape [C]) applied as w[y_b] to every
    term of example b, normalised by the batch size B (`reduction="batch"`, the paper) or by sum_b w[y_b]
    (`reduction="weighted_mean"`, what `F.cross_entropy(weight=w)` does).  Any weighting scheme plugs in here.

    `labels` are class indices [B], multi-hot rows [B, C] (sigmoid and focal; weighted as `multilabel_weighting`
    says) or dense class indices [B, d1, ...] for logits [B, C, d1, ...] (positions equal to `ignore_index`
    left out); see cbl.losses.targets.  `validate=False` skips the checks that read values (a host sync)."""
    gamma = check_loss_options(loss_type, gamma, reduction, multilabel_weighting)
    ignore_index = check_ignore_index(ignore_index)
    if validate:
        check_same_device(logits, labels)
    form = target_form(logits, labels, loss_type)
    if form == "dense":
        if validate:
            check_dense(labels, logits.shape[1], ignore_index)
        logits, labels = flatten_dense(logits, labels, ignore_index)
        form = "index"
    if validate:
        if form == "index":
            check_logits_labels(logits, labels, num_classes=weights.shape[0])
        else:
            check_logits(logits, num_classes=weights.shape[0])
            check_multi_hot(labels)
    if logits.shape[0] == 0:
        return logits.sum().to(_compute_dtype(logits))  # zero, and keeps the graph
    per_class = multilabel_weighting == "class" and loss_type != "softmax"
    if form == "index" and not per_class:
        if labels.dtype != torch.long:
            labels = labels.long()  # int32/uint8 indices are fine; the gathers below want int64
        loss = _INDEX_LOSSES[loss_type](logits, labels, weights, gamma)
        if reduction == "weighted_mean":
            # sum_b w[y_b] l_b / sum_b w[y_b] = (the batch mean) * B / sum_b w[y_b]
            loss = loss * (labels.numel() / _example_weights(weights, labels, loss.dtype).sum())
        return loss
    positive = F.one_hot(labels.long(), logits.shape[1]).bool() if form == "index" else labels != 0
    return _binary_loss(logits, positive, weights, gamma, per_class, reduction)


def softmax_loss(logits: Tensor, labels: Tensor, weights: Tensor, gamma: float = 0.0, validate: bool = True,
                 reduction: str = "batch", *, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """1/B * sum_b w[y_b] * CE(z_b, y_b), for class indices or dense targets (`weighted_loss`)."""
    return weighted_loss(logits, labels, weights, "softmax", gamma, validate, reduction, ignore_index=ignore_index)


def sigmoid_loss(logits: Tensor, labels: Tensor, weights: Tensor, gamma: float = 0.0, validate: bool = True,
                 reduction: str = "batch", *, multilabel_weighting: str = "sample",
                 ignore_index: int = IGNORE_INDEX) -> Tensor:
    """1/B * sum_b w[y_b] * sum_c BCE(z_bc, 1[c = y_b]), for class indices, multi-hot or dense targets
    (`weighted_loss`; gamma must be 0)."""
    return weighted_loss(logits, labels, weights, "sigmoid", gamma, validate, reduction,
                         multilabel_weighting=multilabel_weighting, ignore_index=ignore_index)


def focal_loss(logits: Tensor, labels: Tensor, weights: Tensor, gamma: float = 0.0, validate: bool = True,
               reduction: str = "batch", *, multilabel_weighting: str = "sample",
               ignore_index: int = IGNORE_INDEX) -> Tensor:
    """1/B * sum_b w[y_b] * sum_c (1 - p_t)**gamma * BCE(z_bc, 1[c = y_b]), for class indices, multi-hot or
    dense targets (`weighted_loss`)."""
    return weighted_loss(logits, labels, weights, "focal", gamma, validate, reduction,
                         multilabel_weighting=multilabel_weighting, ignore_index=ignore_index)


#: name -> loss on given per-class weights, f(logits, labels, weights, gamma)
LOSS_TYPES: dict[str, LossFn] = {
    "softmax": softmax_loss,
    "sigmoid": sigmoid_loss,
    "focal": focal_loss,
}


def class_balanced_loss(
    logits: Tensor,
    labels: Tensor,
    samples_per_class: Counts,
    loss_type: str,
    beta: float,
    gamma: float = 0.0,
    *,
    reduction: str = "batch",
    validate: bool = True,
    multilabel_weighting: str = "sample",
    ignore_index: int = IGNORE_INDEX,
) -> Tensor:
    """Class-balanced softmax / sigmoid / focal loss (a scalar).

    Args:
        logits: [B, C] float tensor (any float dtype; half precision is computed in float32), or [B, C, d1, ...]
            with dense targets.
        labels: [B] integer class indices; [B, C] multi-hot 0/1 rows (float or bool; sigmoid and focal only);
            or [B, d1, ...] dense class indices for logits [B, C, d1, ...].
        samples_per_class: training-set count of each class (length C, all >= 1; `samples_per_class()` counts them).
        loss_type: "softmax", "sigmoid" or "focal".
        beta: in [0, 1); 0 gives the unweighted loss.
        gamma: focal exponent >= 0 (only for loss_type="focal"; 0 gives the sigmoid loss).
        reduction: "batch" (divide by B, the paper and the authors' code) or "weighted_mean" (divide by
            sum_b w[y_b], as `F.cross_entropy(weight=w)` does).
        validate: check shapes, dtypes, devices and label values (reads the labels on the host: a device sync).
        multilabel_weighting: "sample" (one weight per example, the mean weight of its positives; the authors'
            weighting for one-hot rows) or "class" (each class's binary term weighted by that class's weight).
        ignore_index: dense target positions with this value are left out (class indices [B] must all be classes).
    """
    check_loss_type(loss_type)
    weights = class_balanced_weights(samples_per_class, beta)
    return weighted_loss(logits, labels, weights, loss_type, gamma, validate, reduction,
                         multilabel_weighting=multilabel_weighting, ignore_index=ignore_index)


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
        *,
        multilabel_weighting: str = "sample",
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__()
        self.gamma = check_loss_options(loss_type, gamma, reduction, multilabel_weighting)
        self.loss_type, self.reduction, self.multilabel_weighting = loss_type, reduction, multilabel_weighting
        self.ignore_index = check_ignore_index(ignore_index)
        self.validate = validate
        w = torch.as_tensor(weights, dtype=torch.float32).detach().clone()
        if w.dim() != 1 or w.numel() == 0 or not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
            raise ValueError(f"weights must be a non-empty 1-D vector of finite numbers >= 0; got {weights!r}")
        self.register_buffer("weights", w)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """The loss (a scalar) of logits [B, C] (or [B, C, d1, ...]) against class indices [B], multi-hot rows
        [B, C] or dense class indices [B, d1, ...] (`weighted_loss`)."""
        return weighted_loss(logits, labels, self.weights, self.loss_type, self.gamma, validate=self.validate,
                             reduction=self.reduction, multilabel_weighting=self.multilabel_weighting,
                             ignore_index=self.ignore_index)

    def set_epoch(self, epoch: int) -> None:
        """Nothing to do: these weights do not depend on the epoch."""

    def _options_repr(self) -> str:
        """The options that differ from their defaults, for extra_repr."""
        extra = "" if self.reduction == "batch" else f", reduction={self.reduction!r}"
        if self.multilabel_weighting != "sample":
            extra += f", multilabel_weighting={self.multilabel_weighting!r}"
        return extra + ("" if self.ignore_index == IGNORE_INDEX else f", ignore_index={self.ignore_index}")

    def extra_repr(self) -> str:
        return f"loss_type={self.loss_type!r}, gamma={self.gamma:g}, num_classes={self.weights.numel()}{self._options_repr()}"


class ClassBalancedLoss(WeightedLoss):
    """`class_balanced_loss` as a module; the weights are a buffer, so `.to(device)` moves them.

    Args (as `class_balanced_loss`, which documents the targets each loss type takes):
        samples_per_class: training-set count of each class (length C, all >= 1).
        loss_type: "softmax", "sigmoid" or "focal".
        beta: in [0, 1), required: 0 is the unweighted loss, the paper's CIFAR choices are 0.9-0.9999.
        gamma: focal exponent >= 0 (loss_type="focal" only).
        validate: check shapes, dtypes, devices and label values on every call (a host sync; cbl.train checks the
            dataset's labels once and passes False).
        reduction: "batch" (divide by B, the paper) or "weighted_mean" (divide by sum_b w[y_b]).
        multilabel_weighting: "sample" or "class", for multi-hot targets.
        ignore_index: dense target positions with this value are left out.

    Example:
        >>> crit = ClassBalancedLoss([5000, 500, 50], loss_type="focal", beta=0.999, gamma=0.5)
        >>> loss = crit(model(x), y)
    """

    def __init__(
        self,
        samples_per_class: Counts,
        loss_type: str = "softmax",
        beta: float | None = None,
        gamma: float = 0.0,
        validate: bool = True,
        reduction: str = "batch",
        *,
        multilabel_weighting: str = "sample",
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        check_loss_type(loss_type)
        if beta is None:  # no default: a "class-balanced" loss that silently did not balance would be easy to miss
            raise ValueError("ClassBalancedLoss needs beta, a number in [0, 1) (beta=0 gives the unweighted loss)")
        self_beta = check_beta(beta)
        super().__init__(class_balanced_weights(samples_per_class, self_beta), loss_type, gamma, validate, reduction,
                         multilabel_weighting=multilabel_weighting, ignore_index=ignore_index)
        self.beta = self_beta

    def extra_repr(self) -> str:
        return (f"loss_type={self.loss_type!r}, beta={self.beta:g}, gamma={self.gamma:g}, "
                f"num_classes={self.weights.numel()}{self._options_repr()}")
