"""Evaluation metrics for long-tailed classification (Cui et al. report top-1 / top-5 error in percent,
Tables 2-3), per-class accuracy, and the many / medium / few-shot split of Liu et al., "Large-Scale Long-Tailed
Recognition in an Open World" (CVPR 2019): classes with > 100, 20..100 and < 20 training images.

Ties.  An example is top-k correct when the rank of its true class is < k, where the rank counts the classes
scored strictly higher plus the tied classes with a smaller index (a stable descending sort).  For k = 1 this
is exactly `logits.argmax(1) == labels` (argmax returns the first maximum), and the result never depends on
how `torch.topk` happens to order equal values.

Distributed evaluation.  `EvalAccumulator` keeps integer counts on the logits' device (no host sync per
batch); `all_reduce()` sums them over processes.  The counts are exact only when every eval image is seen
exactly once over all ranks: DistributedSampler pads the dataset with repeats to a multiple of the world
size, so shard the eval set without padding (or evaluate on one rank).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks) or len(set(ks)) != len(ks):
        raise ValueError(f"ks must be distinct positive integers; got {ks!r}")
    return ks


def _check_batch(logits: Tensor, labels: Tensor) -> None:
    if logits.dim() != 2:
        raise ValueError(f"logits must be 2-D [batch, classes]; got shape {tuple(logits.shape)}")
    if labels.dim() != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"labels must be 1-D with one entry per logits row: logits {tuple(logits.shape)}, labels {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices; got dtype {labels.dtype}")


def true_class_rank(logits: Tensor, labels: Tensor) -> Tensor:
    """0-based rank of each example's true class under a stable descending sort of its row (see module doc)."""
    labels = labels.long()
    target = logits.gather(1, labels[:, None])
    index = torch.arange(logits.shape[1], device=logits.device)
    ahead = (logits > target) | ((logits == target) & (index[None, :] < labels[:, None]))
    return ahead.sum(dim=1)


def topk_correct(logits: Tensor, labels: Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, int]:
    """{k: number of examples whose true class is among the top min(k, C) scores}.  Syncs with the host once."""
    ks = _check_ks(ks)
    _check_batch(logits, labels)
    rank = true_class_rank(logits, labels)
    counts = torch.stack([(rank < k).sum() for k in ks]).tolist()  # k > C: every rank is < C <= k
    return dict(zip(ks, counts))


class EvalAccumulator:
    """Top-k errors and per-class top-1 accuracy over an evaluation pass.

    >>> acc = EvalAccumulator(num_classes=10)
    >>> for x, y in loader: acc.update(model(x), y)
    >>> acc.all_reduce()          # no-op unless torch.distributed is initialised
    >>> acc.compute()             # {"top1_err": 12.3, "top5_err": 0.9, "per_class_acc": [...], "n": 10000}
    """

    def __init__(self, num_classes: int, ks: Sequence[int] = (1, 5), device: torch.device | str | None = None) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}")
        self.num_classes = num_classes
        self.ks = _check_ks(ks)
        self.reset(device)

    def reset(self, device: torch.device | str | None = None) -> None:
        device = torch.device("cpu") if device is None else torch.device(device)
        self.topk = torch.zeros(len(self.ks), dtype=torch.long, device=device)  # correct in top-k, per k
        self.class_correct = torch.zeros(self.num_classes, dtype=torch.long, device=device)  # top-1, per class
        self.class_total = torch.zeros(self.num_classes, dtype=torch.long, device=device)

    @torch.no_grad()
    def update(self, logits: Tensor, labels: Tensor) -> None:
        _check_batch(logits, labels)
        if logits.shape[1] != self.num_classes:
            raise ValueError(f"logits have {logits.shape[1]} classes but the accumulator was built for {self.num_classes}")
        if self.topk.device != logits.device:
            if int(self.class_total.sum()):
                raise ValueError(f"update on {logits.device} after updates on {self.topk.device}; keep one device per pass")
            self.reset(logits.device)  # follow the model's device on the first batch
        labels = labels.to(logits.device).long()
        rank = true_class_rank(logits, labels)
        self.topk += torch.stack([(rank < k).sum() for k in self.ks])
        self.class_correct.index_add_(0, labels, (rank == 0).long())
        self.class_total.index_add_(0, labels, torch.ones_like(labels))

    def all_reduce(self) -> "EvalAccumulator":
        """Sum the counts over all processes (in place) when torch.distributed is initialised; returns self."""
        if dist.is_available() and dist.is_initialized():
            packed = torch.cat([self.topk, self.class_correct, self.class_total])  # one collective, not three
            dist.all_reduce(packed, op=dist.ReduceOp.SUM)
            k, c = len(self.ks), self.num_classes
            self.topk, self.class_correct, self.class_total = packed[:k], packed[k : k + c], packed[k + c :]
        return self

    def compute(self) -> dict:
        """{"top{k}_err": % for each k, "per_class_acc": [% or None per class], "n": int}.

        Errors are 100 * (1 - correct / n).  A class with no evaluation example has accuracy None.
        """
        total = self.class_total.cpu().tolist()
        correct = self.class_correct.cpu().tolist()
        topk = self.topk.cpu().tolist()
        n = sum(total)
        if n == 0:
            raise ValueError("EvalAccumulator.compute(): no examples were accumulated")
        out: dict = {f"top{k}_err": 100.0 * (1.0 - c / n) for k, c in zip(self.ks, topk)}
        out["per_class_acc"] = [100.0 * c / t if t else None for c, t in zip(correct, total)]
        out["n"] = n
        return out


def shot_group(n: int, many_threshold: int = 100, few_threshold: int = 20) -> str:
    """"many" (n > many_threshold), "few" (n < few_threshold) or "medium": the group of a class with n training images."""
    return "many" if n > many_threshold else "few" if n < few_threshold else "medium"


def shot_accuracy(
    per_class_acc: Sequence[float | None],
    samples_per_class: Sequence[int],
    many_threshold: int = 100,
    few_threshold: int = 20,
) -> dict[str, float | None]:
    """Mean per-class top-1 accuracy (%) over many-shot (n > many_threshold), few-shot (n < few_threshold)
    and medium-shot (few_threshold <= n <= many_threshold) classes, n = training images of the class.

    With the defaults: n = 101 is many, n = 100 and n = 20 are medium, n = 19 is few.  A group with no class
    (or whose classes all have accuracy None, i.e. no eval image) is None.
    """
    if len(per_class_acc) != len(samples_per_class):
        raise ValueError(f"per_class_acc has {len(per_class_acc)} classes but samples_per_class has {len(samples_per_class)}")
    for name, v in (("many_threshold", many_threshold), ("few_threshold", few_threshold)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number; got {v!r}")
    if few_threshold > many_threshold:
        raise ValueError(f"few_threshold ({few_threshold}) must be <= many_threshold ({many_threshold})")
    groups: dict[str, list[float]] = {"many": [], "medium": [], "few": []}
    for acc, n in zip(per_class_acc, samples_per_class):
        if acc is None:
            continue
        groups[shot_group(n, many_threshold, few_threshold)].append(float(acc))
    return {g: (sum(v) / len(v) if v else None) for g, v in groups.items()}
