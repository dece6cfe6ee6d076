"""Small datasets written in the REAL on-disk formats, for the cbl.data tests.

CIFAR: the official python-version archives are Python 2 cPickle (protocol 2) dicts whose keys and class
names are Python 2 `str` (BINSTRING opcodes: bytes to `encoding="bytes"`, str to torchvision's
`encoding="latin1"`), data uint8 [N, 3072] holding each image as its R, G and B planes in row-major order
(CHW flattened), labels a list of ints.  We write the images from HWC arrays here, so a reader that mixes up
the layout fails the tests.  `py2=False` writes Python 3 bytes keys instead (a re-pickled copy).
"""

from __future__ import annotations

import io
import json
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def cifar_images(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """Random uint8 HWC images."""
    return rng.integers(0, 256, size=(len(labels), 32, 32, 3), dtype=np.uint8)


def _to_rows(x_hwc: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x_hwc.transpose(0, 3, 1, 2).reshape(len(x_hwc), 3072))


class Py2Str(bytes):
    """Pickled as a Python 2 `str` (SHORT_BINSTRING / BINSTRING), as in the official CIFAR files."""


class _Py2Pickler(pickle._Pickler):
    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2str(self, obj):
        b = bytes(obj)
        self.write(pickle.SHORT_BINSTRING + bytes([len(b)]) + b if len(b) < 256 else pickle.BINSTRING + struct.pack("<i", len(b)) + b)
        self.memoize(obj)

    dispatch[Py2Str] = save_py2str


def _py2(obj):
    if isinstance(obj, bytes):
        return Py2Str(obj)
    if isinstance(obj, dict):
        return {_py2(k): _py2(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_py2(v) for v in obj]
    return obj


def _dump(path: Path, obj: dict, py2: bool = True) -> None:
    buf = io.BytesIO()
    if py2:
        _Py2Pickler(buf, protocol=2).dump(_py2(obj))
    else:
        pickle.dump(obj, buf, protocol=2)
    path.write_bytes(buf.getvalue())


def write_cifar10(root: Path, per_class_train: int, per_class_test: int, seed: int = 0, py2: bool = True):
    """<root>/cifar-10-batches-py with data_batch_1..5, test_batch, batches.meta; returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    y_train = rng.permutation(np.repeat(np.arange(10), per_class_train))
    y_test = rng.permutation(np.repeat(np.arange(10), per_class_test))
    x_train, x_test = cifar_images(rng, y_train), cifar_images(rng, y_test)
    for b, part in enumerate(np.array_split(np.arange(len(y_train)), 5), start=1):
        _dump(folder / f"data_batch_{b}", {
            b"batch_label": f"training batch {b} of 5".encode(), b"labels": y_train[part].tolist(),
            b"data": _to_rows(x_train[part]), b"filenames": [f"img_{i}.png".encode() for i in part],
        }, py2)
    _dump(folder / "test_batch", {b"batch_label": b"testing batch 1 of 1", b"labels": y_test.tolist(),
                                  b"data": _to_rows(x_test), b"filenames": [b"t.png"] * len(y_test)}, py2)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    _dump(folder / "batches.meta", {b"num_cases_per_batch": len(y_train) // 5, b"label_names": names, b"num_vis": 3072}, py2)
    return x_train, y_train, x_test, y_test, [n.decode() for n in names]


def write_cifar100(root: Path, per_class_train: int, per_class_test: int, seed: int = 0, py2: bool = True):
    """<root>/cifar-100-python with train, test, meta (fine and coarse labels); returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for split, per_class in (("train", per_class_train), ("test", per_class_test)):
        y = rng.permutation(np.repeat(np.arange(100), per_class))
        x = cifar_images(rng, y)
        _dump(folder / split, {b"filenames": [b"f.png"] * len(y), b"batch_label": split.encode(), b"fine_labels": y.tolist(),
                               b"coarse_labels": (y // 5).tolist(), b"data": _to_rows(x)}, py2)
        out += [x, y]
    names = [f"class_{i:03d}".encode() for i in range(100)]
    _dump(folder / "meta", {b"fine_label_names": names, b"coarse_label_names": [f"super_{i}".encode() for i in range(20)]}, py2)
    return (*out, [n.decode() for n in names])


def marker_images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """uint8 [n, size, size, 3]: channel 0 = row + 1, channel 1 = column + 1, channel 2 random in 1..255.

    Padding pixels are 0 in every channel, so the crop offset and flip of an augmented copy can be read off
    its pixels (see recover_crop)."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, size, size, 3), dtype=np.uint8)
    x[..., 0] = np.arange(1, size + 1)[None, :, None]
    x[..., 1] = np.arange(1, size + 1)[None, None, :]
    x[..., 2] = rng.integers(1, 256, size=(n, size, size))
    return x


def recover_crop(x_uint8_chw: np.ndarray, pad: int = 4) -> tuple[int, int, bool]:
    """(dy, dx, flipped) of a marker image after zero-pad `pad` + crop at (dy, dx) + optional hflip."""
    c = x_uint8_chw.shape[-1] // 2  # the centre pixel always comes from the image, never from the padding
    row, col, col_next = int(x_uint8_chw[0, c, c]), int(x_uint8_chw[1, c, c]), int(x_uint8_chw[1, c, c + 1])
    flipped = col_next < col
    dy = row - 1 - c + pad
    # unflipped: output column c reads crop column c; flipped: crop column (size-1-c)
    dx = col - 1 - (x_uint8_chw.shape[-1] - 1 - c if flipped else c) + pad
    return dy, dx, flipped


def write_jpeg(path: Path, rgb: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, rgb).save(path, format="JPEG", quality=95)


def write_inat(root: Path, year: int, train_per_cat: dict[int, int], val_per_cat: dict[int, int], colours: dict[int, tuple]):
    """A tiny iNaturalist tree in the official layout: <root>/{train,val}<year>.json and the image folders.

    Category ids are the dict keys (any order, gaps allowed); every image of category k is colour[k]."""
    image_dir = {2017: "train_val_images", 2018: "train_val2018"}[year]
    cats = [{"id": k, "name": f"Species {k}", "supercategory": "Plantae" if k % 2 else "Aves"} for k in train_per_cat]
    image_id = 1000
    for split, per_cat in (("train", train_per_cat), ("val", val_per_cat)):
        images, annotations = [], []
        for k, n in per_cat.items():
            for _ in range(n):
                image_id += 1
                supercategory = "Plantae" if k % 2 else "Aves"
                rel = f"{image_dir}/{supercategory}/Species {k}/{image_id:08x}.jpg"
                write_jpeg(root / rel, colours[k])
                images.append({"id": image_id, "file_name": rel, "width": 40, "height": 30, "license": 1, "rights_holder": "x"})
                annotations.append({"id": image_id + 5, "image_id": image_id, "category_id": k})
        doc = {"info": {"year": year}, "licenses": [], "images": images, "annotations": annotations, "categories": cats}
        (root / f"{split}{year}.json").write_text(json.dumps(doc))


def write_imagefolder(root: Path, split: str, per_class: dict[str, int], colours: dict[str, tuple]) -> None:
    for wnid, n in per_class.items():
        for i in range(n):
            write_jpeg(root / split / wnid / f"{wnid}_{i}.JPEG", colours[wnid])


def write_image(path: Path, rgb: tuple[int, int, int], size: tuple[int, int] = (20, 14)) -> None:
    """A solid-colour image; the format follows the suffix (.jpg / .JPEG / .png / ...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, rgb).save(path)


def write_listed_images(root: Path, folder: str, per_class: dict[int, int], colours: dict[int, tuple],
                        suffix: str = ".jpg") -> list[tuple[str, int]]:
    """Images <root>/<folder>/class_<k>/<k>_<i><suffix> of colour colours[k]; returns their (relative path, label)."""
    entries = []
    for k, n in per_class.items():
        for i in range(n):
            rel = f"{folder}/class_{k}/{k}_{i}{suffix}"
            write_image(root / rel, colours[k])
            entries.append((rel, k))
    return entries


def write_image_list(path: Path, entries: list[tuple[str, int]] | list[str]) -> Path:
    """A list file in the ImageNet-LT / Places-LT split-file format: one "<relative path> <label>" line per image
    (strings are written as given, for malformed lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((e if isinstance(e, str) else f"{e[0]} {e[1]}") + "\n" for e in entries))
    return path
