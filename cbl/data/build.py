"""`build_data`: one dataset config node -> train/test loaders + the class counts n_i of the CB weights.

Dataset config fields (configs/dataset/<name>.yaml; absent fields take the defaults below):
  name                one of DATASET_NAMES
  root                data folder ("data")
  loader              "tensor" (whole uint8 dataset on the device, tensor-op augmentation; CIFAR / digits)
                      or "torch" (DataLoader + per-image torchvision transforms; every dataset)
  num_workers (auto = the CPUs available, at most 8), pin_memory (null = when the device is CUDA),
  persistent_workers, prefetch_factor: torch loader
  input_size          CIFAR 32, digits 8, iNaturalist / ILSVRC 224 or 320
  mean, std           per-channel normalisation in uint8 units, (x - mean) / std; null = the dataset default
                      (CIFAR/digits 128, i.e. the authors' x / 128 - 1; ImageNet statistics for the others)
  drop_last           drop the last partial training batch (false)
  order               training order: "shuffled" (a fresh draw per epoch; default) or, CIFAR / digits only,
                      "authors_stream" (the authors' TF shuffle-buffer stream over class-sorted record files,
                      replayed deterministically; cbl/data/epoch.py)
  channels_last       yield channels_last tensors (false)
  CIFAR / digits only: imbalance_factor, n_max (null = 5000 / 500 / 120), subset_seed (which images the
                      long-tailed subset keeps; 0), pad (4 / 0), flip (true / false)
  CIFAR only:         download (fetch the archive when absent; false), npz (a prepared .npz instead; null)
  digits only:        test_per_class (50)
  your own data and ImageNet-LT / Places-LT (imagefolder, listfile, imagenet_lt, places_lt; cbl/data/custom.py):
                      input_size 224 / 320 (Inception-style) or 16, 32, 48, 64, 96, 128 (small-image recipe; transforms.py);
                      imagefolder / listfile: imbalance_factor (null = as it is), n_max, subset_seed;
                      listfile: train_list, val_list; imagenet_lt / places_lt: lists_dir, eval_split (test | val)
  multi-label (multilabel_listfile, coco_mlt, voc_mlt, digits_mlt; cbl/data/multilabel.py): multi-hot targets,
                      n_i = positive training images of class i; their keys are listed there
The training `seed` drives order and augmentation only; `subset_seed` alone picks the long-tailed subset.
`build_data(..., sampler=)` picks the training order (the `sampler` config group): "instance" (a permutation,
the paper), "class_balanced" or "sqrt" (class-aware draws with replacement; cbl/data/epoch.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Iterator, Protocol

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from cbl.data.arrays import ArraySplit, check_labels
from cbl.data.cifar import CIFAR_SPECS, load_cifar_lt
from cbl.data.custom import CUSTOM_DATASETS, CUSTOM_KEYS, custom_splits, setting
from cbl.data.digits import DIGITS_N_MAX, DIGITS_TEST_PER_CLASS, load_digits_lt
from cbl.data.epoch import ORDERS, authors_records, check_order, check_sampler
from cbl.data.inaturalist import inaturalist_splits
from cbl.data.multilabel import MULTILABEL_DATASETS, MULTILABEL_KEYS, multilabel_loaders
from cbl.data.provenance import DataSource
from cbl.data.tensor_loader import TensorLoader
from cbl.data.torch_loader import ArrayDataset, TorchLoader
from cbl.data.transforms import (CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD, check_input_size, cifar_transform,
                                 inception_transform)
from cbl.data.transforms import check_file_input_size, file_image_transform

log = logging.getLogger("cbl.data")

DATASET_NAMES = ("cifar10_lt", "cifar100_lt", "inat2017", "inat2018", "ilsvrc2012", "digits_lt") + CUSTOM_DATASETS + MULTILABEL_DATASETS
ARRAY_DATASETS = ("cifar10_lt", "cifar100_lt", "digits_lt")

_COMMON = {"name", "root", "loader", "num_workers", "pin_memory", "persistent_workers", "prefetch_factor",
           "input_size", "mean", "std", "drop_last", "channels_last", "order"}
_LONG_TAIL = {"imbalance_factor", "n_max", "subset_seed", "pad", "flip"}
ALLOWED_KEYS = {
    "cifar10_lt": _COMMON | _LONG_TAIL | {"download", "npz"},
    "cifar100_lt": _COMMON | _LONG_TAIL | {"download", "npz"},
    "digits_lt": _COMMON | _LONG_TAIL | {"test_per_class"},
    "inat2017": _COMMON,
    "inat2018": _COMMON,
    "ilsvrc2012": _COMMON,
    **{name: _COMMON | keys for name, keys in CUSTOM_KEYS.items()},
    **{name: _COMMON | keys for name, keys in MULTILABEL_KEYS.items()},
}


class Loader(Protocol):
    """What the training loop relies on: both TensorLoader and TorchLoader satisfy it."""

    num_samples: int

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]: ...
    def __len__(self) -> int: ...
    def set_epoch(self, epoch: int) -> None: ...
    def loss_scale(self, k: int) -> float: ...


@dataclass
class DataBundle:
    train: Loader  # (x, y) on the device, augmented, sharded by rank; set_epoch(e) before each epoch
    test: Loader  # every test example exactly once over all ranks, no augmentation
    samples_per_class: list[int]  # training-set counts n_i, from the whole training set
    num_classes: int
    class_names: list[str]
    input_size: int
    in_channels: int
    name: str = ""
    source: DataSource | None = None  # where the images came from (cbl/data/provenance.py)
    multilabel: bool = False  # targets are multi-hot rows [b, C] (cbl/data/multilabel.py), scored by mAP


def _as_dict(cfg) -> dict:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    if not isinstance(cfg, Mapping):
        raise ValueError(f"dataset config must be a mapping (dict or DictConfig); got {type(cfg).__name__}")
    return dict(cfg)


def _flag(cfg: dict, key: str, default: bool) -> bool:
    value = setting(cfg, key, default)
    if not isinstance(value, bool):
        raise ValueError(f"dataset.{key} must be true or false; got {value!r}")
    return value


def _choice(cfg: dict, key: str, allowed: tuple, default):
    value = setting(cfg, key, default)
    if value not in allowed:
        raise ValueError(f"dataset.{key} must be one of {', '.join(map(str, allowed))}; got {value!r}")
    return value


def describe_counts(name: str, counts: list[int], n_test: int, extra: str = "", n_train: int | None = None) -> str:
    """One line: sizes, imbalance and the per-class training counts (all of them up to 100 classes); n_train: the
    training images when they are not the sum of the counts (multi-label images count once per label)."""
    c = np.asarray(counts)
    shown = c.tolist() if len(c) <= 100 else f"{c[:5].tolist()} ... {c[-5:].tolist()}"
    ratio = f"{c.max() / c.min():.1f}" if c.min() > 0 else "inf"
    return (f"[data] {name}: {len(c)} classes, {int(c.sum()) if n_train is None else n_train} train / {n_test} test images{extra}; "
            f"per-class train counts (max/min = {ratio}, min {c.min()}, median {int(np.median(c))}, max {c.max()}): {shown}")


def _announce(line: str, rank: int) -> None:
    if rank != 0:
        return
    # logged when logging is configured (Hydra sends it to console and file), printed otherwise
    if log.isEnabledFor(logging.INFO) and log.hasHandlers():
        log.info(line)
    else:
        print(line, flush=True)


def _load_arrays(name: str, cfg: dict) -> tuple[ArraySplit, str, float]:
    subset_seed = setting(cfg, "subset_seed", 0)
    if name == "digits_lt":
        imbalance_factor = setting(cfg, "imbalance_factor", 10.0)
        split = load_digits_lt(imbalance_factor, subset_seed, setting(cfg, "n_max", DIGITS_N_MAX),
                               setting(cfg, "test_per_class", DIGITS_TEST_PER_CLASS))
    else:
        imbalance_factor = setting(cfg, "imbalance_factor", 100.0)
        split = load_cifar_lt(name.removesuffix("_lt"), setting(cfg, "root", "data"), imbalance_factor, subset_seed,
                              download=_flag(cfg, "download", False), npz=cfg.get("npz"), n_max=cfg.get("n_max"))
    source = "scikit-learn load_digits" if name == "digits_lt" else (cfg.get("npz") or f"{setting(cfg, 'root', 'data')}/")
    return split, f", imbalance factor {imbalance_factor:g}, subset_seed {subset_seed}, from {source}", imbalance_factor


def _record_order(name: str, cfg: dict, split: ArraySplit, imbalance_factor: float):
    """The authors' record-file order of our training arrays (epoch.authors_records): one class-sorted block per
    source file (CIFAR-10: data_batch_1..5; CIFAR-100 and digits: one file), or dataset order at IF 1, whose
    balanced record file kept the source order."""
    files = len(CIFAR_SPECS[name.removesuffix("_lt")]["train"]) if name != "digits_lt" else 1
    balanced = imbalance_factor == 1
    if balanced and cfg.get("npz"):
        log.warning("dataset.order=authors_stream at imbalance_factor 1 streams %s in its stored order; the authors' "
                    "balanced record file kept the official archive's order", cfg["npz"])
    return authors_records(split.y_train, files, class_grouped=not balanced)


def _array_loaders(name: str, cfg: dict, batch_size: int, eval_batch_size: int, shared: dict, torch_opts: dict, sampler: str):
    loader = _choice(cfg, "loader", ("tensor", "torch"), "tensor")
    split, extra, imbalance_factor = _load_arrays(name, cfg)  # ArraySplit has checked the label range
    order = _choice(cfg, "order", ORDERS, "shuffled")
    records = _record_order(name, cfg, split, imbalance_factor) if order == "authors_stream" else None
    h, w, channels = split.image_shape
    size = setting(cfg, "input_size", h)
    if size != h or h != w:
        raise ValueError(f"input_size for {name} must be {h} (its images are {h}x{w}); got {size!r}")
    digits = name == "digits_lt"
    mean = setting(cfg, "mean", [128.0] if digits else list(CIFAR_MEAN))
    std = setting(cfg, "std", [128.0] if digits else list(CIFAR_STD))
    pad = setting(cfg, "pad", 0 if digits else 4)
    flip = _flag(cfg, "flip", not digits)
    drop_last = _flag(cfg, "drop_last", False)
    if loader == "tensor":
        aug = dict(mean=mean, std=std, **shared)
        train = TensorLoader(split.x_train, split.y_train, batch_size, train=True, pad=pad, flip=flip, drop_last=drop_last,
                             sampler=sampler, order=order, records=records, **aug)
        test = TensorLoader(split.x_test, split.y_test, eval_batch_size, train=False, **aug)
    else:
        train_ds = ArrayDataset(split.x_train, split.y_train, cifar_transform(True, mean, std, size=h, pad=pad, flip=flip))
        test_ds = ArrayDataset(split.x_test, split.y_test, cifar_transform(False, mean, std))
        train = TorchLoader(train_ds, batch_size, train=True, drop_last=drop_last, sampler=sampler, labels=split.y_train,
                            order=order, records=records, **shared, **torch_opts)
        test = TorchLoader(test_ds, eval_batch_size, train=False, **shared, **torch_opts)
    return train, test, split.samples_per_class, split.class_names, size, channels, extra, split.source


def _file_loaders(name: str, cfg: dict, batch_size: int, eval_batch_size: int, shared: dict, torch_opts: dict, sampler: str):
    _choice(cfg, "loader", ("torch",), "torch")  # JPEG datasets do not fit on the device as one tensor
    order = setting(cfg, "order", "shuffled")
    if order != "shuffled":  # the authors' stream is their CIFAR pipeline; their large-scale input differs
        raise ValueError(f"dataset.order={order!r} is not supported for {name}: only 'shuffled' ('authors_stream' replays the authors' CIFAR pipeline)")
    custom = name in CUSTOM_DATASETS  # your own data: small input sizes too (cbl/data/transforms.py)
    size = (check_file_input_size if custom else check_input_size)(setting(cfg, "input_size", 224))
    mean, std = setting(cfg, "mean", list(IMAGENET_MEAN)), setting(cfg, "std", list(IMAGENET_STD))
    make_tf = file_image_transform if custom else inception_transform
    train_tf, test_tf = make_tf(True, size, mean, std), make_tf(False, size, mean, std)
    train_ds, test_ds, names, labels, counts, source, where = file_splits(name, cfg, train_tf, test_tf)
    train = TorchLoader(train_ds, batch_size, train=True, drop_last=_flag(cfg, "drop_last", False), sampler=sampler,
                        labels=labels[0], **shared, **torch_opts)
    test = TorchLoader(test_ds, eval_batch_size, train=False, **shared, **torch_opts)
    return train, test, counts, names, size, 3, f", input {size}{where}", source


#: DataLoader workers of `num_workers: auto` are capped here: beyond it, decoding rarely keeps up better
MAX_AUTO_WORKERS = 8


def worker_count(value) -> int:
    """`dataset.num_workers`: a count >= 0, or "auto": the CPUs this process may use, shared among the processes
    of this machine (torchrun's LOCAL_WORLD_SIZE), at most MAX_AUTO_WORKERS (and what DataLoader suggests)."""
    if value == "auto":
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, min(MAX_AUTO_WORKERS, cpus // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))))
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"dataset.num_workers={value!r} is not allowed: an integer >= 0 or auto (the CPUs available)")
    return value


def file_splits(name: str, cfg: dict, train_tf=None, test_tf=None):
    """(train dataset, test dataset, class names, [train labels, test labels], class counts, data source, description)
    of an image-file dataset: the very images a run trains and evaluates on (cbl-check-data decodes them all)."""
    root = setting(cfg, "root", "data")
    where = f", from {root}/"
    if name in CUSTOM_DATASETS:
        splits = custom_splits(name, cfg, train_tf, test_tf)
        train_ds, test_ds, names, source, where = splits.train, splits.test, splits.class_names, splits.source, splits.extra
        labels = [splits.train_labels, splits.test_labels]
        counts = np.bincount(labels[0], minlength=len(names)).tolist()
    elif name == "ilsvrc2012":
        from cbl.data.imagenet import ilsvrc2012_splits  # imports torchvision: only when it is used

        train_ds, test_ds, counts, source = ilsvrc2012_splits(root, train_tf, test_tf)
        names, labels = list(train_ds.classes), [np.asarray(train_ds.targets), np.asarray(test_ds.targets)]
    else:
        train_ds, test_ds, counts, source = inaturalist_splits(root, name, train_tf, test_tf)
        names, labels = train_ds.class_names, [train_ds.labels, test_ds.labels]
    # the losses run with validate=False in training, so the label range is checked here, once
    for which, y in zip(("train", "val"), labels):
        check_labels(f"{name} {which} labels", y, len(y), len(names))
    return train_ds, test_ds, names, labels, counts, source, where


def build_data(cfg, *, seed: int, device, batch_size: int, eval_batch_size: int, rank: int = 0, world_size: int = 1,
               sampler: str = "instance") -> DataBundle:
    """Build the loaders of dataset `cfg.name` (see the module docstring for the config fields).

    batch_size / eval_batch_size are GLOBAL batches; each of the world_size ranks yields its 1/world_size share.
    """
    cfg = _as_dict(cfg)
    name = cfg.get("name")
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    unknown = sorted(set(cfg) - ALLOWED_KEYS[name])
    if unknown:
        raise ValueError(f"dataset config for {name} has unknown or inapplicable keys {unknown}; allowed: {', '.join(sorted(ALLOWED_KEYS[name]))}")
    shared = dict(seed=seed, device=torch.device(device), rank=rank, world_size=world_size, channels_last=_flag(cfg, "channels_last", False))
    torch_opts = dict(num_workers=worker_count(setting(cfg, "num_workers", "auto")), pin_memory=cfg.get("pin_memory"),
                      persistent_workers=_flag(cfg, "persistent_workers", False), prefetch_factor=cfg.get("prefetch_factor"))
    check_sampler(sampler)
    order = check_order(setting(cfg, "order", "shuffled"), sampler, name="dataset.order")
    multilabel = name in MULTILABEL_DATASETS
    make = multilabel_loaders if multilabel else _array_loaders if name in ARRAY_DATASETS else _file_loaders
    train, test, counts, names, size, channels, extra, source = make(name, cfg, batch_size, eval_batch_size, shared,
                                                                     torch_opts, sampler)
    extra += f", data source {source.id}"
    if sampler != "instance":
        extra += f", sampler {sampler}"
    if order != "shuffled":
        extra += f", order {order}"
    if min(counts) < 1:
        log.warning("%s: classes %s have no training images; class-balanced weights need n_i >= 1",
                    name, np.flatnonzero(np.asarray(counts) < 1)[:10].tolist())
    _announce(describe_counts(name, counts, test.num_samples, extra, train.num_samples if multilabel else None), rank)
    return DataBundle(train, test, list(counts), len(names), list(names), int(size), int(channels), name, source,
                      multilabel)
