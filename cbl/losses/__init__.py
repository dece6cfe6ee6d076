"""cbl.losses: the class-balanced losses of Cui et al., CVPR 2019, and the losses compared beyond the paper.

    class_balanced.py    the paper: effective number E_n = (1 - beta**n) / (1 - beta), weights
                         w_i = (1 - beta) / (1 - beta**n_i) normalised to sum to C, and the class-balanced
                         softmax / sigmoid / focal losses, each divided by the batch size B
    weighting.py         the per-class weighting schemes (effective_number, inverse, inverse_sqrt) and deferred
                         re-weighting (Cao et al. 2019)
    logit_adjustment.py  LDAM, balanced softmax and the logit-adjusted loss (per-class logit offsets)
    criterion.py         a `loss` config node -> the training criterion, and the method label of a run
    targets.py           the target forms (class indices, multi-hot rows, dense masks with ignore_index), the two
                         multi-label weightings, and samples_per_class (n_i from a training set's targets)
    weights.py           `cbl-weights`: effective numbers and class-balanced weights over a grid of beta, printed

Import the paper's losses from here (`from cbl.losses import ClassBalancedLoss`); they need torch alone.
"""

from cbl.losses.class_balanced import (LOSS_TYPES, REDUCTIONS, ClassBalancedLoss, WeightedLoss, check_beta, check_gamma,
                                       class_balanced_loss, class_balanced_weights, effective_number, focal_loss,
                                       sigmoid_loss, softmax_loss, weighted_loss)
from cbl.losses.logit_adjustment import BalancedSoftmaxLoss, LDAMLoss, LogitAdjustedLoss
from cbl.losses.targets import IGNORE_INDEX, MULTILABEL_WEIGHTINGS, samples_per_class
from cbl.losses.weighting import WEIGHTINGS, DeferredReweighting, class_weights

__all__ = [
    "IGNORE_INDEX",
    "LOSS_TYPES",
    "MULTILABEL_WEIGHTINGS",
    "REDUCTIONS",
    "WEIGHTINGS",
    "BalancedSoftmaxLoss",
    "ClassBalancedLoss",
    "DeferredReweighting",
    "LDAMLoss",
    "LogitAdjustedLoss",
    "WeightedLoss",
    "check_beta",
    "check_gamma",
    "class_balanced_loss",
    "class_balanced_weights",
    "class_weights",
    "effective_number",
    "focal_loss",
    "samples_per_class",
    "sigmoid_loss",
    "softmax_loss",
    "weighted_loss",
]
