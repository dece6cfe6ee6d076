"""CIFAR-10 / CIFAR-100 and their long-tailed versions (Cui et al., CVPR 2019, Sec. 5.1 and Table 2).

Sources, in order of preference:
  * the official "python version" archives, extracted under `root`: `<root>/cifar-10-batches-py`
    (data_batch_1..5, test_batch, batches.meta) or `<root>/cifar-100-python` (train, test, meta).  Each
    file is a pickled dict with b"data" uint8 [N, 3072] (row-major 3x32x32, CHW) and b"labels" (CIFAR-10)
    or b"fine_labels" (CIFAR-100).  We read them ourselves rather than through torchvision.datasets.CIFAR10,
    which insists on the official md5 sums and so refuses anything else (e.g. the small trees the tests
    write); torchvision still does the downloading (same URL and md5 as torchvision's CIFAR classes).
  * a prepared .npz with x_train/x_test uint8 [N, 32, 32, 3], y_train/y_test integers and optional
    class_names (e.g. ../shared/data/cifar10_jpeg_lossy.npz), or a partial copy of one (partial_copy.py: the
    images of one long-tailed subset, which a run reads under the original's data-source id).

The long-tailed training set keeps n_i = int(n_max * (1/IF) ** (i/(C-1))) images of class i (see
long_tail.py); the test set is the full balanced one.  Pickles are trusted input, as in torchvision.
"""

from __future__ import annotations

import os
import pickle
import zipfile
import zlib
from pathlib import Path

import numpy as np

from cbl.data.arrays import ArraySplit, check_images, check_labels
from cbl.data.long_tail import long_tail_counts, long_tail_indices
from cbl.data.partial_copy import marks as partial_marks
from cbl.data.provenance import DataSource, cifar_folder_source, file_digest, npz_source

CIFAR_SPECS = {
    "cifar10": dict(
        title="CIFAR-10", num_classes=10, n_max=5000, source="CIFAR10", folder="cifar-10-batches-py",
        train=[f"data_batch_{i}" for i in range(1, 6)], test=["test_batch"], meta="batches.meta",
        label_key="labels", names_key="label_names",
    ),
    "cifar100": dict(
        title="CIFAR-100", num_classes=100, n_max=500, source="CIFAR100", folder="cifar-100-python",
        train=["train"], test=["test"], meta="meta", label_key="fine_labels", names_key="fine_label_names",
    ),
}
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _spec(name: str) -> dict:
    if name not in CIFAR_SPECS:
        raise ValueError(f"unknown CIFAR variant {name!r}; choose one of {', '.join(CIFAR_SPECS)}")
    return CIFAR_SPECS[name]


def _torchvision_class(spec: dict):
    """torchvision's dataset class of this variant, for its URL, archive name and md5 sums.  Imported when needed:
    importing torchvision takes about as long as importing torch, and reading arrays needs neither."""
    from torchvision import datasets

    return getattr(datasets, spec["source"])


def _text(v) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def _unpickle(path: Path) -> dict:
    """One archive file as a dict with str keys.  The official files are Python 2 pickles (str keys read
    back as str with encoding="latin1"); files written by Python 3 have bytes keys: accept both."""
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="latin1")
    except Exception as e:  # a truncated / overwritten file raises any of several exception types
        raise ValueError(f"cannot read CIFAR file {path} ({type(e).__name__}: {e}); delete the folder and extract the archive again") from None
    if not isinstance(d, dict):
        raise ValueError(f"CIFAR file {path} holds a {type(d).__name__}, expected a pickled dict")
    return {_text(k): v for k, v in d.items()}


