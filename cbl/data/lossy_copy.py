"""JPEG-lossy copies of CIFAR: how a copy's compression is measured, and how to write a comparable copy.

A baseline JPEG is nearly idempotent: decoding an image, encoding it again with the quantisation tables and chroma
subsampling it was made with, and decoding once more changes almost no pixel, while any other setting re-quantises
it.  So the settings a copy was made with show up as a sharp minimum of the re-encoding error

    err(q, s) = mean over images and pixels of (x - decode(encode(x, quality=q, subsampling=s)))**2

over the quality q and the chroma subsampling s (Pillow's libjpeg encoder, which scales the standard IJG tables by
q).  `reencoding_errors` measures it; `scripts/lossy_copy.py measure` prints the grid and its minimum.

`jpeg_round_trip(images, quality, subsampling)` is the compression itself, and `write_lossy_copy` writes a CIFAR .npz
in the layout cbl reads (`dataset.npz=...`, cbl/data/cifar.py): x_train, y_train, x_test, y_test, class_names, the
images of each split stably grouped by class (the official order within a class), every image compressed once.
Its bytes depend on the JPEG library's encoder and decoder (libjpeg or libjpeg-turbo version, DCT method), so a
copy written elsewhere is comparable to another made with the same settings, not necessarily identical to it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence

import numpy as np

#: Pillow's names for the chroma subsampling of an encoded JPEG
SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}
#: the default grid: every 5 from 60 to 95, and finer around 75
QUALITIES = (60, 65, 70, 72, 74, 75, 76, 78, 80, 85, 90, 95)


def _pil():
    from PIL import Image  # Pillow comes with torchvision; only needed here

    return Image


def jpeg_round_trip(images: np.ndarray, quality: int, subsampling: str = "4:2:0") -> np.ndarray:
    """uint8 [N, H, W, 3] images, each encoded as a baseline JPEG at `quality` / `subsampling` and decoded again."""
    if subsampling not in SUBSAMPLING:
        raise ValueError(f"subsampling must be one of {', '.join(SUBSAMPLING)}; got {subsampling!r}")
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 95:
        raise ValueError(f"quality must be an integer in 1..95 (Pillow's useful range); got {quality!r}")
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be uint8 [N, H, W, 3]; got {images.dtype} {images.shape}")
    image_cls = _pil()
    out = np.empty_like(images)
    for i, x in enumerate(images):
        buffer = io.BytesIO()
        image_cls.fromarray(x, "RGB").save(buffer, format="JPEG", quality=int(quality),
                                           subsampling=SUBSAMPLING[subsampling])
        out[i] = np.asarray(image_cls.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return out


def reencoding_errors(images: np.ndarray, qualities: Iterable[int] = QUALITIES,
                      subsamplings: Sequence[str] = tuple(SUBSAMPLING)) -> dict[tuple[int, str], float]:
    """{(quality, subsampling): mean squared pixel difference between the images and their re-encoding}."""
    x = np.asarray(images)
    return {(q, s): float(np.mean((x.astype(np.float64) - jpeg_round_trip(x, q, s)) ** 2))
            for q in qualities for s in subsamplings}


def sample_images(images: np.ndarray, labels: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """`per_class` images of every class (seeded), so the measurement covers all classes evenly."""
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(labels == c), size=min(per_class, int((labels == c).sum())), replace=False)
              for c in np.unique(labels)]
    return images[np.sort(np.concatenate(picked))]


def grouped_by_class(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The images stably sorted by label: each class's images together, in their original order."""
    order = np.argsort(y, kind="stable")
    return x[order], y[order]


def write_lossy_copy(path: str | os.PathLike, x_train: np.ndarray, y_train, x_test: np.ndarray, y_test,
                     class_names: Sequence[str], quality: int = 75, subsampling: str = "4:2:0") -> None:
    """The .npz cbl reads with dataset.npz=..., every image through one JPEG round trip (module docstring)."""
    x_train, y_train = grouped_by_class(np.asarray(x_train), np.asarray(y_train, dtype=np.int64))
    x_test, y_test = grouped_by_class(np.asarray(x_test), np.asarray(y_test, dtype=np.int64))
    np.savez(path, x_train=jpeg_round_trip(x_train, quality, subsampling), y_train=y_train,
             x_test=jpeg_round_trip(x_test, quality, subsampling), y_test=y_test,
             class_names=np.asarray(list(class_names), dtype=str))
