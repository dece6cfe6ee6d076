"""digits-MLT: an offline, seconds-long multi-label long-tailed demo built from scikit-learn's `load_digits`.

Each image is a 16x16 canvas of four 8x8 slots (2 x 2); a slot is empty (zeros) or holds one digit, and the image's
labels are the digits it shows (1 to `max_labels` distinct ones).  The split is deterministic (a function of
`subset_seed` alone):

  * the digit pool is split as in cbl/data/digits.py: the last `test_per_class` images of each digit in file order
    are the test pool, the rest the training pool, so no test digit image is ever seen in training;
  * training: class i anchors n_i = int(n_max * (1/IF) ** (i/(C-1))) images (the CIFAR-LT profile, digit 0 the
    head), each its anchor digit plus 0 .. max_labels-1 further distinct digits drawn with probability proportional
    to n_j: common digits co-occur with rare ones, as objects do in COCO-MLT / VOC-MLT (Wu et al., ECCV 2020), so
    the positives per class stay long-tailed;
  * test: every digit anchors `test_per_class` images whose further digits are drawn uniformly, so every class
    has test positives and the test set is balanced in its anchors.

Pixels are rescaled to uint8 0..255 like digits-LT; targets are multi-hot uint8 rows [N, 10].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cbl.data.long_tail import check_imbalance_factor, check_int, long_tail_counts
from cbl.data.provenance import DIGITS_SOURCE, DataSource

DIGITS_MLT_N_MAX = 300
DIGITS_MLT_IMBALANCE = 50.0  # anchors 300 .. 6: head, medium and tail classes all occur (cbl.evaluation.multilabel)
DIGITS_MLT_TEST_PER_CLASS = 40
DIGITS_MLT_MAX_LABELS = 3
SLOTS = 4  # 2 x 2 slots of 8 x 8
SIDE = 8


@dataclass(frozen=True)
class MultiLabelArrays:
    """A multi-label training and test set held as arrays (uint8 images [N, H, W, 1], uint8 targets [N, C])."""

    x_train: np.ndarray
    t_train: np.ndarray
    x_test: np.ndarray
    t_test: np.ndarray
    class_names: list[str]
    source: DataSource


def _compose(rng: np.random.Generator, anchors: np.ndarray, pools: list[np.ndarray], images: np.ndarray,
             extra_p: np.ndarray, max_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """One canvas per anchor class: the anchor digit plus further distinct digits drawn with probabilities extra_p."""
    c = len(pools)
    x = np.zeros((len(anchors), 2 * SIDE, 2 * SIDE, 1), dtype=np.uint8)
    t = np.zeros((len(anchors), c), dtype=np.uint8)
    for k, anchor in enumerate(anchors.tolist()):
        others = np.delete(np.arange(c), anchor)
        p = np.delete(extra_p, anchor)
        extra = int(rng.integers(0, max_labels))
        labels = [anchor, *rng.choice(others, size=extra, replace=False, p=p / p.sum()).tolist()]
        for slot, label in zip(rng.permutation(SLOTS).tolist(), labels):
            row, col = divmod(slot, 2)
            digit = images[rng.choice(pools[label])]
            x[k, row * SIDE:(row + 1) * SIDE, col * SIDE:(col + 1) * SIDE, 0] = digit
            t[k, label] = 1
    return x, t


def load_digits_mlt(imbalance_factor: float = DIGITS_MLT_IMBALANCE, subset_seed: int = 0,
                    n_max: int = DIGITS_MLT_N_MAX, test_per_class: int = DIGITS_MLT_TEST_PER_CLASS,
                    max_labels: int = DIGITS_MLT_MAX_LABELS) -> MultiLabelArrays:
    """The multi-label long-tailed digits (see the module docstring)."""
    from sklearn.datasets import load_digits  # imported here: only the demos need scikit-learn

    imbalance_factor = check_imbalance_factor(imbalance_factor)
    subset_seed = check_int("subset_seed", subset_seed, 0)
    n_max, test_per_class = check_int("n_max", n_max, 1), check_int("test_per_class", test_per_class, 1)
    max_labels = check_int("max_labels", max_labels, 1)
    if max_labels > SLOTS:
        raise ValueError(f"max_labels must be at most {SLOTS} (the slots of an image); got {max_labels}")
    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
    y = d.target.astype(np.int64)
    c = int(y.max()) + 1
    train_pools, test_pools = [], []
    for label in range(c):
        members = np.flatnonzero(y == label)
        if len(members) <= test_per_class:
            raise ValueError(f"test_per_class must be < {len(members)} (the size of digit class {label}); got {test_per_class}")
        train_pools.append(members[:-test_per_class])
        test_pools.append(members[-test_per_class:])
    counts = np.asarray(long_tail_counts(n_max, c, imbalance_factor))
    rng = np.random.default_rng(np.random.SeedSequence([subset_seed, 0x3D1]))
    train_anchors = np.repeat(np.arange(c), counts)
    x_train, t_train = _compose(rng, train_anchors, train_pools, images, counts.astype(np.float64), max_labels)
    test_anchors = np.repeat(np.arange(c), test_per_class)
    x_test, t_test = _compose(rng, test_anchors, test_pools, images, np.ones(c), max_labels)
    return MultiLabelArrays(x_train, t_train, x_test, t_test, [str(k) for k in range(c)], DIGITS_SOURCE)
