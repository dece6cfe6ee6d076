"""From a `loss` config node to the training criterion (an nn.Module on the training device).

`loss.name` picks the loss family (softmax / sigmoid / focal), `loss.beta` the class-balanced weighting
w_i = (1 - beta) / (1 - beta**n_i) normalised to sum to C (beta = 0: no re-weighting), `loss.gamma` the focal
exponent.  Counts always come from the whole training set (`samples_per_class`), never from a batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import nn

from cbl.losses import LOSS_TYPES, ClassBalancedLoss

LOSS_NAMES = tuple(LOSS_TYPES)


def head_type(loss_name: str) -> str:
    """The classifier initialisation a loss wants: sigmoid-based losses start at the 1/C prior."""
    return loss_name if loss_name in ("sigmoid", "focal") else "softmax"


def method_label(loss_cfg: Mapping) -> str:
    """The method name tables group by.  The paper's own losses (effective-number weighting, beta = 0 being
    the plain loss) are labelled by the loss name alone, which is how cbl.runs recognises Table 2/3 runs."""
    return str(loss_cfg["name"])


def build_criterion(loss_cfg: Mapping, samples_per_class: Sequence[int]) -> nn.Module:
    # labels were range-checked once when the data was built, so the per-step check (a host sync) is off
    return ClassBalancedLoss(
        samples_per_class,
        loss_type=loss_cfg["name"],
        beta=float(loss_cfg["beta"]),
        gamma=float(loss_cfg["gamma"]),
        validate=False,
    )
