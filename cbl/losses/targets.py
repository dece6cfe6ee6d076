"""The target forms the class-balanced losses accept, the weight each binary term gets, and class counts.

Forms (C classes; what `target_form` tells apart from the shapes alone, without reading values):

    class indices   logits [B, C],            targets [B] integers in [0, C)
    multi-hot       logits [B, C],            targets [B, C] 0/1 (float or bool), any number of positives per row
    dense           logits [B, C, d1, ...],   targets [B, d1, ...] integers in [0, C) or ignore_index

Dense targets (segmentation masks, token labels) are the class-index loss of the valid positions: with
P = {(b, d1, ...) : t != ignore_index} and N_valid = |P|, the logits are moved to [N_valid, C] and

    L_dense = L_index(z[P], t[P])        (so divided by N_valid, as F.cross_entropy(ignore_index=...) does)

and L = 0 with a zero gradient when every position is ignored.

Weights of the binary terms.  The sigmoid and focal losses are sums of C binary terms per example,
l_bc = (1 - p_t)**gamma * BCE(z_bc, t_bc).  Cui et al. (Sec. 4, the class-balanced sigmoid and focal losses)
weight every term of example b by the class-balanced weight of its one label, w[y_b].  A multi-hot row t_b has
no single label; the two `multilabel_weighting`s are

    "sample":  L = 1/B * sum_b  omega_b * sum_c l_bc,
               omega_b = (sum_c t_bc w_c) / (sum_c t_bc)   (the mean weight of the row's positives),
               omega_b = mean_c w_c  (= 1 for weights normalised to sum to C)   for a row with no positive
    "class":   L = 1/B * sum_b  sum_c  w_c * l_bc

"sample" keeps the authors' per-example weighting: a one-hot row gives omega_b = w[y_b], exactly the
class-index loss; a row with k positives counts as one example weighted like its average label (between the
smallest and the largest of their weights); beta = 0 (all w_c = 1) gives the plain BCE summed over classes / B.
"class" reads the sigmoid loss as C binary problems, class c's problem having n_c positive samples, and
re-weights each by its own 1 / E_{n_c} (Cui et al., Sec. 3, applied per binary problem); a rare class then
keeps its weight on a row whose other positives are common.  With class indices the two coincide for the
softmax loss (one term per example, weighted w[y_b]); for the sigmoid and focal losses "class" weights the
binary terms of a class-index example per class as above.

Counts: `samples_per_class` gives n_c from the training set's targets in either form: class indices of
any shape (positions equal to ignore_index skipped) or multi-hot rows (positives per class).

Public API: `MULTILABEL_WEIGHTINGS`, `IGNORE_INDEX`, `samples_per_class`, `target_form`,
`check_multilabel_weighting`, `check_ignore_index`, `check_multi_hot`, `flatten_dense`, `example_weights`.
"""

from __future__ import annotations

import numbers
import warnings

import torch
from torch import Tensor

#: how the binary terms of a multi-hot row are weighted (see the module docstring)
MULTILABEL_WEIGHTINGS = ("sample", "class")
#: positions of dense targets with this value are left out (PyTorch's convention)
IGNORE_INDEX = -100


def check_multilabel_weighting(multilabel_weighting: str) -> str:
    if multilabel_weighting not in MULTILABEL_WEIGHTINGS:
        raise ValueError(f"multilabel_weighting must be one of {', '.join(MULTILABEL_WEIGHTINGS)}; "
                         f"got {multilabel_weighting!r}")
    return multilabel_weighting


def check_ignore_index(ignore_index: int) -> int:
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise ValueError(f"ignore_index must be an integer; got {ignore_index!r}")
    return int(ignore_index)


def _is_integer(t: Tensor) -> bool:
    return not (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool)


def target_form(logits: Tensor, targets: Tensor, loss_type: str) -> str:
    """"index", "multihot" or "dense", from the shapes and dtypes alone (no device sync); a ValueError naming
    the shapes when the targets fit no form, or multi-hot targets for the softmax loss."""
    if logits.dim() == 2 and targets.dim() == 1:
        return "index"  # the common case first: class indices keep their own checks (check_logits_labels)
    if logits.dim() < 2:
        raise ValueError(f"logits must be 2-D [batch, classes] (or [batch, classes, d1, ...] with dense targets); "
                         f"got shape {tuple(logits.shape)}")
    shape, got = tuple(logits.shape), tuple(targets.shape)
    if logits.dim() == 2:
        if got != shape:
            raise ValueError(f"targets must be class indices [B] = ({shape[0]},) or multi-hot [B, C] = {shape} for "
                             f"logits {shape}; got shape {got}")
        if loss_type == "softmax":
            raise ValueError(f"loss_type='softmax' takes class indices [B] = ({shape[0]},), not multi-hot targets of "
                             f"shape {got}; use loss_type='sigmoid' or 'focal' for several labels per example")
        if _is_integer(targets) or targets.is_complex():
            raise ValueError(f"multi-hot targets must be float or bool 0/1; got dtype {targets.dtype} "
                             f"(integer targets are class indices [B])")
        return "multihot"
    dense = (shape[0], *shape[2:])
    if got != dense:
        raise ValueError(f"targets for logits {shape} [B, C, d1, ...] must be dense class indices [B, d1, ...] = "
                         f"{dense}; got shape {got}")
    if not _is_integer(targets):
        raise ValueError(f"dense targets must be integer class indices; got dtype {targets.dtype}")
    return "dense"


