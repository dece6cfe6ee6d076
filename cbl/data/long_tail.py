"""Long-tailed subsets (Cui et al., CVPR 2019, Sec. 5.1; the authors' generate_cifar_tfrecords_im.py).

Class sizes follow an exponential profile with class 0 the head:

    n_i = int(n_max * (1 / IF) ** (i / (C - 1))),   i = 0 .. C-1,

so n_0 = n_max and n_{C-1} = int(n_max / IF).  This is evaluated exactly as in the authors' data code,
``int(img_max * (imb_factor ** (cls_idx / (cls_num - 1.0))))`` with ``imb_factor = 1 / IF``, so the totals
match the paper (CIFAR-10 IF=100: 12406 images; CIFAR-100 IF=100: 10847).

Which images of a class are kept: a seeded shuffle of the class's indices (taken in dataset order), then
the first n_i.  The shuffle of class c uses its own bit generator ``PCG64(SeedSequence([seed, c]))`` and
sorts the class's indices by one raw 64-bit draw each (stable sort).  NumPy guarantees the raw streams of
its bit generators across versions and platforms (NEP 19), unlike ``Generator.permutation``, so a subset
is the same on every machine.  Because each class has its own stream and the kept images are a prefix of
it, subsets for larger IF are nested inside those for smaller IF at the same seed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np


def check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def check_imbalance_factor(imbalance_factor) -> float:
    """IF = n_max / n_min >= 1; IF = 1 is the balanced dataset."""
    if (
        isinstance(imbalance_factor, bool)
        or not isinstance(imbalance_factor, numbers.Real)
        or not math.isfinite(float(imbalance_factor))
        or float(imbalance_factor) < 1.0
    ):
        raise ValueError(f"imbalance_factor must be a finite number >= 1; got {imbalance_factor!r}")
    return float(imbalance_factor)


def long_tail_counts(n_max: int, num_classes: int, imbalance_factor: float) -> list[int]:
    """Per-class sizes n_i = int(n_max * (1/IF) ** (i / (C-1))), head first."""
    n_max = check_int("n_max", n_max, 1)
    num_classes = check_int("num_classes", num_classes, 2)
    imb_factor = 1.0 / check_imbalance_factor(imbalance_factor)
    # same float expression, in the same order, as the authors' code: totals depend on the rounding
    return [int(n_max * (imb_factor ** (i / (num_classes - 1.0)))) for i in range(num_classes)]


def class_shuffle(class_indices: np.ndarray, seed: int, class_id: int) -> np.ndarray:
    """The seeded shuffle of one class's indices: stable argsort of one raw PCG64 draw per index."""
    bits = np.random.PCG64(np.random.SeedSequence([seed, class_id]))
    keys = bits.random_raw(len(class_indices))
    return class_indices[np.argsort(keys, kind="stable")]


def long_tail_indices(labels, counts: Sequence[int], seed: int) -> np.ndarray:
    """Indices (int64, ascending) of the subset keeping the first counts[c] of class c's seeded shuffle."""
    seed = check_int("seed", seed, 0)
    labels = np.asarray(labels)
    if labels.ndim != 1 or not (np.issubdtype(labels.dtype, np.integer) or labels.size == 0):
        raise ValueError(f"labels must be a 1-D array of integer class indices; got shape {labels.shape}, dtype {labels.dtype}")
    counts = [check_int(f"counts[{c}]", n, 0) for c, n in enumerate(counts)]
    if labels.size and (labels.min() < 0 or labels.max() >= len(counts)):
        bad = labels[(labels < 0) | (labels >= len(counts))][0]
        raise ValueError(f"labels must lie in [0, {len(counts)}) (one count per class); got label {int(bad)}")
    kept = []
    for c, n in enumerate(counts):
        members = np.flatnonzero(labels == c)
        if len(members) < n:
            raise ValueError(f"class {c} has {len(members)} images but the long-tail profile asks for {n}")
        kept.append(class_shuffle(members, seed, c)[:n])
    return np.sort(np.concatenate(kept)).astype(np.int64) if kept else np.zeros(0, np.int64)


def long_tail_subset(labels, num_classes: int, imbalance_factor, n_max=None, seed: int = 0,
                     class_names: Sequence[str] | None = None) -> tuple[np.ndarray, list[int]]:
    """(kept indices, counts n_i) of the long-tailed subset of a labelled image set of your own.

    n_max (the head class's size) defaults to the smallest class count, so that every class can supply its n_i
    (the profile only shrinks from there); a class with fewer images than its n_i is refused, naming the class.
    """
    labels = np.asarray(labels)
    have = np.bincount(labels, minlength=num_classes) if labels.size else np.zeros(num_classes, np.int64)
    n_max = int(have.min()) if n_max is None else check_int("n_max", n_max, 1)
    counts = long_tail_counts(n_max, num_classes, imbalance_factor)
    short = [c for c in range(num_classes) if have[c] < counts[c]]
    if short:
        c = short[0]
        name = f"{class_names[c]!r} (label {c})" if class_names is not None else f"label {c}"
        raise ValueError(f"class {name} has {int(have[c])} images but the long-tail profile n_i = int({n_max} * "
                         f"(1/{imbalance_factor:g}) ** (i/{num_classes - 1})) asks for {counts[c]} "
                         f"({len(short)} classes short); lower dataset.n_max (null = the smallest class count, {int(have.min())})")
    return long_tail_indices(labels, counts, seed), counts
