"""In-memory image datasets as uint8 arrays: the common currency of the CIFAR-LT and digits-LT loaders.

Images are uint8 [N, H, W, C] (channels last, as the CIFAR pickles and the .npz store them), labels int64
in [0, num_classes).  `samples_per_class` are the training-set counts n_i that the class-balanced weights
(1 - beta) / (1 - beta**n_i) are computed from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cbl.data.provenance import DataSource


def check_images(name: str, x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"{name} must be uint8 [N, H, W, C] with C in (1, 3); got dtype {x.dtype}, shape {x.shape}")
    return x


def check_labels(name: str, y, n: int, num_classes: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
        raise ValueError(f"{name} must be 1-D integer labels, one per image ({n}); got dtype {y.dtype}, shape {y.shape}")
    out = (y < 0) | (y >= num_classes)
    if out.any():
        raise ValueError(f"{name} must lie in [0, {num_classes}); got {int(y[out][0])} at position {int(np.flatnonzero(out)[0])}")
    return y.astype(np.int64, copy=False)


@dataclass(frozen=True)
class ArraySplit:
    """A training set (long-tailed) and the full balanced test set, held as arrays."""

    x_train: np.ndarray  # uint8 [N, H, W, C]
    y_train: np.ndarray  # int64 [N]
    x_test: np.ndarray  # uint8 [M, H, W, C]
    y_test: np.ndarray  # int64 [M]
    class_names: list[str]
    samples_per_class: list[int]
    source: DataSource | None = None  # where the images came from (cbl/data/provenance.py)

    def __post_init__(self) -> None:
        c = len(self.class_names)
        check_images("x_train", self.x_train)
        check_images("x_test", self.x_test)
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(f"train and test images differ in shape: {self.x_train.shape[1:]} vs {self.x_test.shape[1:]}")
        check_labels("y_train", self.y_train, len(self.x_train), c)
        check_labels("y_test", self.y_test, len(self.x_test), c)
        if list(self.samples_per_class) != np.bincount(self.y_train, minlength=c).tolist():
            raise ValueError("samples_per_class must equal the per-class counts of y_train")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image."""
        return tuple(self.x_train.shape[1:])
