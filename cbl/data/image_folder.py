"""Your own images in class folders (`dataset=imagefolder`), read with torchvision's ImageFolder:

    <root>/train/<class name>/<image>   and   <root>/val/<class name>/<image>

images with the extensions of IMAGE_EXTENSIONS, at any depth below the class folder.  Labels are the class
folder names in sorted order (label 0 = the first name); val must hold the same class folders as train.  The
class counts n_i of the class-balanced weights (and the many / medium / few-shot groups) are the per-class
counts of the training images used.

An optional long-tailed subset of the train folder (`imbalance_factor`) is taken by cbl/data/custom.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from cbl.data.images import open_rgb
from cbl.data.provenance import DataSource, sample_list_source

IMAGE_EXTENSIONS = IMG_EXTENSIONS
LAYOUT = "expected <root>/train/<class>/<image> and <root>/val/<class>/<image> (docs/custom_data.md)"


class CheckedImageFolder(ImageFolder):
    """torchvision's ImageFolder reading its images with `open_rgb`: a damaged one names itself and its class."""

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        sample = open_rgb(path, target, self.classes[target])
        if self.transform is not None:
            sample = self.transform(sample)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return sample, target

    def samples_per_class(self) -> list[int]:
        """n_i: the images of each class, in label order (a class folder without images counts 0)."""
        return np.bincount(np.asarray(self.targets, dtype=np.int64), minlength=len(self.classes)).tolist()


class ClassFolders(CheckedImageFolder):
    """ImageFolder that can be restricted to a subset of its samples (the long-tailed subset)."""

    def keep(self, indices: np.ndarray) -> None:
        self.samples = [self.samples[i] for i in indices.tolist()]
        self.imgs = self.samples  # ImageFolder's alias of samples
        self.targets = [y for _, y in self.samples]


def _split(root: Path, split: str, transform) -> ClassFolders:
    folder = root / split
    if not folder.is_dir():
        raise FileNotFoundError(f"imagefolder: no {split} folder at {folder}; {LAYOUT}")
    try:
        # allow_empty: an empty class folder is reported below by name, rather than as torchvision's list
        ds = ClassFolders(str(folder), transform=transform, allow_empty=True)
    except FileNotFoundError:  # raised when the folder has no sub-folders at all
        raise FileNotFoundError(f"imagefolder: {folder} holds no class folders; {LAYOUT}") from None
    empty = [c for c, n in zip(ds.classes, ds.samples_per_class()) if n == 0]
    if empty:
        raise ValueError(f"imagefolder: class folder {folder / empty[0]} holds no images ({len(empty)} empty class "
                         f"folder(s): {empty[:5]}); images need one of the extensions {', '.join(IMAGE_EXTENSIONS)}")
    return ds


def _check_same_classes(train: ImageFolder, val: ImageFolder, root: Path) -> None:
    if val.classes == train.classes:
        return
    extra = sorted(set(val.classes) - set(train.classes))
    if extra:
        raise ValueError(f"imagefolder: val classes {extra[:5]} ({len(extra)} in all) have no train folder under {root}; "
                         "val must have the same class folders as train")
    missing = sorted(set(train.classes) - set(val.classes))
    raise ValueError(f"imagefolder: train classes {missing[:5]} ({len(missing)} in all) have no val folder under {root}; "
                     "val must have the same class folders as train (every class is evaluated)")


def image_folder_splits(root: str | os.PathLike, train_transform=None,
                        val_transform=None) -> tuple[ClassFolders, ClassFolders, DataSource]:
    """(train, val, data source) of the whole tree; labels index the sorted class folder names (train.classes)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"imagefolder: root folder {root} does not exist; {LAYOUT}")
    train = _split(root, "train", train_transform)
    val = _split(root, "val", val_transform)
    _check_same_classes(train, val, root)
    # the hash is over the sorted (relative path, label) list of the whole tree as read: a long-tailed subset of it
    # is recorded with the run (imbalance_factor, n_max, subset_seed), as for CIFAR-LT and its archive
    source = sample_list_source("imagefolder", root, train.samples + val.samples, (len(train), len(val), len(train.classes)))
    return train, val, source
