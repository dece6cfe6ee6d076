"""ILSVRC 2012 (ImageNet-1k) from the standard class-folder layout (Cui et al., CVPR 2019, Table 3).

    <root>/train/<wnid>/*.JPEG   and   <root>/val/<wnid>/*.JPEG
read with torchvision's ImageFolder; labels are the wnids in sorted order, and the class counts n_i of the
class-balanced weights are the per-class image counts of the train split.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cbl.data.image_folder import CheckedImageFolder
from cbl.data.provenance import sample_list_source

log = logging.getLogger(__name__)

LAYOUT_HELP = (
    "expected <root>/train/<wnid>/*.JPEG and <root>/val/<wnid>/*.JPEG: download ILSVRC2012 from https://image-net.org, "
    "extract the train tars into class folders and sort val into class folders (e.g. valprep.sh from "
    "https://github.com/soumith/imagenetloader.torch)"
)


def ilsvrc2012(root: str | os.PathLike, split: str = "train", transform=None) -> CheckedImageFolder:
    """One split as an ImageFolder of (transform(PIL RGB image), label)."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val'; got {split!r}")
    folder = Path(root) / split
    if not folder.is_dir():
        raise FileNotFoundError(f"ILSVRC 2012 {split} folder not found at {folder}; {LAYOUT_HELP}")
    try:
        ds = CheckedImageFolder(str(folder), transform=transform)
    except FileNotFoundError as e:  # raised for a folder without class subfolders or images
        raise FileNotFoundError(f"ILSVRC 2012 {split} folder {folder} holds no class folders with images ({e}); {LAYOUT_HELP}") from None
    if len(ds.classes) != 1000:
        log.warning("ILSVRC 2012 %s: %d class folders in %s (the official release has 1000)", split, len(ds.classes), folder)
    return ds


def ilsvrc2012_splits(root: str | os.PathLike, train_transform=None, val_transform=None):
    """(train, val, samples_per_class, data source); val must have the same class folders as train."""
    train = ilsvrc2012(root, "train", train_transform)
    val = ilsvrc2012(root, "val", val_transform)
    if val.classes != train.classes:
        extra = sorted(set(val.classes) ^ set(train.classes))[:5]
        raise ValueError(f"ILSVRC 2012 train and val class folders differ under {root} (e.g. {extra}); {LAYOUT_HELP}")
    source = sample_list_source("ilsvrc2012", Path(root), train.samples + val.samples,
                                (len(train), len(val), len(train.classes)))
    return train, val, train.samples_per_class(), source
