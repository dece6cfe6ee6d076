"""iNaturalist 2017 / 2018 from the official annotation files (Cui et al., CVPR 2019, Sec. 5.2, Table 3).

Layout, as distributed at https://github.com/visipedia/inat_comp (the JSON `file_name` is relative to root):
    2017: <root>/train2017.json, <root>/val2017.json, <root>/train_val_images/<supercategory>/<category>/<id>.jpg
    2018: <root>/train2018.json, <root>/val2018.json, <root>/train_val2018/<supercategory>/<category>/<id>.jpg
The JSON files are COCO-style: images [{id, file_name, ...}], annotations [{image_id, category_id, ...}],
categories [{id, name, supercategory, ...}].  Category ids map to contiguous labels 0..C-1 in sorted-id
order, taken from the train file's category list (C = 5089 in 2017, 8142 in 2018); the class counts
n_i of the class-balanced weights come from the train split.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from cbl.data.images import open_rgb
from cbl.data.provenance import DataSource, annotation_source

log = logging.getLogger(__name__)

INAT_SPECS = {
    "inat2017": dict(title="iNaturalist 2017", train="train2017.json", val="val2017.json", images="train_val_images", num_classes=5089),
    "inat2018": dict(title="iNaturalist 2018", train="train2018.json", val="val2018.json", images="train_val2018", num_classes=8142),
}
INAT_URL = "https://github.com/visipedia/inat_comp"


def _spec(name: str) -> dict:
    if name not in INAT_SPECS:
        raise ValueError(f"unknown iNaturalist version {name!r}; choose one of {', '.join(INAT_SPECS)}")
    return INAT_SPECS[name]


def read_annotations(path: Path, title: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(
            f"{title} annotations not found at {path}; download the images and train/val JSON files from "
            f"{INAT_URL} and extract them into {path.parent}/"
        )
    try:
        with open(path) as f:
            d = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {path} as JSON ({type(e).__name__}: {e})") from None
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(d.get(k), list)]
    if missing:
        raise ValueError(f"{path} is not a COCO-style annotation file: missing list(s) {missing}")
    return d


def _check_root(root: Path, spec: dict) -> None:
    if not root.is_dir():
        raise FileNotFoundError(f"{spec['title']} root folder {root} does not exist; download the data from {INAT_URL} and extract it there")


class INaturalist(Dataset):
    """One split of iNaturalist 2017/2018: items (transform(PIL RGB image), label).

    `categories` (the train file's list) fixes the label space; by default it is read from the train file.
    """

    def __init__(self, root: str | os.PathLike, name: str = "inat2018", split: str = "train", transform=None, *, categories=None) -> None:
        spec = _spec(name)
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val'; got {split!r}")
        self.root, self.transform, self.title = Path(root), transform, spec["title"]
        _check_root(self.root, spec)
        data = read_annotations(self.root / spec[split], spec["title"])
        if categories is None:
            categories = data["categories"] if split == "train" else read_annotations(self.root / spec["train"], spec["title"])["categories"]
        # the train file's categories define the label space, so train and val labels always agree
        self.categories = sorted(categories, key=lambda c: int(c["id"]))
        label_of = {int(c["id"]): i for i, c in enumerate(self.categories)}
        if len(label_of) != len(self.categories):
            raise ValueError(f"{spec['train']}: category ids are not unique")
        self.class_names = [str(c.get("name", c["id"])) for c in self.categories]
        self.num_classes = len(self.categories)
        if split == "train" and self.num_classes != spec["num_classes"]:
            log.warning("%s: %d categories in %s (the official release has %d)", spec["title"], self.num_classes, spec["train"], spec["num_classes"])
        file_of = {int(im["id"]): im["file_name"] for im in data["images"]}
        self.files, labels = [], []
        for a in data["annotations"]:
            cid, iid = int(a["category_id"]), int(a["image_id"])
            if cid not in label_of:
                raise ValueError(f"{spec[split]}: annotation {a.get('id')} has category_id {cid}, not among the {self.num_classes} categories of {spec['train']}")
            if iid not in file_of:
                raise ValueError(f"{spec[split]}: annotation {a.get('id')} refers to image_id {iid}, which is not in its images list")
            self.files.append(file_of[iid])
            labels.append(label_of[cid])
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.files)

    def samples_per_class(self) -> list[int]:
        return np.bincount(self.labels, minlength=self.num_classes).tolist()

    def __getitem__(self, i: int):
        img = open_rgb(self.root / self.files[i], int(self.labels[i]), self.class_names[int(self.labels[i])])
        return (self.transform(img) if self.transform is not None else img), int(self.labels[i])


def inaturalist_splits(root: str | os.PathLike, name: str, train_transform=None, val_transform=None):
    """(train, val, samples_per_class, data source) with one label space; the class counts are the train split's."""
    train = INaturalist(root, name, "train", train_transform)
    val = INaturalist(root, name, "val", val_transform, categories=train.categories)
    spec = _spec(name)
    source: DataSource = annotation_source(name, [Path(root) / spec["train"], Path(root) / spec["val"]],
                                           (len(train), len(val), train.num_classes))
    return train, val, train.samples_per_class(), source
