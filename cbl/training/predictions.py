"""A run's test-set predictions, saved so that calibration, bootstrap intervals and test-split model selection
(cbl.evaluation.calibration, cbl.reporting.comparisons) can be computed later without the model.

    <run>/predictions_last.npz   the last epoch's evaluation (every run, unless save_predictions=false)
    <run>/predictions_best.npz   the best top-1 epoch's (runs with keep_best=true)

Each file is a compressed .npz with
    logits       float32 [N, C]  the model's outputs on the N test images, in the test set's own order
    labels       int64 [N]       the true classes
    epoch        int             the evaluated epoch
    probability  str             the head's class probabilities ("softmax" / "sigmoid", cbl.evaluation.calibration)
    logit_scale  float           the factor softmax logits are multiplied by (LDAM's s; 1 otherwise)
Two runs on the same test set therefore hold their predictions for the same images row by row: the files of any two
runs can be paired.  The logits are kept in float32 (4 bytes x N x C: 0.4 MB for CIFAR-10, 200 MB for the ILSVRC
validation set), so that the top-1 errors recomputed from a file equal metrics.json's exactly.

Under DDP each rank evaluates its share of every test batch (cbl.data.epoch.rank_slice); `PredictionCollector`
puts each rank's rows back at their positions, so the file does not depend on the number of processes.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from cbl.data.epoch import rank_slice
from cbl.training.checkpoint import atomic_write

LAST = "predictions_last.npz"
BEST = "predictions_best.npz"
ARRAYS = ("logits", "labels", "epoch", "probability", "logit_scale")


class PredictionsError(Exception):
    """A predictions file that cannot be read; the message is one line naming the file."""


def shard_positions(n: int, batch_size: int, rank: int, world_size: int) -> np.ndarray:
    """The test-set positions rank `rank` evaluates, in the order it sees them (every global batch's slice)."""
    batches = (n + batch_size - 1) // batch_size
    return np.concatenate([np.arange(n)[rank_slice(k, n, batch_size, rank, world_size)] for k in range(batches)]
                          or [np.zeros(0, dtype=np.int64)])


class PredictionCollector:
    """`on_batch` for cbl.training.engine.evaluate: keeps the batches' float32 logits and labels on the host."""

    def __init__(self) -> None:
        self.logits: list[Tensor] = []
        self.labels: list[Tensor] = []

    def __call__(self, logits: Tensor, labels: Tensor) -> None:
        self.logits.append(logits.detach().float().cpu())
        self.labels.append(labels.detach().cpu().long())

    def local(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.logits:
            return np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.int64)
        return torch.cat(self.logits).numpy(), torch.cat(self.labels).numpy()

    def gather(self, batch_size: int, rank: int = 0, world_size: int = 1) -> tuple[np.ndarray, np.ndarray] | None:
        """(logits [N, C], labels [N]) in test-set order on rank 0 (None on the other ranks).  `batch_size` is the
        global eval batch the loader was built with."""
        logits, labels = self.local()
        if world_size == 1:
            return logits, labels
        parts: list[Any] = [None] * world_size
        dist.all_gather_object(parts, (logits, labels))  # every rank takes part; rank 0 keeps the result
        if rank != 0:
            return None
        n = sum(len(lab) for _, lab in parts)
        classes = next(lg.shape[1] for lg, lab in parts if len(lab))
        all_logits = np.zeros((n, classes), dtype=np.float32)
        all_labels = np.zeros(n, dtype=np.int64)
        for r, (lg, lab) in enumerate(parts):
            pos = shard_positions(n, batch_size, r, world_size)
            all_logits[pos], all_labels[pos] = lg, lab
        return all_logits, all_labels


def save_predictions(path: str | Path, logits: np.ndarray, labels: np.ndarray, *, epoch: int, probability: str,
                     logit_scale: float = 1.0) -> Path:
    """Write a predictions file atomically (a reader never sees half of one)."""
    logits, labels = np.asarray(logits, dtype=np.float32), np.asarray(labels, dtype=np.int64)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"predictions need logits [N, C] and labels [N]; got {logits.shape} and {labels.shape}")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, logits=logits, labels=labels, epoch=np.int64(epoch), probability=np.str_(probability),
                        logit_scale=np.float64(logit_scale))
    return atomic_write(path, lambda f: f.write(buffer.getvalue()))


def load_predictions(path: str | Path) -> dict[str, Any]:
    """A predictions file's arrays: logits (float32 [N, C]), labels (int64 [N]), epoch, probability, logit_scale."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ARRAYS if k not in f.files]
            if missing:
                raise PredictionsError(f"{path} is not a predictions file: it lacks {', '.join(missing)}")
            out = {"logits": f["logits"].astype(np.float32), "labels": f["labels"].astype(np.int64),
                   "epoch": int(f["epoch"]), "probability": str(f["probability"]), "logit_scale": float(f["logit_scale"])}
    except PredictionsError:
        raise
    except FileNotFoundError:
        raise PredictionsError(f"{path}: no such predictions file") from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:  # a truncated or foreign file
        raise PredictionsError(f"{path} cannot be read as a predictions file ({type(e).__name__}: {e})") from None
    if out["logits"].ndim != 2 or out["labels"].shape != (out["logits"].shape[0],):
        raise PredictionsError(f"{path}: logits {out['logits'].shape} and labels {out['labels'].shape} do not pair up")
    return out
