"""A partial copy of a CIFAR .npz: the training images of one long-tailed subset and the whole test set, packed
losslessly, for a machine the whole copy cannot travel to (the device kit, scripts/device_kit.py: 64 MiB in all).

    pack(npz, imbalance_factor, subset_seed)   -> a .npz of WebP-lossless images (Pillow), about half the raw size
    unpack(pack, folder)                       -> an .npz that cbl reads with dataset.npz=..., every pixel checked

The unpacked file has the original's shape: x_train holds the packed images at their original positions and zeros
elsewhere, with all the original labels, so `long_tail_indices` picks exactly the images (and in the same order)
that it picks from the original, and a run on it reads the very pixels a run on the original reads.  It carries

    partial_train   bool [N]: which training images it holds
    partial_of      the original's data-source id (cbl/data/provenance.py), partial_detail: how it was made

and cbl.data.cifar gives a run on it the original's data-source id only after checking that the run's subset lies
inside `partial_train` (any other imbalance factor or subset seed is refused with one line).  The pixels are checked
twice: `pack` decodes every packed image and compares it with the original, and `unpack` compares a sha256 over the
decoded pixels with the one `pack` computed from the original.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np

from cbl.data.long_tail import long_tail_counts, long_tail_indices

#: WebP lossless at Pillow's method 2: about 0.49 of the raw bytes on the lossy CIFAR-10 copy, 0.3 ms an image
WEBP = {"format": "WEBP", "lossless": True, "quality": 100, "method": 2}
MARKS = ("partial_train", "partial_of", "partial_detail")


def _pil():
    from PIL import Image

    return Image


def _encode(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(concatenated WebP bytes, offsets [M + 1]) of uint8 [M, H, W, 3] images."""
    image_cls = _pil()
    blobs = []
    for x in images:
        buffer = io.BytesIO()
        image_cls.fromarray(x, "RGB").save(buffer, **WEBP)
        blobs.append(buffer.getvalue())
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    return np.frombuffer(b"".join(blobs), dtype=np.uint8), offsets


def _decode(data: np.ndarray, offsets: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    image_cls = _pil()
    out = np.empty((len(offsets) - 1, *shape), dtype=np.uint8)
    raw = data.tobytes()
    for i in range(len(out)):
        out[i] = np.asarray(image_cls.open(io.BytesIO(raw[offsets[i] : offsets[i + 1]])).convert("RGB"))
    return out


def _pixels_sha256(train: np.ndarray, test: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in (train, test):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def pack(npz: str | os.PathLike, out: str | os.PathLike, *, num_classes: int = 10, imbalance_factor: float = 100,
         subset_seed: int = 0, n_max: int | None = None) -> Path:
    """Write the partial copy of `npz` for one long-tailed subset (CIFAR's n_max by default) to `out`."""
    from cbl.data.cifar import read_cifar_npz
    from cbl.data.provenance import npz_source

    x_train, y_train, x_test, y_test, names = read_cifar_npz(npz, num_classes)
    n_max = {10: 5000, 100: 500}[num_classes] if n_max is None else n_max
    positions = long_tail_indices(y_train, long_tail_counts(n_max, num_classes, imbalance_factor), subset_seed)
    train_data, train_offsets = _encode(x_train[positions])
    test_data, test_offsets = _encode(x_test)
    shape = x_train.shape[1:]
    # lossless must mean lossless: every image decodes to its original pixels
    if not (np.array_equal(_decode(train_data, train_offsets, shape), x_train[positions])
            and np.array_equal(_decode(test_data, test_offsets, shape), x_test)):
        raise ValueError("WebP lossless round trip changed pixels: this Pillow build cannot pack a partial copy")
    source = npz_source(npz)
    subset = f"imbalance_factor={imbalance_factor:g} subset_seed={subset_seed} n_max={n_max}"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, train_positions=positions, train_data=train_data, train_offsets=train_offsets, test_data=test_data,
             test_offsets=test_offsets, y_train=y_train, y_test=y_test, class_names=np.asarray(names, dtype=str),
             image_shape=np.asarray(shape, dtype=np.int64), train_size=np.int64(len(x_train)),
             pixels_sha256=np.str_(_pixels_sha256(x_train[positions], x_test)), source_id=np.str_(source.id),
             source_detail=np.str_(source.detail), source_name=np.str_(Path(npz).name), subset=np.str_(subset))
    return out


def unpack(packed: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Write the .npz a run reads (module docstring) from a packed partial copy into `folder`, under the original's
    file name (a run's name depends on the .npz's file name, not its folder: cbl.training.run_identity.run_identity), its pixels
    checked.  Returns the file written."""
    with np.load(packed, allow_pickle=False) as f:
        p = {k: f[k] for k in f.files}
    shape = tuple(int(v) for v in p["image_shape"])
    kept = _decode(p["train_data"], p["train_offsets"], shape)
    x_test = _decode(p["test_data"], p["test_offsets"], shape)
    if _pixels_sha256(kept, x_test) != str(p["pixels_sha256"]):
        raise ValueError(f"{packed}: the unpacked pixels do not match the original's sha256; the file is damaged")
    n = int(p["train_size"])
    x_train = np.zeros((n, *shape), dtype=np.uint8)
    x_train[p["train_positions"]] = kept
    mask = np.zeros(n, dtype=bool)
    mask[p["train_positions"]] = True
    detail = (f"{p['source_detail']}; partial copy ({p['subset']}: {len(kept)} training images and the {len(x_test)} "
              f"test images, pixels sha256 {p['pixels_sha256']})")
    out = Path(folder) / str(p["source_name"])
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, x_train=x_train, y_train=p["y_train"], x_test=x_test, y_test=p["y_test"], class_names=p["class_names"],
             partial_train=mask, partial_of=p["source_id"], partial_detail=np.str_(detail))
    return out


def marks(npz: str | os.PathLike) -> dict | None:
    """The partial-copy marks of an .npz ({"train": bool mask, "of": id, "detail": str}), None for a whole copy."""
    with np.load(npz, allow_pickle=False) as f:
        if not all(k in f.files for k in MARKS):
            return None
        return {"train": f["partial_train"].astype(bool), "of": str(f["partial_of"]), "detail": str(f["partial_detail"])}
