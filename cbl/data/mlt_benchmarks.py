"""COCO-MLT and VOC-MLT: the multi-label long-tailed splits of Wu et al., "Distribution-Balanced Loss for
Multi-Label Classification in Long-Tailed Datasets" (ECCV 2020), read in their released format.

The release (github.com/wutong16/DistributionBalancedLoss, folder appendix/; `dataset.lists_dir` is that folder):

    COCO-MLT   coco/longtail2017/img_id.pkl         training images: one COCO 2017 image id per line, plain text
                                                   despite the .pkl name (the authors read it with mmcv.list_from_file)
               test: every image of val2017
               labels: COCO's instances_{train,val}2017.json; an image shows category k when it has an annotation of
               k with area > 0 and a box at least 1 x 1 pixel, crowd annotations included (mllt/datasets/coco.py);
               classes are the 80 categories in ascending category id (label = position, as there)
    VOC-MLT    VOCdevkit/longtail2012/img_id.txt    training images: one VOC 2012 image id per line (e.g. 2008_000023)
               test: VOC2007/ImageSets/Main/test.txt
               labels: the <object><name> of each image's VOC<year>/Annotations/<id>.xml, "difficult" objects
               included (mllt/datasets/xml_style.py); classes in the usual VOC order (aeroplane .. tvmonitor)

The released training lists hold 1,909 (COCO-MLT) and 1,142 (VOC-MLT) images; the test sets 5,000 (COCO val2017)
and 4,952 (VOC 2007 test).  A copy with other numbers is read, with a warning, and recorded under its own data
source, never as "official".  The class counts n_c are the positives of each class over the training images, counted
here from the annotations (the release's class_freq.pkl holds the same counts, as a pickle this code does not load).
COCO val2017 has images without any object: they stay in the test set as negatives of every class, as in the
authors' evaluation (`dataset.allow_unlabeled`, true in configs/dataset/coco_mlt.yaml).

Images: `dataset.root` is the COCO 2017 folder (train2017/, val2017/, annotations/ from https://cocodataset.org) or
the VOCdevkit folder (VOC2012/ from the VOC 2012 trainval tar, VOC2007/ from the VOC 2007 test tar,
http://host.robots.ox.ac.uk/pascal/VOC/).
"""

from __future__ import annotations

import json
import logging
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DB_LOSS_URL = "https://github.com/wutong16/DistributionBalancedLoss"
VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
#: the released benchmarks: split file under lists_dir, the release's sizes, where root comes from
MLT_BENCHMARKS = {
    "coco_mlt": dict(title="COCO-MLT", split="coco/longtail2017/img_id.pkl", sizes=(1909, 5000, 80),
                     images="a COCO 2017 folder with train2017/, val2017/ and annotations/ (https://cocodataset.org)"),
    "voc_mlt": dict(title="VOC-MLT", split="VOCdevkit/longtail2012/img_id.txt", sizes=(1142, 4952, 20),
                    images="a VOCdevkit folder with VOC2012/ (trainval) and VOC2007/ (test) "
                           "(http://host.robots.ox.ac.uk/pascal/VOC/)"),
}


@dataclass(frozen=True)
class LabelledImages:
    """Images of one split: paths relative to the root, multi-hot targets uint8 [N, C], and where they were listed."""

    files: list[str]
    targets: np.ndarray
    listed_in: str  # for messages: the file that lists the images


def split_file(name: str, lists_dir: str | os.PathLike) -> Path:
    """The released training list of `name` under lists_dir, with one line naming it and its source when absent."""
    spec = MLT_BENCHMARKS[name]
    path = Path(lists_dir) / spec["split"]
    if not path.is_file():
        raise FileNotFoundError(f"{spec['title']} split file {path} not found: dataset.lists_dir must be the appendix/ "
                                f"folder of {DB_LOSS_URL} (git clone it; it holds {spec['split']})")
    return path


def read_ids(path: Path) -> list[str]:
    """The ids of a list file, one per line (blank lines skipped)."""
    with open(path, encoding="utf-8") as f:
        ids = [line.strip() for line in f if line.strip()]
    if not ids:
        raise ValueError(f"{path} lists no image ids")
    return ids