def _read_batches(folder: Path, files: list[str], label_key: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for name in files:
        path = folder / name
        d = _unpickle(path)
        if "data" not in d or label_key not in d:
            raise ValueError(f"CIFAR file {path} lacks key 'data' or {label_key!r}; has {sorted(d)}")
        data = np.asarray(d["data"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"CIFAR file {path}: 'data' must be uint8 [N, 3072]; got {data.dtype} {data.shape}")
        labels = np.asarray(d[label_key])
        if labels.shape != (len(data),):
            raise ValueError(f"CIFAR file {path}: {len(labels)} labels for {len(data)} images")
        xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # CHW rows -> HWC images
        ys.append(labels.astype(np.int64))
    return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys)


def download_cifar(name: str, root: str | os.PathLike) -> None:
    """Fetch and extract the official archive into `root` with torchvision's downloader (md5-checked)."""
    from torchvision.datasets.utils import download_and_extract_archive

    src = _torchvision_class(_spec(name))
    download_and_extract_archive(src.url, str(root), filename=src.filename, md5=src.tgz_md5)


def _missing_message(spec: dict, folder: Path, tried_download: bool) -> str:
    src = _torchvision_class(spec)
    how = "" if tried_download else ", or set dataset.download=true with network access"
    return f"{spec['title']} not found at {folder}; download {src.url} and extract it into {folder.parent}/{how}"


def official_md5(name: str) -> dict[str, str]:
    """{file name: md5} of the official python-version archive's files (torchvision's list)."""
    src = _torchvision_class(_spec(name))
    return {f: md5 for f, md5 in src.train_list + src.test_list} | {src.meta["filename"]: src.meta["md5"]}


def cifar_source(name: str, root: str | os.PathLike, npz: str | os.PathLike | None) -> DataSource:
    """The data source a load_cifar_lt call reads (provenance.py): the .npz's hash, or the archive folder checked
    against the official md5 sums."""
    if npz is not None:
        return npz_source(npz)
    spec = _spec(name)
    return cifar_folder_source(Path(root) / spec["folder"], spec["train"] + spec["test"] + [spec["meta"]], official_md5(name))


def read_cifar_folder(name: str, root: str | os.PathLike, download: bool = False):
    """(x_train, y_train, x_test, y_test, class_names) from the extracted python-version archive."""
    spec = _spec(name)
    folder = Path(root) / spec["folder"]
    files = spec["train"] + spec["test"] + [spec["meta"]]
    if not all((folder / f).is_file() for f in files):
        if not download:
            raise FileNotFoundError(_missing_message(spec, folder, tried_download=False))
        try:
            download_cifar(name, root)
        except Exception as e:  # no network, proxy errors, bad md5: all mean "the data is not here"
            raise FileNotFoundError(f"{_missing_message(spec, folder, tried_download=True)} (download failed: {type(e).__name__}: {e})") from None
        missing = [f for f in files if not (folder / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{_missing_message(spec, folder, tried_download=True)} (after download, still missing {missing})")
    x_train, y_train = _read_batches(folder, spec["train"], spec["label_key"])
    x_test, y_test = _read_batches(folder, spec["test"], spec["label_key"])
    meta = _unpickle(folder / spec["meta"])
    if spec["names_key"] not in meta:
        raise ValueError(f"CIFAR file {folder / spec['meta']} lacks key {spec['names_key']!r}; has {sorted(meta)}")
    class_names = [_text(n) for n in meta[spec["names_key"]]]
    return x_train, y_train, x_test, y_test, class_names


#: what np.load raises on a file that is not a readable .npz: not a zip, a truncated or corrupt member, pickled data
UNREADABLE_NPZ = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def read_cifar_npz(path: str | os.PathLike, num_classes: int):
    """(x_train, y_train, x_test, y_test, class_names) from a prepared .npz, validated."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR .npz not found at {path}; pass the path of an .npz with keys {', '.join(NPZ_KEYS)}")
    try:
        with np.load(path, allow_pickle=False) as d:
            arrays = {k: d[k] for k in d.files}
    except UNREADABLE_NPZ as e:  # only a bad file: a stop signal or a bug while reading is not the file's fault
        raise ValueError(f"cannot read {path} as .npz ({type(e).__name__}: {e})") from None
    missing = [k for k in NPZ_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{path} lacks keys {missing}; needs {', '.join(NPZ_KEYS)} (and optionally class_names)")
    x_train, x_test = (check_images(f"{path.name}:{k}", arrays[k]) for k in ("x_train", "x_test"))
    for k, x in (("x_train", x_train), ("x_test", x_test)):
        if x.shape[1:] != (32, 32, 3):
            raise ValueError(f"{path.name}:{k} must be uint8 [N, 32, 32, 3]; got shape {x.shape}")
    y_train = check_labels(f"{path.name}:y_train", arrays["y_train"], len(x_train), num_classes)
    y_test = check_labels(f"{path.name}:y_test", arrays["y_test"], len(x_test), num_classes)
    names = [str(n) for n in arrays["class_names"]] if "class_names" in arrays else [str(c) for c in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{path.name}:class_names has {len(names)} names; expected {num_classes}")
    return x_train, y_train, x_test, y_test, names


def load_cifar_lt(
    name: str,
    root: str | os.PathLike = "data",
    imbalance_factor: float = 100.0,
    subset_seed: int = 0,
    download: bool = True,
    npz: str | os.PathLike | None = None,
    n_max: int | None = None,
) -> ArraySplit:
    """Long-tailed CIFAR training set + the full balanced test set.

    name: "cifar10" or "cifar100".  npz, when given, is read instead of the archive folder under root.
    n_max defaults to the paper's head size (5000 for CIFAR-10, 500 for CIFAR-100).
    """
    spec = _spec(name)
    c = spec["num_classes"]
    if npz is not None:
        x_train, y_train, x_test, y_test, names = read_cifar_npz(npz, c)
    else:
        x_train, y_train, x_test, y_test, names = read_cifar_folder(name, root, download)
        y_train = check_labels(f"{spec['title']} train labels", y_train, len(x_train), c)
        y_test = check_labels(f"{spec['title']} test labels", y_test, len(x_test), c)
        if len(names) != c:
            raise ValueError(f"{spec['title']} meta lists {len(names)} class names; expected {c}")
    counts = long_tail_counts(spec["n_max"] if n_max is None else n_max, c, imbalance_factor)
    keep = long_tail_indices(y_train, counts, subset_seed)
    source = cifar_source(name, root, npz)
    if npz is not None and (partial := partial_marks(npz)) is not None:
        # a partial copy (cbl/data/partial_copy.py) holds the original's pixels for the subsets it was packed for
        if not partial["train"][keep].all():
            raise ValueError(f"{npz} is a partial copy of {partial['of']} holding {int(partial['train'].sum())} training "
                             f"images; imbalance_factor={imbalance_factor:g} subset_seed={subset_seed} needs "
                             f"{int((~partial['train'][keep]).sum())} it lacks: use the whole copy, or pack this subset")
        source = DataSource(partial["of"], f"{Path(npz).resolve()} sha256 {file_digest(npz)}: {partial['detail']}")
    return ArraySplit(x_train[keep], y_train[keep], x_test, y_test, names, counts, source=source)