def check_multi_hot(targets: Tensor, name: str = "multi-hot targets") -> None:
    """Every value 0 or 1 (a host sync, so the validated path only)."""
    if targets.dtype == torch.bool or targets.numel() == 0:
        return
    bad = (targets != 0) & (targets != 1)
    if bool(bad.any()):
        at = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{name} must be 0 or 1; got {targets[at].item():g} at {at}")


def check_dense(targets: Tensor, num_classes: int, ignore_index: int) -> None:
    """Every position a class in [0, C) or ignore_index (a host sync, so the validated path only)."""
    if targets.numel() == 0:
        return
    bad = (targets != ignore_index) & ((targets < 0) | (targets >= num_classes))
    if bool(bad.any()):
        at = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"dense targets must be class indices in [0, {num_classes}) or ignore_index={ignore_index}; "
                         f"got {int(targets[at])} at {at}")


def flatten_dense(logits: Tensor, targets: Tensor, ignore_index: int) -> tuple[Tensor, Tensor]:
    """logits [B, C, d1, ...] and targets [B, d1, ...] -> the valid positions as [N_valid, C] and [N_valid]."""
    c = logits.shape[1]
    flat = targets.reshape(-1)
    keep = flat != ignore_index
    # row r of the moved logits is the position of flat[r] (both in row-major order of (B, d1, ...))
    return logits.movedim(1, -1).reshape(-1, c)[keep], flat[keep]


def example_weights(weights: Tensor, positive: Tensor, dtype: torch.dtype) -> Tensor:
    """omega_b of multilabel_weighting="sample": the mean weight of row b's positives, mean(w) for none."""
    w = weights.to(device=positive.device, dtype=dtype)
    hot = positive.to(dtype)
    npos = hot.sum(dim=1)
    # the product keeps w_c exactly for the one positive of a one-hot row, so omega_b = w[y_b] bit for bit
    mean_pos = (hot * w).sum(dim=1) / npos.clamp(min=1)
    return torch.where(npos > 0, mean_pos, w.mean())


def samples_per_class(labels, num_classes: int, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """n_c of every class (int64, shape [num_classes], on the CPU) from a training set's targets.

    Args:
        labels: integer class indices of any shape ([N] labels, [B, H, W] segmentation masks, ...), positions
            equal to `ignore_index` skipped; or float / bool multi-hot rows [N, num_classes] (positives per class).
            An integer tensor is always class indices: cast integer 0 / 1 rows (uint8 arrays) with `.bool()` first;
            an integer [N, num_classes] tensor of 0 / 1 warns that it is being read as indices.
            Count over the whole training set: a batch misses classes, and a zero count has no class-balanced weight.
        num_classes: C.
        ignore_index: the value of unlabelled positions in class indices.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1; got {num_classes!r}")
    ignore_index = check_ignore_index(ignore_index)
    t = torch.as_tensor(labels)
    if t.is_complex():
        raise ValueError(f"labels must be integer class indices or float / bool multi-hot rows; got dtype {t.dtype}")
    if not _is_integer(t):
        if t.dim() != 2 or t.shape[1] != num_classes:
            raise ValueError(f"float / bool labels are multi-hot rows [N, num_classes] = [N, {num_classes}]; got shape "
                             f"{tuple(t.shape)} (class indices must be an integer tensor)")
        check_multi_hot(t, "multi-hot labels")
        return (t != 0).sum(dim=0).to(device="cpu", dtype=torch.int64)
    if t.dim() == 2 and t.shape[1] == num_classes > 2 and bool(((t == 0) | (t == 1)).all()):
        # integer rows of 0 / 1 are read as class indices (a mask), as documented; multi-hot rows are float or bool
        warnings.warn(f"samples_per_class: an integer [N, {num_classes}] tensor of 0 / 1 is counted as class indices "
                      f"(a mask), not as multi-hot rows; pass multi-hot rows as float or bool (targets.bool())",
                      stacklevel=2)
    flat = t.reshape(-1)
    flat = flat[flat != ignore_index]
    bad = (flat < 0) | (flat >= num_classes)
    if bool(bad.any()):
        raise ValueError(f"labels must be class indices in [0, {num_classes}) or ignore_index={ignore_index}; "
                         f"got {int(flat[bad][0])}")
    return torch.bincount(flat.long(), minlength=num_classes).to(device="cpu", dtype=torch.int64)
