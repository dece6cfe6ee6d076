"""From a `loss` config node to the training criterion (an nn.Module on the training device).

`loss.name` picks the loss: the paper's softmax / sigmoid / focal (cbl.losses.class_balanced), or, beyond the paper, ldam /
balanced_softmax / logit_adjusted (cbl.losses.logit_adjustment).  The per-class weights are `loss.weighting`
(cbl.losses.weighting): effective_number (the class-balanced w_i = (1 - beta) / (1 - beta**n_i) with `loss.beta`;
beta = 0: no re-weighting), inverse or inverse_sqrt, all normalised to sum to C.  `loss.drw_epoch` defers
them (all ones until then; Cao et al. 2019), `loss.reduction` divides the weighted sum by B (the paper) or by
sum_b w[y_b] (weighted_mean), `loss.gamma` is the focal exponent, `loss.multilabel_weighting` how the sigmoid / focal
terms of a multi-hot row are weighted (sample | class, cbl.losses.targets).  Counts always come from the whole
training set (`samples_per_class`), never from a batch.

Every criterion has `set_epoch(epoch)`; cbl.train calls it before each epoch (only DRW depends on it).

`method_label` names the method a run belongs to for the results tables: the paper's own configurations
(softmax / sigmoid / focal, effective-number weights, no deferral, instance sampling, reduction by B) are
labelled by the loss name alone, which is how cbl.reporting.runs recognises Table 2/3 runs; anything else gets its own
label (e.g. inverse_freq, cb_resample, drw, ldam_drw, balanced_softmax).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import nn

from cbl.losses.class_balanced import LOSS_TYPES, WeightedLoss
from cbl.losses.logit_adjustment import BalancedSoftmaxLoss, LDAMLoss, LogitAdjustedLoss
from cbl.losses.weighting import DeferredReweighting, class_weights

#: the paper's losses (cbl.losses.class_balanced)
PAPER_LOSS_NAMES = tuple(LOSS_TYPES)
#: losses beyond the paper (cbl.losses.logit_adjustment)
EXTRA_LOSS_NAMES = ("ldam", "balanced_softmax", "logit_adjusted")
LOSS_NAMES = PAPER_LOSS_NAMES + EXTRA_LOSS_NAMES

_WEIGHTING_LABELS = {"inverse": "inverse_freq", "inverse_sqrt": "inverse_sqrt_freq"}
_SAMPLER_LABELS = {"class_balanced": "cb_resample", "sqrt": "sqrt_resample"}


def head_type(loss_name: str) -> str:
    """The classifier a loss wants: sigmoid-based losses start at the 1/C prior; LDAM uses a cosine classifier."""
    if loss_name in ("sigmoid", "focal"):
        return loss_name
    return "cosine" if loss_name == "ldam" else "softmax"


def method_label(loss_cfg: Mapping, sampler: str = "instance") -> str:
    """The method name tables group by.  The paper's own configurations are labelled by the loss name alone
    (which is how cbl.reporting.runs recognises Table 2/3 runs); every other configuration gets a label of its own,
    its parts joined by "+" when several apply (e.g. "inverse_freq+drw", "balanced_softmax+cb_resample")."""
    name = str(loss_cfg["name"])
    drw = loss_cfg.get("drw_epoch") is not None
    parts = []
    if name == "ldam":
        parts.append("ldam_drw" if drw else "ldam")
    elif name in EXTRA_LOSS_NAMES:
        parts.append(name)
    weighting = loss_cfg.get("weighting", "effective_number")
    if weighting in _WEIGHTING_LABELS:
        parts.append(_WEIGHTING_LABELS[weighting])
    if drw and name != "ldam":
        parts.append("drw")
    if sampler in _SAMPLER_LABELS:
        parts.append(_SAMPLER_LABELS[sampler])
    if not parts and loss_cfg.get("reduction", "batch") != "batch":
        parts.append("weighted_mean")  # a paper loss normalised by sum_b w[y_b]: not what the paper computes
    return "+".join(parts) or name


def build_criterion(loss_cfg: Mapping, samples_per_class: Sequence[int]) -> nn.Module:
    """The criterion of a `loss` config node (see the module docstring); call `set_epoch(e)` before epoch e."""
    name = loss_cfg["name"]
    weights = class_weights(samples_per_class, loss_cfg.get("weighting", "effective_number"), float(loss_cfg["beta"]))
    reduction = loss_cfg.get("reduction", "batch")
    # labels were range-checked once when the data was built, so the per-step check (a host sync) is off
    if name in PAPER_LOSS_NAMES:
        loss: nn.Module = WeightedLoss(weights, name, float(loss_cfg["gamma"]), validate=False, reduction=reduction,
                                       multilabel_weighting=loss_cfg.get("multilabel_weighting", "sample"))
    elif name == "ldam":
        loss = LDAMLoss(samples_per_class, float(loss_cfg["max_m"]), float(loss_cfg["s"]), weights, reduction, validate=False)
    elif name == "balanced_softmax":
        loss = BalancedSoftmaxLoss(samples_per_class, weights, reduction, validate=False)
    elif name == "logit_adjusted":
        loss = LogitAdjustedLoss(samples_per_class, float(loss_cfg["tau"]), weights, reduction, validate=False)
    else:
        raise ValueError(f"loss.name must be one of {', '.join(LOSS_NAMES)}; got {name!r}")
    drw_epoch = loss_cfg.get("drw_epoch")
    return loss if drw_epoch is None else DeferredReweighting(loss, int(drw_epoch))