def _required(path: Path, title: str, images: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{title} needs {path}: dataset.root must be {images}")
    return path


# ----------------------------------------------------------------------------- COCO-MLT
def coco_categories(data: dict) -> tuple[list[int], list[str]]:
    """The category ids in ascending order and their names: label k is the k-th category."""
    cats = sorted(data.get("categories", []), key=lambda c: c["id"])
    return [c["id"] for c in cats], [str(c["name"]) for c in cats]


def coco_labels(data: dict, image_ids: list[int] | None, folder: str, where: str) -> LabelledImages:
    """Multi-hot targets of `image_ids` (None: every image, in the file's order) from a COCO instances file."""
    cat_ids, _ = coco_categories(data)
    label_of = {c: k for k, c in enumerate(cat_ids)}
    files = {int(im["id"]): im["file_name"] for im in data.get("images", [])}
    ids = list(files) if image_ids is None else image_ids
    missing = [i for i in ids if i not in files]
    if missing:
        raise ValueError(f"{where}: image id {missing[0]} ({len(missing)} in all) is not in the annotation file")
    row = {i: k for k, i in enumerate(ids)}
    targets = np.zeros((len(ids), len(cat_ids)), dtype=np.uint8)
    for ann in data.get("annotations", []):
        k = row.get(int(ann["image_id"]))
        if k is None or ann.get("ignore", False):
            continue
        _, _, w, h = ann["bbox"]
        if ann["area"] <= 0 or w < 1 or h < 1:  # the authors' filter (module docstring)
            continue
        targets[k, label_of[ann["category_id"]]] = 1
    return LabelledImages([f"{folder}/{files[i]}" for i in ids], targets, where)


def _load_json(path: Path) -> dict:
    log.info("reading %s", path)
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def coco_mlt(root: str | os.PathLike, lists_dir: str | os.PathLike) -> tuple[LabelledImages, LabelledImages, list[str], list[Path]]:
    """(train, test, class names, files read) of COCO-MLT."""
    spec, root = MLT_BENCHMARKS["coco_mlt"], Path(root)
    split = split_file("coco_mlt", lists_dir)
    train_json, val_json = (_required(root / "annotations" / f"instances_{s}2017.json", spec["title"], spec["images"])
                            for s in ("train", "val"))
    ids = read_ids(split)
    bad = next((i for i in ids if not i.isdigit()), None)
    if bad is not None:
        raise ValueError(f"{split}: {bad!r} is not a COCO image id (the file lists one integer id per line)")
    train_data = _load_json(train_json)
    train = coco_labels(train_data, [int(i) for i in ids], "train2017", str(split))
    names = coco_categories(train_data)[1]
    del train_data  # 450 MB of JSON: not kept while the val file is read
    test = coco_labels(_load_json(val_json), None, "val2017", str(val_json))
    return train, test, names, [split, train_json, val_json]


# ----------------------------------------------------------------------------- VOC-MLT
def voc_labels(root: Path, year: int, ids: list[str], where: str) -> LabelledImages:
    """Multi-hot targets of VOC<year> images from their annotation XML files (every <object>'s <name>)."""
    label_of = {name: k for k, name in enumerate(VOC_CLASSES)}
    targets = np.zeros((len(ids), len(VOC_CLASSES)), dtype=np.uint8)
    folder = root / f"VOC{year}"
    for k, image_id in enumerate(ids):
        xml = _required(folder / "Annotations" / f"{image_id}.xml", "VOC-MLT", MLT_BENCHMARKS["voc_mlt"]["images"])
        for obj in ET.parse(xml).getroot().iter("object"):
            name = (obj.findtext("name") or "").strip()
            if name not in label_of:
                raise ValueError(f"{xml}: object {name!r} is not a VOC class ({', '.join(VOC_CLASSES)})")
            targets[k, label_of[name]] = 1
    return LabelledImages([f"VOC{year}/JPEGImages/{i}.jpg" for i in ids], targets, where)


def voc_mlt(root: str | os.PathLike, lists_dir: str | os.PathLike) -> tuple[LabelledImages, LabelledImages, list[str], list[Path]]:
    """(train, test, class names, files read) of VOC-MLT."""
    spec, root = MLT_BENCHMARKS["voc_mlt"], Path(root)
    split = split_file("voc_mlt", lists_dir)
    test_list = _required(root / "VOC2007" / "ImageSets" / "Main" / "test.txt", spec["title"], spec["images"])
    train = voc_labels(root, 2012, read_ids(split), str(split))
    test = voc_labels(root, 2007, read_ids(test_list), str(test_list))
    return train, test, list(VOC_CLASSES), [split, test_list]


def mlt_splits(name: str, root: str | os.PathLike, lists_dir: str | os.PathLike):
    """(train, test, class names, files read) of a released benchmark, warning when its sizes are not the release's."""
    train, test, names, files = (coco_mlt if name == "coco_mlt" else voc_mlt)(root, lists_dir)
    sizes = (len(train.files), len(test.files), len(names))
    if sizes != MLT_BENCHMARKS[name]["sizes"]:
        log.warning("%s: %d train / %d test images, %d classes; the release has %d / %d / %d",
                    MLT_BENCHMARKS[name]["title"], *sizes, *MLT_BENCHMARKS[name]["sizes"])
    return train, test, names, files
