"""digits-LT: an offline, seconds-long long-tailed demo dataset built from scikit-learn's `load_digits`.

`load_digits` (1797 8x8 grey images, 10 classes, values 0..16) ships inside scikit-learn, so this needs no
network and no downloaded files.  The split is deterministic:
  * test: the last `test_per_class` images of each class in file order (balanced, like CIFAR's test set);
  * train: the long-tailed subset of the remaining pool with the CIFAR-LT profile and subset rule,
    n_i = int(n_max * (1/IF) ** (i/(C-1))) images of class i chosen by the seeded per-class shuffle.
Pixels are rescaled to uint8 0..255 (round(v * 255 / 16)) and shaped [N, 8, 8, 1], so the same
TensorLoader and normalisation serve it as CIFAR.
"""

from __future__ import annotations

import numpy as np

from cbl.data.arrays import ArraySplit
from cbl.data.long_tail import check_int, long_tail_counts, long_tail_indices
from cbl.data.provenance import DIGITS_SOURCE

DIGITS_N_MAX = 120  # the smallest class (174 images) minus 50 test images leaves 124
DIGITS_TEST_PER_CLASS = 50


def load_digits_lt(
    imbalance_factor: float = 10.0,
    subset_seed: int = 0,
    n_max: int = DIGITS_N_MAX,
    test_per_class: int = DIGITS_TEST_PER_CLASS,
) -> ArraySplit:
    """Long-tailed digits training set + balanced test set (see the module docstring)."""
    from sklearn.datasets import load_digits  # imported here: only this demo needs scikit-learn

    test_per_class = check_int("test_per_class", test_per_class, 1)
    d = load_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    y = d.target.astype(np.int64)
    num_classes = int(y.max()) + 1
    test_mask = np.zeros(len(y), dtype=bool)
    for c in range(num_classes):
        members = np.flatnonzero(y == c)
        if len(members) <= test_per_class:
            raise ValueError(f"test_per_class must be < {len(members)} (the size of digit class {c}); got {test_per_class}")
        test_mask[members[-test_per_class:]] = True
    pool = np.flatnonzero(~test_mask)
    counts = long_tail_counts(n_max, num_classes, imbalance_factor)
    keep = pool[long_tail_indices(y[pool], counts, subset_seed)]
    names = [str(c) for c in range(num_classes)]
    return ArraySplit(x[keep], y[keep], x[test_mask], y[test_mask], names, counts, source=DIGITS_SOURCE)
