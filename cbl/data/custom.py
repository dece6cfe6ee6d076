"""Datasets beyond the paper's: your own images, and the ImageNet-LT / Places-LT benchmarks (docs/custom_data.md).

    imagefolder   <root>/train/<class>/<image>, <root>/val/<class>/<image>      (cbl/data/image_folder.py)
    listfile      `<path> <label>` lines: train_list, val_list, paths under root   (cbl/data/list_file.py)
    imagenet_lt   the released split files of Liu et al., CVPR 2019, in lists_dir, images under root
    places_lt     likewise

Config keys beyond build.py's common ones:
    imagefolder, listfile   imbalance_factor (null = the data as it is), n_max (null = the smallest class count),
                            subset_seed (0): an optional long-tailed subset of the training set,
                            n_i = int(n_max * (1/IF) ** (i/(C-1))), label 0 the head, as for CIFAR-LT
    listfile                train_list, val_list (relative to root unless absolute)
    imagenet_lt, places_lt  lists_dir (the folder of the split files), eval_split (test | val)
The class counts n_i of the class-balanced weights are those of the training images used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch.utils.data import Dataset

from cbl.data.list_file import LIST_BENCHMARKS, benchmark_lists, list_splits
from cbl.data.long_tail import long_tail_subset
from cbl.data.provenance import DataSource

CUSTOM_DATASETS = ("imagefolder", "listfile", "imagenet_lt", "places_lt")
SUBSET_KEYS = {"imbalance_factor", "n_max", "subset_seed"}
#: keys each dataset takes beyond build.py's common ones
CUSTOM_KEYS = {
    "imagefolder": SUBSET_KEYS,
    "listfile": SUBSET_KEYS | {"train_list", "val_list"},
    "imagenet_lt": {"lists_dir", "eval_split"},
    "places_lt": {"lists_dir", "eval_split"},
}


@dataclass
class FileSplits:
    train: Dataset  # items (transformed image, label)
    test: Dataset
    train_labels: np.ndarray  # int64, one per train item
    test_labels: np.ndarray
    class_names: list[str]
    source: DataSource
    extra: str  # for the one-line data summary


def setting(cfg: dict, key: str, default):
    """cfg[key], with an absent key and an explicit null both meaning "the default"."""
    value = cfg.get(key)
    return default if value is None else value


def _required(cfg: dict, name: str, key: str) -> str:
    value = cfg.get(key)
    if value in (None, "", "???"):
        raise ValueError(f"dataset.{key} is required for dataset={name}; see docs/custom_data.md")
    return str(value)


def custom_splits(name: str, cfg: dict, train_transform, test_transform) -> FileSplits:
    """The train / eval datasets of `name` (one of CUSTOM_DATASETS) from its dataset config (a plain dict)."""
    root = _required(cfg, name, "root")
    if name == "imagefolder":
        from cbl.data.image_folder import image_folder_splits  # imports torchvision: only when it is used

        train, test, source = image_folder_splits(root, train_transform, test_transform)
        names = list(train.classes)
        labels = [np.asarray(train.targets, dtype=np.int64), np.asarray(test.targets, dtype=np.int64)]
        what = f"from {root}/"
    else:
        if name in LIST_BENCHMARKS:
            lists = benchmark_lists(name, _required(cfg, name, "lists_dir"), setting(cfg, "eval_split", "test"))
        else:
            lists = (_required(cfg, name, "train_list"), _required(cfg, name, "val_list"))
        train, test, names, source = list_splits(name, root, *lists, train_transform, test_transform)
        labels = [train.labels, test.labels]
        what = f"from {lists[0]} and {lists[1]}, images under {root}/"
    if cfg.get("imbalance_factor") is not None:
        imbalance_factor = cfg["imbalance_factor"]
        subset_seed = setting(cfg, "subset_seed", 0)
        kept, counts = long_tail_subset(labels[0], len(names), imbalance_factor, cfg.get("n_max"), subset_seed, names)
        train.keep(kept)
        what = (f"long-tailed subset IF {float(imbalance_factor):g} (n_max {counts[0]}, subset_seed {subset_seed}) of "
                f"{len(labels[0])} train images, {what}")
        labels[0] = labels[0][kept]
    return FileSplits(train, test, labels[0], labels[1], names, source, f", {what}")
