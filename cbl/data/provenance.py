"""Where a run's images came from: a data-source label recorded with every run (config.yaml, metrics.json).

A table may only average runs that saw the same images, and only a run on the official release may stand
beside the paper's numbers (Cui et al., CVPR 2019, Tables 2 and 3).  So every run records a `DataSource`:

    id        "official" for the official release, checked, not assumed:
                CIFAR-10/100   every file of the extracted python-version archive has torchvision's md5 sum
                iNaturalist    the train / val JSON files list the official numbers of images and classes
                ILSVRC 2012    the train / val folders hold the official numbers of images and classes
                ImageNet-LT, Places-LT   the split files list the official numbers of train / test images and
                               classes (Liu et al., CVPR 2019; a run evaluated on the val list is not "official":
                               papers report the test list)
              otherwise "<kind>:<name>@sha256:<first 16 hex digits>", e.g.
                "npz:cifar10_jpeg_lossy.npz@sha256:1a2b...", a hash of what was read: the file's bytes (an .npz,
                a CIFAR folder's files, iNaturalist's JSON files), the sorted (relative path, label) list of an
                image folder (ILSVRC, imagefolder; the pixels are not hashed), or the list files (listfile);
                your own data (imagefolder, listfile) is never "official"
    official  id == "official"
    detail    one line saying how the id was established (file names, sizes, full hashes)

Content hashes are computed once per file per process (keyed by path, size and modification time).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

OFFICIAL = "official"
#: images (train, val) and classes of the official large-scale releases
OFFICIAL_SIZES = {
    "inat2017": (579_184, 95_986, 5089),
    "inat2018": (437_513, 24_426, 8142),
    "ilsvrc2012": (1_281_167, 50_000, 1000),
    # (train, test, classes) of the split files of Liu et al., CVPR 2019 (github.com/zhmiao/OpenLongTailRecognition-OLTR);
    # ImageNet-LT as listed by TensorFlow Datasets' imagenet_lt (val 20,000 / test 50,000); Places-LT 62,500 train
    # images over 365 classes as reported for the current release, test 36,500 (100 per class; val 7,300) as
    # commonly reported: if a real copy disagrees, it is labelled by its hash, never wrongly "official"
    "imagenet_lt": (115_846, 50_000, 1000),
    "places_lt": (62_500, 36_500, 365),
    # (train, test, classes) of the multi-label long-tailed splits of Wu et al., ECCV 2020
    # (github.com/wutong16/DistributionBalancedLoss): COCO-MLT on COCO val2017, VOC-MLT on VOC 2007 test
    "coco_mlt": (1_909, 5_000, 80),
    "voc_mlt": (1_142, 4_952, 20),
}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class DataSource:
    id: str
    detail: str

    @property
    def official(self) -> bool:
        return self.id == OFFICIAL

    def record(self) -> dict:
        """What config.yaml and metrics.json store."""
        return {**asdict(self), "official": self.official}


@lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's content (cached while the file keeps its size and modification time)."""
    p = Path(path).resolve()
    st = p.stat()
    return _digest(str(p), st.st_size, st.st_mtime_ns, algorithm)


def combined_digest(parts: Iterable[str]) -> str:
    """sha256 over a sequence of strings (file names with their hashes, or a list of samples)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def _official_note(name: str) -> str:
    official = OFFICIAL_SIZES.get(name)
    return f"official: {official}" if official else "no official release to compare with"


def hashed(kind: str, name: str, sha256: str, detail: str) -> DataSource:
    return DataSource(f"{kind}:{name}@sha256:{sha256[:16]}", detail)


def npz_source(path: str | os.PathLike) -> DataSource:
    sha = file_digest(path)
    return hashed("npz", Path(path).name, sha, f"{Path(path).resolve()} sha256 {sha}")


def cifar_folder_source(folder: Path, files: list[str], official_md5: dict[str, str]) -> DataSource:
    """"official" when every file has the md5 sum of the official archive (torchvision's list); else the hash."""
    md5 = {f: file_digest(folder / f, "md5") for f in files}
    if md5 == {f: official_md5.get(f) for f in files}:
        return DataSource(OFFICIAL, f"{folder}: {len(files)} files with the official archive's md5 sums")
    wrong = sorted(f for f in files if md5[f] != official_md5.get(f))
    sha = combined_digest(f"{f} {file_digest(folder / f)}" for f in files)
    return hashed("folder", folder.name, sha, f"{folder}: md5 differs from the official archive for {', '.join(wrong)}; "
                                               f"sha256 over the files {sha}")


def annotation_source(name: str, files: list[Path], sizes: tuple[int, int, int]) -> DataSource:
    """iNaturalist: official when the JSON files list the official numbers of (train, val) images and classes."""
    sha = combined_digest(f"{p.name} {file_digest(p)}" for p in files)
    what = f"{', '.join(p.name for p in files)}: {sizes[0]} train / {sizes[1]} val images, {sizes[2]} classes"
    if sizes == OFFICIAL_SIZES.get(name):
        return DataSource(OFFICIAL, f"{what} (the official release); sha256 {sha}")
    return hashed("files", name, sha, f"{what} ({_official_note(name)}); sha256 {sha}")


def sample_list_source(name: str, root: Path, samples: Iterable[tuple[str, int]], sizes: tuple[int, int, int]) -> DataSource:
    """ILSVRC 2012 folders: official when they hold the official numbers of images and classes; the hash is over the
    sorted (relative path, label) list, so renaming the root keeps it and moving one image changes it."""
    sha = combined_digest(sorted(f"{os.path.relpath(p, root)} {y}" for p, y in samples))
    what = f"{root}: {sizes[0]} train / {sizes[1]} val images, {sizes[2]} classes"
    if sizes == OFFICIAL_SIZES.get(name):
        return DataSource(OFFICIAL, f"{what} (the official release); sha256 of the sample list {sha}")
    return hashed("folder", name, sha, f"{what} ({_official_note(name)}); sha256 of the sample list {sha}")


def list_file_source(name: str, files: list[Path], sizes: tuple[int, int, int]) -> DataSource:
    """Image lists (`path label` lines): the sha256 of the list files; official when they list the official
    numbers of (train, eval) images and classes (ImageNet-LT / Places-LT with their test list)."""
    sha = combined_digest(f"{p.name} {file_digest(p)}" for p in files)
    what = f"{', '.join(p.name for p in files)}: {sizes[0]} train / {sizes[1]} eval images, {sizes[2]} classes"
    if sizes == OFFICIAL_SIZES.get(name):
        return DataSource(OFFICIAL, f"{what} (the official split files); sha256 {sha}")
    return hashed("files", name, sha, f"{what} ({_official_note(name)}); sha256 {sha}")


#: scikit-learn's bundled copy of the UCI digits: one release, shipped with the library
DIGITS_SOURCE = DataSource(OFFICIAL, "scikit-learn load_digits (the UCI optical digits bundled with scikit-learn)")
