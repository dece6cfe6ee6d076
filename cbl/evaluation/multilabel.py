"""Multi-label metrics: per-class average precision (AP), mAP, and mAP over the head / medium / tail classes.

Average precision of class c (the standard, non-interpolated definition; what scikit-learn's
`average_precision_score` computes and what Wu et al., ECCV 2020, report on COCO-MLT / VOC-MLT):

    AP_c = sum_k (R_k - R_{k-1}) * P_k

over the distinct scores s_1 > s_2 > ... of class c on the test set, P_k and R_k being the precision and recall of
"score >= s_k".  Equivalently, AP_c is the mean over the P_c positives i of the precision at their own score,

    AP_c = (1/P_c) sum_{i: t_ic = 1} |{j : s_jc >= s_ic, t_jc = 1}| / |{j : s_jc >= s_ic}|

so tied scores count together (a tie is neither an advantage nor a loss for the positives in it).  Only the ranking
matters: logits and sigmoid probabilities give the same AP (logits avoid the ties a saturated float32 sigmoid makes).

    mAP = mean over the classes with an AP of AP_c

A class without a positive test image has no AP: recall is undefined for it (scikit-learn warns and scores it 0, which
would pull the mean down for a class the test set cannot measure).  It is reported as None and left out of every
mean.  The released COCO-MLT and VOC-MLT test sets have positives for every class, so their mAP is the usual one.

Groups (the DB-loss code, github.com/wutong16/DistributionBalancedLoss, tools/create_longtail_dataset.py, which
writes the released class_split.pkl): with n_c the number of training images with label c,

    head    n_c >= 100        medium    20 <= n_c < 100        tail    n_c < 20

(the single-label many / medium / few split of cbl.evaluation.metrics differs at n = 100: there "many" is n > 100).  A group's
mAP is the mean AP of its classes, as the DB-loss test script computes it (tools/test.py, `--eval multiple`).
Every value is reported in percent, like the errors of the single-label runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: the class groups by training positives (module docstring): head n >= HEAD_MIN, tail n < TAIL_BELOW
HEAD_MIN = 100
TAIL_BELOW = 20
GROUPS = ("head", "medium", "tail")


def _check_pair(scores: np.ndarray, targets: np.ndarray) -> None:
    if scores.ndim != 2 or targets.shape != scores.shape:
        raise ValueError(f"scores and targets must both be [N, C]; got {scores.shape} and {targets.shape}")
    bad = (targets != 0) & (targets != 1)
    if bad.any():
        raise ValueError(f"targets must be 0 or 1; got {targets[bad][0].item()!r}")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")


def average_precision(scores, targets) -> list[float | None]:
    """AP_c (in percent) of every class c, None for a class without a positive; scores and targets [N, C]."""
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(targets)
    _check_pair(s, t)
    out: list[float | None] = []
    for c in range(s.shape[1]):
        positive = t[:, c] == 1
        total = int(positive.sum())
        if total == 0:
            out.append(None)
            continue
        order = np.argsort(-s[:, c], kind="stable")
        ranked, hits = s[order, c], positive[order]
        tp, seen = np.cumsum(hits), np.arange(1, len(hits) + 1)
        # the last position of each run of equal scores: a threshold takes the whole tie at once
        ends = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))
        tp_at, seen_at = tp[ends], seen[ends]
        recall_gain = np.diff(np.concatenate(([0], tp_at))) / total
        out.append(100.0 * float(np.sum(recall_gain * tp_at / seen_at)))
    return out


def mean_of(values: Sequence[float | None]) -> float | None:
    """The mean of the values that are not None; None when there are none."""
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def class_group(n: int) -> str:
    """"head", "medium" or "tail": the group of a class with n training positives (module docstring)."""
    return "head" if n >= HEAD_MIN else "tail" if n < TAIL_BELOW else "medium"


def group_map(per_class_ap: Sequence[float | None], samples_per_class: Sequence[int]) -> dict[str, float | None]:
    """mAP (%) of the head, medium and tail classes; None for a group without a class that has an AP."""
    if len(per_class_ap) != len(samples_per_class):
        raise ValueError(f"per_class_ap has {len(per_class_ap)} classes but samples_per_class has {len(samples_per_class)}")
    groups: dict[str, list[float | None]] = {g: [] for g in GROUPS}
    for ap, n in zip(per_class_ap, samples_per_class):
        groups[class_group(int(n))].append(ap)
    return {g: mean_of(v) for g, v in groups.items()}


def multilabel_metrics(scores, targets, samples_per_class: Sequence[int]) -> dict[str, Any]:
    """{"map", "per_class_ap", "group_map", "classes_without_positives"} of a test set's scores and targets."""
    ap = average_precision(scores, targets)
    return {"map": mean_of(ap), "per_class_ap": ap, "group_map": group_map(ap, samples_per_class),
            "classes_without_positives": sum(a is None for a in ap)}
