"""Image lists: one `<path> <label>` line per image, the split-file format of ImageNet-LT and Places-LT
(Liu et al., "Large-Scale Long-Tailed Recognition in an Open World", CVPR 2019).

    train/n01440764/n01440764_190.JPEG 0

Format (as read by the authors' loader, github.com/zhmiao/OpenLongTailRecognition-OLTR data/dataloader.py):
  - the path is relative to the image root (`dataset.root`); a leading "/" is still relative to the root, as
    there; the label is the last whitespace-separated field, a non-negative integer (so a path may hold spaces)
  - blank lines are skipped; anything else that is not `<path> <integer>` is an error naming file:line
  - the number of classes C is the largest train label + 1, and every label 0..C-1 needs a train image (the
    class-balanced weights need n_i >= 1); eval labels must lie in 0..C-1
Class names are the images' folder names (common leading folders dropped: ImageNet-LT's wnids) when each class
sits in one folder of its own, else the label numbers.

The benchmarks (`dataset=imagenet_lt` / `places_lt`) read the released split files from `lists_dir`:
    <Prefix>_train.txt  and  <Prefix>_test.txt (eval_split=test, what papers report) or <Prefix>_val.txt
with Prefix ImageNet_LT / Places_LT, from the Google Drive folder linked in the OLTR README ("Data Preparation").
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from torch.utils.data import Dataset

from cbl.data.images import open_rgb
from cbl.data.provenance import DataSource, list_file_source

log = logging.getLogger(__name__)

OLTR_URL = "https://github.com/zhmiao/OpenLongTailRecognition-OLTR"
#: the released benchmarks: split-file prefix, classes of the release, and where the images come from
LIST_BENCHMARKS = {
    "imagenet_lt": dict(title="ImageNet-LT", prefix="ImageNet_LT", num_classes=1000,
                        images="the ILSVRC 2012 images (https://image-net.org)"),
    "places_lt": dict(title="Places-LT", prefix="Places_LT", num_classes=365,
                      images="the Places365-Standard 256x256 images (http://places2.csail.mit.edu/download.html)"),
}
EVAL_SPLITS = ("test", "val")
_SHOWN = 5  # missing images named in an error


@dataclass(frozen=True)
class ImageList:
    """The parsed lines of one list file: paths as written, labels, and the line number of each."""

    path: Path
    files: list[str]
    labels: np.ndarray  # int64
    lines: np.ndarray  # 1-based line numbers, for messages


def read_list(path: str | os.PathLike) -> ImageList:
    """Parse a `<path> <label>` file; every malformed line is an error naming file:line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image list {path} not found")
    files, labels, lines = [], [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            parts = line.rsplit(maxsplit=1)
            where = f"{path}:{number}"
            if len(parts) != 2:
                raise ValueError(f"{where}: expected '<relative image path> <integer label>'; got {line!r}")
            try:
                label = int(parts[1])
            except ValueError:
                raise ValueError(f"{where}: label {parts[1]!r} is not an integer (line {line!r})") from None
            if label < 0:
                raise ValueError(f"{where}: label {label} is negative; labels are 0..C-1")
            files.append(parts[0])
            labels.append(label)
            lines.append(number)
    if not files:
        raise ValueError(f"image list {path} lists no images; expected '<relative image path> <integer label>' lines")
    return ImageList(path, files, np.asarray(labels, dtype=np.int64), np.asarray(lines, dtype=np.int64))


def resolve(root: Path, file: str) -> Path:
    # a leading "/" is relative to the root too, as in the authors' loader (root + path)
    return root / file.lstrip("/")


def check_images_exist(images: ImageList, root: Path) -> None:
    check_files_exist(images.path.name, images.files, root)


def check_files_exist(listed_in: str, files: list[str], root: Path) -> None:
    """One line naming the first missing images when any of `files` (relative to root) is not a file."""
    missing = [f for f in files if not resolve(root, f).is_file()]
    if missing:
        raise FileNotFoundError(f"{listed_in} names {len(missing)} image(s) not found under {root} (first: "
                                f"{', '.join(missing[:_SHOWN])}); set dataset.root to the folder the listed paths are relative to")


def class_names(images: ImageList, num_classes: int) -> list[str]:
    """Folder names when every class sits in a folder of its own (leading folders common to all dropped)."""
    parents: dict[int, set] = {}
    for f, y in zip(images.files, images.labels.tolist()):
        parents.setdefault(y, set()).add(PurePosixPath(f.lstrip("/")).parent.parts)
    numbers = [str(c) for c in range(num_classes)]
    if any(len(parents.get(c, ())) != 1 for c in range(num_classes)):
        return numbers
    folders = [next(iter(parents[c])) for c in range(num_classes)]
    common = 0
    while all(len(p) > common + 1 and p[common] == folders[0][common] for p in folders):
        common += 1
    names = ["/".join(p[common:]) for p in folders]
    return names if all(names) and len(set(names)) == num_classes else numbers


class ImageListDataset(Dataset):
    """Items (transform(PIL RGB image), label) of one image list under `root`."""

    def __init__(self, images: ImageList, root: Path, transform=None) -> None:
        self.root, self.transform = Path(root), transform
        self.files, self.labels = list(images.files), images.labels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        img = open_rgb(resolve(self.root, self.files[i]), int(self.labels[i]))
        return (self.transform(img) if self.transform is not None else img), int(self.labels[i])

    def keep(self, indices: np.ndarray) -> None:
        """Restrict to `indices` (a long-tailed subset)."""
        self.files = [self.files[i] for i in indices.tolist()]
        self.labels = self.labels[indices]


def benchmark_lists(name: str, lists_dir: str | os.PathLike, eval_split: str = "test") -> tuple[Path, Path]:
    """(train list, eval list) of a released benchmark, with one line naming the expected files when absent."""
    if name not in LIST_BENCHMARKS:
        raise ValueError(f"unknown list benchmark {name!r}; choose one of {', '.join(LIST_BENCHMARKS)}")
    if eval_split not in EVAL_SPLITS:
        raise ValueError(f"dataset.eval_split must be one of {', '.join(EVAL_SPLITS)}; got {eval_split!r}")
    spec, folder = LIST_BENCHMARKS[name], Path(lists_dir)
    paths = folder / f"{spec['prefix']}_train.txt", folder / f"{spec['prefix']}_{eval_split}.txt"
    absent = [p.name for p in paths if not p.is_file()]
    if absent:
        raise FileNotFoundError(f"{spec['title']} split file(s) {', '.join(absent)} not found in {folder}; download "
                                f"{spec['prefix']}_train.txt / _val.txt / _test.txt (the Google Drive folder linked in "
                                f"the README of {OLTR_URL}) into dataset.lists_dir, with dataset.root at {spec['images']}")
    return paths


def list_splits(name: str, root: str | os.PathLike, train_list: str | os.PathLike, eval_list: str | os.PathLike,
                train_transform=None, eval_transform=None):
    """(train, eval, class names, data source) of two image lists under `root`; relative list paths are
    relative to root."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{name}: image root {root} does not exist (dataset.root: the folder the listed paths are relative to)")
    train_path, eval_path = (p if Path(p).is_absolute() else root / p for p in (train_list, eval_list))
    train, held_out = read_list(train_path), read_list(eval_path)
    num_classes = int(train.labels.max()) + 1
    absent = np.flatnonzero(np.bincount(train.labels, minlength=num_classes) == 0)
    if absent.size:
        raise ValueError(f"{train.path.name}: labels must cover 0..{num_classes - 1} (C = largest label + 1) but labels "
                         f"{absent[:10].tolist()} ({absent.size} in all) have no training image")
    out = held_out.labels >= num_classes
    if out.any():
        k = int(np.flatnonzero(out)[0])
        raise ValueError(f"{held_out.path}:{int(held_out.lines[k])}: label {int(held_out.labels[k])} is out of range: "
                         f"the train list {train.path.name} has labels 0..{num_classes - 1}")
    expected = LIST_BENCHMARKS.get(name, {}).get("num_classes")
    if expected is not None and num_classes != expected:
        log.warning("%s: %s has %d classes (the released split has %d)", LIST_BENCHMARKS[name]["title"], train.path.name,
                    num_classes, expected)
    for images in (train, held_out):
        check_images_exist(images, root)
    source: DataSource = list_file_source(name, [train.path, held_out.path], (len(train.files), len(held_out.files), num_classes))
    return (ImageListDataset(train, root, train_transform), ImageListDataset(held_out, root, eval_transform),
            class_names(train, num_classes), source)
