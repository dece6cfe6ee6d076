"""Multi-label image data: the `<path> <label>,<label>,...` list format, multi-hot targets, and the loaders of the
multi-label datasets.

Targets are multi-hot rows t_i in {0, 1}^C (t_ic = 1: image i shows class c), the form the sigmoid and focal losses
take (cbl.losses.targets), and the class counts of the class-balanced weights are the positives of each class over
the training images, n_c = sum_i t_ic (cbl.losses.samples_per_class of multi-hot rows).

Datasets (configs/dataset/):
    multilabel_listfile   your own lists in the format below: train_list, val_list, images under root
    coco_mlt, voc_mlt     the COCO-MLT / VOC-MLT splits of Wu et al., ECCV 2020 (cbl/data/mlt_benchmarks.py)
    digits_mlt            the offline demo: several scikit-learn digits per image (cbl/data/multilabel_digits.py)

List format, one image per line:

    images/0001.jpg 3,17
    images/0002.jpg 5
    images/0003.jpg

  - the path is relative to `dataset.root` (a leading "/" too, as in cbl/data/list_file.py); the last
    whitespace-separated field holds the labels, integers >= 0 separated by commas, none repeated
  - a line with a single field is an image without labels, an error unless `dataset.allow_unlabeled=true` (then
    it is a negative of every class); so a path holding spaces needs its label field
  - blank lines are skipped; anything else is an error naming file:line
  - C is `dataset.num_classes`, or (null) the largest training label + 1; a label >= C is an error naming file:line,
    and every class needs a positive training image (the class-balanced weights need n_c >= 1)

Images are resized to input_size x input_size without keeping the aspect ratio (as the DB-loss configs do,
resize_keep_ratio=False: a crop could cut a labelled object out), flipped at random in training and normalised.
Only instance sampling (a permutation per epoch) is supported: class-aware sampling draws an image per class, and a
multi-label image belongs to several.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from cbl.data.custom import setting
from cbl.data.images import open_rgb
from cbl.data.list_file import check_files_exist, resolve
from cbl.data.mlt_benchmarks import MLT_BENCHMARKS, LabelledImages, mlt_splits
from cbl.data.multilabel_digits import (DIGITS_MLT_IMBALANCE, DIGITS_MLT_MAX_LABELS, DIGITS_MLT_N_MAX,
                                        DIGITS_MLT_TEST_PER_CLASS, load_digits_mlt)
from cbl.data.provenance import DataSource, list_file_source
from cbl.data.transforms import IMAGENET_MEAN, IMAGENET_STD, _normalise, check_file_input_size

if TYPE_CHECKING:
    from torchvision.transforms import v2

MULTILABEL_DATASETS = ("multilabel_listfile", "coco_mlt", "voc_mlt", "digits_mlt")
#: keys each multi-label dataset takes beyond build.py's common ones
MULTILABEL_KEYS = {
    "multilabel_listfile": {"train_list", "val_list", "num_classes", "allow_unlabeled"},
    "coco_mlt": {"lists_dir", "allow_unlabeled"},
    "voc_mlt": {"lists_dir", "allow_unlabeled"},
    "digits_mlt": {"imbalance_factor", "n_max", "subset_seed", "test_per_class", "max_labels"},
}
#: the input size of digits-MLT (2 x 2 slots of 8 x 8 digits)
DIGITS_MLT_SIZE = 16


@dataclass(frozen=True)
class MultiLabelList:
    """The parsed lines of one list file: paths as written, label tuples, and the line number of each."""

    path: Path
    files: list[str]
    labels: list[tuple[int, ...]]
    lines: list[int]


def read_multilabel_list(path: str | os.PathLike) -> MultiLabelList:
    """Parse a `<path> <label>,<label>,...` file; every malformed line is an error naming file:line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"multi-label image list {path} not found")
    files, labels, lines = [], [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            parts = line.strip().rsplit(maxsplit=1)
            if not parts:
                continue
            where = f"{path}:{number}"
            found: tuple[int, ...] = ()
            if len(parts) == 2:
                fields = parts[1].split(",")
                if not all(x.isascii() and x.isdigit() for x in fields):  # no sign, no space, no empty field
                    raise ValueError(f"{where}: expected '<relative image path> <label>,<label>,...' with integer labels "
                                     f">= 0; got {line.strip()!r}")
                found = tuple(int(x) for x in fields)
                if len(set(found)) != len(found):
                    raise ValueError(f"{where}: label {next(x for x in found if found.count(x) > 1)} is repeated")
            files.append(parts[0])
            labels.append(found)
            lines.append(number)
    if not files:
        raise ValueError(f"multi-label image list {path} lists no images; expected '<relative image path> "
                         f"<label>,<label>,...' lines")
    return MultiLabelList(path, files, labels, lines)


def multi_hot(images: MultiLabelList, num_classes: int, allow_unlabeled: bool) -> np.ndarray:
    """uint8 [N, num_classes] targets of a parsed list: a label out of range, or an image without labels unless
    allowed, is an error naming file:line."""
    targets = np.zeros((len(images.files), num_classes), dtype=np.uint8)
    for k, (labels, number) in enumerate(zip(images.labels, images.lines)):
        if not labels and not allow_unlabeled:
            raise ValueError(f"{images.path}:{number}: {images.files[k]} has no labels; give it at least one, or set "
                             f"dataset.allow_unlabeled=true to keep it as a negative of every class")
        out = [y for y in labels if y >= num_classes]
        if out:
            raise ValueError(f"{images.path}:{number}: label {out[0]} is out of range: the classes are 0..{num_classes - 1}")
        targets[k, list(labels)] = 1
    return targets


def check_every_class_trained(targets: np.ndarray, where: str) -> None:
    """Every class has a positive training image (n_c >= 1: the class-balanced weights need it)."""
    absent = np.flatnonzero(targets.sum(axis=0) == 0)
    if absent.size:
        raise ValueError(f"{where}: classes {absent[:10].tolist()} ({absent.size} in all) have no positive training "
                         f"image; every class needs one (n_c >= 1 for the class-balanced weights)")


def check_labelled(images: LabelledImages, allow_unlabeled: bool) -> None:
    """Every image has a label unless allowed (a released benchmark's images, read from annotations)."""
    empty = np.flatnonzero(images.targets.sum(axis=1) == 0)
    if empty.size and not allow_unlabeled:
        raise ValueError(f"{images.listed_in}: {images.files[empty[0]]} ({empty.size} images in all) has no labels; set "
                         f"dataset.allow_unlabeled=true to keep such images as negatives of every class")


def multilabel_transform(train: bool, input_size: int, mean: Sequence[float] = IMAGENET_MEAN,
                         std: Sequence[float] = IMAGENET_STD) -> v2.Compose:
    """Resize to input_size x input_size (aspect not kept), a random horizontal flip in training, normalise."""
    from torchvision.transforms import InterpolationMode, v2  # here: cbl/data/transforms.py says why

    size = check_file_input_size(input_size)
    steps = [v2.Resize((size, size), interpolation=InterpolationMode.BILINEAR, antialias=True)]
    if train:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    return v2.Compose(steps + _normalise(mean, std))


class MultiLabelImageDataset(Dataset):
    """Items (transform(PIL RGB image), float32 multi-hot targets [C]) of images under `root`."""

    def __init__(self, root: str | os.PathLike, files: list[str], targets: np.ndarray, transform=None) -> None:
        self.root, self.files, self.transform = Path(root), list(files), transform
        self.targets = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        img = open_rgb(resolve(self.root, self.files[i]))
        return (self.transform(img) if self.transform is not None else img), self.targets[i]


@dataclass
class MultiLabelSplits:
    train: Dataset
    test: Dataset
    train_targets: np.ndarray  # uint8 [N, C]
    test_targets: np.ndarray
    class_names: list[str]
    source: DataSource
    extra: str  # for the one-line data summary


def _required(cfg: dict, name: str, key: str) -> str:
    value = cfg.get(key)
    if value in (None, "", "???"):
        raise ValueError(f"dataset.{key} is required for dataset={name}; see docs/multilabel.md")
    return str(value)


def check_some_class_tested(targets: np.ndarray, where: str) -> None:
    """Some class has a positive test image: otherwise no class has an average precision and mAP is undefined."""
    if not np.asarray(targets).any():
        raise ValueError(f"{where}: no test image has a label, so no class has an average precision (mAP is "
                         f"undefined); list the labels of the test images")


def _allow_unlabeled(cfg: dict) -> bool:
    value = setting(cfg, "allow_unlabeled", False)
    if not isinstance(value, bool):
        raise ValueError(f"dataset.allow_unlabeled must be true or false; got {value!r}")
    return value


def list_splits(name: str, cfg: dict) -> tuple[LabelledImages, LabelledImages, list[str], DataSource]:
    """multilabel_listfile: the train and eval lists under root, parsed and checked."""
    root = Path(_required(cfg, name, "root"))
    if not root.is_dir():
        raise FileNotFoundError(f"{name}: image root {root} does not exist (dataset.root: the folder the listed paths are relative to)")
    paths = [p if Path(p).is_absolute() else root / p for p in (_required(cfg, name, "train_list"), _required(cfg, name, "val_list"))]
    train, held_out = (read_multilabel_list(p) for p in paths)
    num_classes = cfg.get("num_classes")
    if num_classes is None:
        num_classes = 1 + max((max(y) for y in train.labels if y), default=-1)
    elif isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"dataset.num_classes must be null or an integer >= 1; got {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"{train.path}: no image has a label, so there are no classes")
    allow = _allow_unlabeled(cfg)
    splits = [LabelledImages(images.files, multi_hot(images, num_classes, allow), str(images.path))
              for images in (train, held_out)]
    source = list_file_source(name, [train.path, held_out.path], (len(train.files), len(held_out.files), num_classes))
    return splits[0], splits[1], [str(c) for c in range(num_classes)], source


def multilabel_file_splits(name: str, cfg: dict, train_transform=None, test_transform=None) -> MultiLabelSplits:
    """The train / eval datasets of a multi-label image-file dataset (multilabel_listfile, coco_mlt, voc_mlt)."""
    if name == "multilabel_listfile":
        train, test, names, source = list_splits(name, cfg)
        what = f"from {train.listed_in} and {test.listed_in}"
    else:
        root = _required(cfg, name, "root")
        train, test, names, files = mlt_splits(name, root, _required(cfg, name, "lists_dir"))
        allow = _allow_unlabeled(cfg)
        for split in (train, test):
            check_labelled(split, allow)
        source = list_file_source(name, files, (len(train.files), len(test.files), len(names)))
        what = f"{MLT_BENCHMARKS[name]['title']} split {train.listed_in}"
    check_every_class_trained(train.targets, train.listed_in)
    check_some_class_tested(test.targets, test.listed_in)
    root = Path(_required(cfg, name, "root"))
    for split in (train, test):
        check_files_exist(split.listed_in, split.files, root)
    return MultiLabelSplits(MultiLabelImageDataset(root, train.files, train.targets, train_transform),
                            MultiLabelImageDataset(root, test.files, test.targets, test_transform),
                            train.targets, test.targets, names, source, f", {what}, images under {root}/")


def samples_per_class(targets: np.ndarray) -> list[int]:
    """n_c: the positive training images of each class."""
    return np.asarray(targets, dtype=np.int64).sum(axis=0).tolist()


def multilabel_loaders(name: str, cfg: dict, batch_size: int, eval_batch_size: int, shared: dict, torch_opts: dict,
                       sampler: str):
    """build_data's loaders of a multi-label dataset: (train, test, counts, class names, input size, channels,
    description, data source); the loaders yield float32 multi-hot targets [b, C]."""
    from cbl.data.tensor_loader import TensorLoader
    from cbl.data.torch_loader import TorchLoader

    if sampler != "instance":
        raise ValueError(f"sampler={sampler!r} is not supported for the multi-label dataset {name}: class-aware sampling "
                         f"draws an image per class, and a multi-label image has several; use sampler=instance")
    drop_last = setting(cfg, "drop_last", False)
    if name == "digits_mlt":
        if setting(cfg, "loader", "tensor") != "tensor":
            raise ValueError(f"dataset.loader for digits_mlt must be tensor; got {cfg.get('loader')!r}")
        size = setting(cfg, "input_size", DIGITS_MLT_SIZE)
        if size != DIGITS_MLT_SIZE:
            raise ValueError(f"input_size for digits_mlt must be {DIGITS_MLT_SIZE} (its images are 16x16); got {size!r}")
        split = load_digits_mlt(setting(cfg, "imbalance_factor", DIGITS_MLT_IMBALANCE), setting(cfg, "subset_seed", 0),
                                setting(cfg, "n_max", DIGITS_MLT_N_MAX), setting(cfg, "test_per_class", DIGITS_MLT_TEST_PER_CLASS),
                                setting(cfg, "max_labels", DIGITS_MLT_MAX_LABELS))
        check_every_class_trained(split.t_train, "digits_mlt")
        aug = dict(mean=setting(cfg, "mean", [128.0]), std=setting(cfg, "std", [128.0]), pad=0, flip=False, **shared)
        train = TensorLoader(split.x_train, split.t_train, batch_size, train=True, drop_last=drop_last, **aug)
        test = TensorLoader(split.x_test, split.t_test, eval_batch_size, train=False, **aug)
        extra = f", multi-label, from scikit-learn load_digits (subset_seed {setting(cfg, 'subset_seed', 0)})"
        return train, test, samples_per_class(split.t_train), split.class_names, size, 1, extra, split.source
    size = check_file_input_size(setting(cfg, "input_size", 224))
    mean, std = setting(cfg, "mean", list(IMAGENET_MEAN)), setting(cfg, "std", list(IMAGENET_STD))
    splits = multilabel_file_splits(name, cfg, multilabel_transform(True, size, mean, std),
                                    multilabel_transform(False, size, mean, std))
    train = TorchLoader(splits.train, batch_size, train=True, drop_last=drop_last, **shared, **torch_opts)
    test = TorchLoader(splits.test, eval_batch_size, train=False, **shared, **torch_opts)
    return (train, test, samples_per_class(splits.train_targets), splits.class_names, size, 3,
            f", multi-label, input {size}{splits.extra}", splits.source)
