"""Losses beyond the paper that change the logits by a per-class amount before a softmax cross-entropy.

C classes, n_j training samples of class j, N = sum_j n_j, pi_j = n_j / N, batch of B examples, logits z:

    LDAM (Cao, Wei, Gaidon, Arechiga, Ma, "Learning Imbalanced Datasets with Label-Distribution-Aware Margin
    Loss", NeurIPS 2019, Eq. 13):
        margins   m_j = K / n_j**(1/4),  K chosen so that max_j m_j = max_m (0.5 in the authors' code)
        loss      CE(s * (z - m_y * onehot(y)), y)   with scale s (30); the margin is subtracted from the
                  true-class logit only.  The authors use it on a cosine classifier (normalised features and
                  weights, z in [-1, 1]): cbl.losses.criterion.head_type("ldam") is "cosine".
    Balanced softmax (Ren, Yu, Sheng, Ma, Zhao, Yi, Li, "Balanced Meta-Softmax for Long-Tailed Visual
    Recognition", NeurIPS 2020, Eq. 4):
        loss      CE(z + log n, y),  i.e. the softmax over z_j + log n_j
    Logit-adjusted loss (Menon, Jayasumana, Rawat, Jain, Veit, Kumar, "Long-Tail Learning via Logit
    Adjustment", ICLR 2021, Eq. 10):
        loss      CE(z + tau * log pi, y);   tau = 1 is balanced softmax (softmax is shift-invariant and
                  log pi = log n - log N), tau = 0 the plain softmax cross-entropy.

The adjustment is for training only: predictions use the model's plain logits z.  Each loss can also carry
per-class weights w (for deferred re-weighting, cbl.losses.weighting), applied as w[y_b] to example b and reduced
like the class-balanced losses: divided by B (`reduction="batch"`) or by sum_b w[y_b] (`"weighted_mean"`,
the `F.cross_entropy(weight=w)` of Cao et al.'s code).  With all-ones weights the two are the same.
Everything is computed in float32 at least (half / bfloat16 logits are promoted), so the adjusted logits
s * z or z + log n do not lose precision in half.

Public API: `ldam_margins`, `ldam_loss`, `balanced_softmax_loss`, `logit_adjusted_loss`, `LDAMLoss`,
`BalancedSoftmaxLoss`, `LogitAdjustedLoss`, `check_scale`, `check_max_margin`, `check_tau`.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor, nn

from cbl.losses.class_balanced import Counts, as_counts, check_logits_labels, check_reduction, weighted_loss

LDAM_MAX_M = 0.5
LDAM_SCALE = 30.0


# --------------------------------------------------------------------------- validation
def _finite(x) -> bool:
    return not isinstance(x, bool) and isinstance(x, numbers.Real) and math.isfinite(float(x))


def check_scale(s: float) -> float:
    if not _finite(s) or float(s) <= 0:
        raise ValueError(f"s (the LDAM logit scale) must be a finite number > 0; got {s!r}")
    return float(s)


def check_max_margin(max_m: float) -> float:
    if not _finite(max_m) or float(max_m) <= 0:
        raise ValueError(f"max_m (the largest LDAM margin) must be a finite number > 0; got {max_m!r}")
    return float(max_m)


def check_tau(tau: float) -> float:
    if not _finite(tau) or float(tau) < 0:
        raise ValueError(f"tau (the logit-adjustment temperature) must be a finite number >= 0; got {tau!r}")
    return float(tau)


def _per_class(name: str, values: Tensor | Counts, c: int, device, dtype) -> Tensor:
    v = torch.as_tensor(values).to(device=device, dtype=dtype)
    if v.dim() != 1 or v.numel() != c:
        raise ValueError(f"{name} must have one entry per class ({c}); got shape {tuple(v.shape)}")
    return v


def _adjusted_ce(logits: Tensor, labels: Tensor, offsets: Tensor | None, scale: float, weights: Tensor | None,
                 reduction: str, margins: Tensor | None, validate: bool) -> Tensor:
    """weighted CE of scale * (z + offsets - m_y * onehot(y)); offsets / margins / weights are per class."""
    check_reduction(reduction)
    if validate:
        check_logits_labels(logits, labels)
    c = logits.shape[1]
    z = logits.to(torch.promote_types(logits.dtype, torch.float32))
    if labels.dtype != torch.long:
        labels = labels.long()
    if offsets is not None:
        z = z + _per_class("offsets", offsets, c, z.device, z.dtype)
    if margins is not None:
        m = _per_class("margins", margins, c, z.device, z.dtype)
        # subtract m_y at the true class only (out-of-place scatter_add keeps the graph, no one-hot matrix)
        z = z.scatter_add(1, labels[:, None], -m[labels][:, None])
    if scale != 1.0:
        z = z * scale
    w = torch.ones(c, dtype=z.dtype, device=z.device) if weights is None else _per_class("weights", weights, c, z.device, z.dtype)
    return weighted_loss(z, labels, w, "softmax", validate=False, reduction=reduction)


# --------------------------------------------------------------------------- LDAM
def ldam_margins(samples_per_class: Counts, max_m: float = LDAM_MAX_M) -> Tensor:
    """m_j = n_j**(-1/4) rescaled so that the largest (the rarest class's) is max_m (float32, shape [C])."""
    max_m = check_max_margin(max_m)
    m = as_counts(samples_per_class).pow(-0.25)
    return (m * (max_m / m.max())).to(torch.float32)


def ldam_loss(
    logits: Tensor,
    labels: Tensor,
    margins: Tensor | Counts,
    weights: Tensor | None = None,
    s: float = LDAM_SCALE,
    reduction: str = "batch",
    validate: bool = True,
) -> Tensor:
    """LDAM: 1/B sum_b w[y_b] * CE(s * (z_b - m_{y_b} * onehot(y_b)), y_b)  (or / sum_b w[y_b]).

    Args:
        logits: [B, C] (cosine similarities in the authors' setting).
        labels: [B] integer class indices.
        margins: per-class margins m (`ldam_margins(samples_per_class, max_m)`).
        weights: per-class weights w, None = all ones.
        s: logit scale > 0.
        reduction: "batch" (divide by B) or "weighted_mean" (divide by sum_b w[y_b], as F.cross_entropy(weight=w)).
    """
    return _adjusted_ce(logits, labels, None, check_scale(s), weights, reduction, margins, validate)


# --------------------------------------------------------------------------- balanced softmax / logit adjustment
def balanced_softmax_loss(
    logits: Tensor,
    labels: Tensor,
    samples_per_class: Counts,
    weights: Tensor | None = None,
    reduction: str = "batch",
    validate: bool = True,
) -> Tensor:
    """Balanced softmax: 1/B sum_b w[y_b] * CE(z_b + log n, y_b)  (w = 1 by default)."""
    log_n = as_counts(samples_per_class).log()
    return _adjusted_ce(logits, labels, log_n, 1.0, weights, reduction, None, validate)


def logit_adjusted_loss(
    logits: Tensor,
    labels: Tensor,
    samples_per_class: Counts,
    tau: float = 1.0,
    weights: Tensor | None = None,
    reduction: str = "batch",
    validate: bool = True,
) -> Tensor:
    """Logit-adjusted loss: 1/B sum_b w[y_b] * CE(z_b + tau * log pi, y_b), pi = n / N  (w = 1 by default)."""
    tau = check_tau(tau)
    n = as_counts(samples_per_class)
    return _adjusted_ce(logits, labels, tau * (n / n.sum()).log(), 1.0, weights, reduction, None, validate)


# --------------------------------------------------------------------------- modules
class _AdjustedLoss(nn.Module):
    """Shared by the modules: per-class `weights` (a buffer, all ones by default; what DRW switches),
    `set_epoch` (a no-op; see cbl.losses.weighting.DeferredReweighting), and the reduction."""

    weights: Tensor

    def __init__(self, num_classes: int, weights: Tensor | None, reduction: str, validate: bool) -> None:
        super().__init__()
        self.reduction = check_reduction(reduction)
        self.validate = validate
        w = torch.ones(num_classes) if weights is None else torch.as_tensor(weights, dtype=torch.float32).detach().clone()
        if w.shape != (num_classes,) or not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
            raise ValueError(f"weights must be {num_classes} finite numbers >= 0 (one per class); got {weights!r}")
        self.register_buffer("weights", w.to(torch.float32))

    def set_epoch(self, epoch: int) -> None:
        """Nothing to do: only deferred re-weighting depends on the epoch."""

    def _reduction_repr(self) -> str:
        return f"num_classes={self.weights.numel()}, reduction={self.reduction!r}"


class LDAMLoss(_AdjustedLoss):
    """`ldam_loss` with the margins of `samples_per_class` as a buffer.

    Example:
        >>> crit = LDAMLoss([5000, 500, 50], max_m=0.5, s=30)
        >>> loss = crit(cosine_logits, labels)
    """

    margins: Tensor

    def __init__(self, samples_per_class: Counts, max_m: float = LDAM_MAX_M, s: float = LDAM_SCALE,
                 weights: Tensor | None = None, reduction: str = "batch", validate: bool = True) -> None:
        margins = ldam_margins(samples_per_class, max_m)
        super().__init__(margins.numel(), weights, reduction, validate)
        self.max_m, self.s = float(max_m), check_scale(s)
        self.register_buffer("margins", margins)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        return _adjusted_ce(logits, labels, None, self.s, self.weights, self.reduction, self.margins, self.validate)

    def extra_repr(self) -> str:
        return f"max_m={self.max_m:g}, s={self.s:g}, {self._reduction_repr()}"


class LogitAdjustedLoss(_AdjustedLoss):
    """`logit_adjusted_loss` with the offsets tau * log pi as a buffer (float32)."""

    offsets: Tensor

    def __init__(self, samples_per_class: Counts, tau: float = 1.0, weights: Tensor | None = None,
                 reduction: str = "batch", validate: bool = True) -> None:
        n = as_counts(samples_per_class)
        super().__init__(n.numel(), weights, reduction, validate)
        self.tau = check_tau(tau)
        self.register_buffer("offsets", (self.tau * (n / n.sum()).log()).to(torch.float32))

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        return _adjusted_ce(logits, labels, self.offsets, 1.0, self.weights, self.reduction, None, self.validate)

    def extra_repr(self) -> str:
        return f"tau={self.tau:g}, {self._reduction_repr()}"


class BalancedSoftmaxLoss(_AdjustedLoss):
    """`balanced_softmax_loss` with the offsets log n as a buffer (float32)."""

    offsets: Tensor

    def __init__(self, samples_per_class: Counts, weights: Tensor | None = None, reduction: str = "batch",
                 validate: bool = True) -> None:
        n = as_counts(samples_per_class)
        super().__init__(n.numel(), weights, reduction, validate)
        self.register_buffer("offsets", n.log().to(torch.float32))

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        return _adjusted_ce(logits, labels, self.offsets, 1.0, self.weights, self.reduction, None, self.validate)

    def extra_repr(self) -> str:
        return self._reduction_repr()
