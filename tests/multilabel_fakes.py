"""Small multi-label datasets written in the real on-disk formats: `<path> <label>,<label>,...` lists, and the
COCO-MLT / VOC-MLT release (the DB-loss appendix split files, COCO instances JSON, VOC annotation XML), written
from the formats' descriptions (cbl/data/mlt_benchmarks.py's docstring cites them), not from cbl.data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, seed: int, size: int = 20) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size + 4, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def write_list(root: Path, name: str, rows: list[tuple[str, str]], images: bool = True) -> Path:
    """A list file `name` under root with `<path> <labels>` rows (labels as written, "" for none) and the images."""
    root.mkdir(parents=True, exist_ok=True)
    lines = [f"{p} {labels}".rstrip() for p, labels in rows]
    (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    if images:
        for k, (p, _) in enumerate(rows):
            write_image(root / p, k)
    return root / name


def write_coco_mlt(root: Path, lists_dir: Path) -> dict:
    """COCO 2017 in miniature: categories with COCO's non-contiguous ids, a long-tailed split list that leaves one
    annotated training image out, annotations the authors' filter drops (zero area, a box under 1 pixel), a crowd
    annotation (kept), and a val image without objects.  Returns the expected targets."""
    cats = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 18, "name": "dog"}]  # listed in id order
    train_images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 24, "height": 20} for i in (9, 25, 30, 42)]
    box = [1.0, 1.0, 5.0, 5.0]
    anns = [
        (9, 1, box, 25.0, 0), (9, 18, box, 25.0, 0),    # image 9: person, dog
        (25, 1, box, 25.0, 1),                          # image 25: person (crowd: kept)
        (25, 3, box, 0.0, 0),                           # zero area: dropped
        (30, 3, box, 25.0, 0), (30, 1, [1.0, 1.0, 0.5, 4.0], 2.0, 0),  # car; a box under 1 pixel wide: dropped
        (42, 18, box, 25.0, 0),                         # image 42 is not in the long-tailed split
    ]
    val_images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 24, "height": 20} for i in (5, 7, 11)]
    val_anns = [(5, 3, box, 25.0, 0), (7, 1, box, 25.0, 0), (7, 18, box, 25.0, 0)]  # image 11: no object

    def instances(images, annotations):
        return {"images": images, "categories": cats[::-1],  # any order in the file: labels follow the ids
                "annotations": [{"id": k, "image_id": i, "category_id": c, "bbox": b, "area": a, "iscrowd": crowd}
                                for k, (i, c, b, a, crowd) in enumerate(annotations)]}

    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances_train2017.json").write_text(json.dumps(instances(train_images, anns)))
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(instances(val_images, val_anns)))
    for folder, images in (("train2017", train_images), ("val2017", val_images)):
        for im in images:
            write_image(root / folder / im["file_name"], im["id"])
    split = lists_dir / "coco" / "longtail2017" / "img_id.pkl"  # plain text despite the name, as released
    split.parent.mkdir(parents=True, exist_ok=True)
    split.write_text("9\n25\n30\n")
    return {"train": [[1, 0, 1], [1, 0, 0], [0, 1, 0]], "test": [[0, 1, 0], [1, 0, 1], [0, 0, 0]],
            "names": ["person", "car", "dog"], "counts": [2, 1, 1]}


def _voc_xml(names: list[tuple[str, int]]) -> str:
    objects = "".join(f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>1</xmin><ymin>1</ymin>"
                      f"<xmax>5</xmax><ymax>5</ymax></bndbox></object>" for n, d in names)
    return f"<annotation><size><width>24</width><height>20</height><depth>3</depth></size>{objects}</annotation>"


def write_voc_mlt(root: Path, lists_dir: Path, test_objects: dict | None = None, train_objects: dict | None = None) -> dict:
    """VOCdevkit in miniature: VOC2012 training images named by the split list, VOC2007 test images named by
    ImageSets/Main/test.txt, objects in annotation XML (by default a difficult one, a class twice)."""
    train = train_objects or {"2008_000023": [("dog", 0), ("person", 1)], "2008_000028": [("person", 0), ("person", 0)],
                              "2010_002361": [("aeroplane", 0)]}
    test = test_objects or {"000001": [("dog", 0)], "000004": [("tvmonitor", 0), ("person", 0)]}
    for year, objects in ((2012, train), (2007, test)):
        folder = root / f"VOC{year}"
        (folder / "Annotations").mkdir(parents=True, exist_ok=True)
        for k, (image_id, names) in enumerate(objects.items()):
            (folder / "Annotations" / f"{image_id}.xml").write_text(_voc_xml(names))
            write_image(folder / "JPEGImages" / f"{image_id}.jpg", k)
    (root / "VOC2007" / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    (root / "VOC2007" / "ImageSets" / "Main" / "test.txt").write_text("\n".join(test) + "\n")
    split = lists_dir / "VOCdevkit" / "longtail2012" / "img_id.txt"
    split.parent.mkdir(parents=True, exist_ok=True)
    split.write_text("\n".join(train) + "\n")
    return {"train_files": [f"VOC2012/JPEGImages/{i}.jpg" for i in train]}
