"""What `cbl-evaluate` writes beside a run (cbl/evaluate.py): the evaluation pass that also collects the top-1
predictions, the confusion matrix, and the two figures.

The errors and per-class accuracies come from `cbl.evaluation.metrics.EvalAccumulator` over the same batches as training's
evaluation (`cbl.training.engine.evaluate`), so a checkpoint's numbers are those training recorded; the predictions are
`argmax` of the same logits, which for top-1 is the very rule of cbl/evaluation/metrics.py (the first of tied maxima), so the
confusion matrix's diagonal equals the per-class correct counts.

Files (in the output folder):
    evaluation.json           written by cbl/evaluate.py from `EvalResult` (not metrics.json: that marks a run folder)
    predictions.npz           logits and labels of every test image, in test-set order (cbl/training/predictions.py's format:
                              the top-1 prediction is logits.argmax(1))
    confusion.npy             int64 [true class, predicted class], up to DENSE_MAX classes
    confusion.csv             the same with class names, up to CSV_MAX classes
    confusion.png             row-normalised confusion (classes in label order, binned to PNG_BINS groups beyond that)
    per_class_accuracy.png    each class's top-1 accuracy against its number of training images (log x), with the
                              many / medium / few-shot thresholds of cbl.evaluation.metrics.shot_accuracy
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cbl.training.predictions import PredictionCollector, save_predictions
from cbl.training.engine import evaluate

#: a dense [C, C] int64 matrix up to this many classes (ILSVRC's 1000: 8 MB); beyond, predictions.npz holds the pairs
DENSE_MAX = 2000
#: confusion.csv (a table a person reads) up to this many classes
CSV_MAX = 100
#: confusion.png shows at most this many rows / columns (classes grouped in label order beyond that)
PNG_BINS = 100


@dataclass
class EvalResult:
    metrics: dict  # EvalAccumulator.compute(): top1_err, top5_err, per_class_acc, n (and ece, nll)
    labels: np.ndarray  # [N] true class of each test image
    predicted: np.ndarray  # [N] top-1 prediction
    logits: np.ndarray | None = None  # [N, C] float32
    probability: str = "softmax"  # the head's class probabilities (cbl.evaluation.calibration)
    logit_scale: float = 1.0
    epoch: int = 0


@torch.no_grad()
def evaluate_with_predictions(model: nn.Module, loader: Iterable, num_classes: int, *, device: torch.device,
                              amp_dtype: torch.dtype | None = None, probability: str = "softmax",
                              logit_scale: float = 1.0, epoch: int = 0) -> EvalResult:
    """`cbl.training.engine.evaluate` (with the calibration of the head's `probability`), keeping each example's
    logits, label and top-1 prediction."""
    keep = PredictionCollector()
    metrics = evaluate(model, loader, num_classes, device=device, amp_dtype=amp_dtype, on_batch=keep,
                       probability=probability, logit_scale=logit_scale)
    logits, labels = keep.local()
    predicted = logits.argmax(1).astype(np.int64)  # argmax: the first of tied maxima, as cbl.evaluation.metrics ranks them
    return EvalResult(metrics, labels, predicted, logits, probability, logit_scale, epoch)


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 [true, predicted] counts."""
    flat = labels.astype(np.int64) * num_classes + predicted.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def binned_confusion(labels: np.ndarray, predicted: np.ndarray, num_classes: int, bins: int = PNG_BINS) -> tuple[np.ndarray, int]:
    """Row-normalised confusion over groups of consecutive classes (at most `bins` groups), and the group size:
    entry [i, j] is the share of group i's test images predicted as a class of group j."""
    size = -(-num_classes // bins) if num_classes > bins else 1
    groups = -(-num_classes // size)
    counts = confusion_matrix(labels // size, predicted // size, groups).astype(np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0), size


def write_confusion(out: Path, result: EvalResult, class_names: Sequence[str]) -> dict[str, str | None]:
    """confusion.npy / .csv / .png (as the class count allows) and predictions.npz; {kind: file name or None}."""
    c = len(class_names)
    save_predictions(out / "predictions.npz", result.logits, result.labels, epoch=result.epoch,
                     probability=result.probability, logit_scale=result.logit_scale)
    files: dict[str, str | None] = {"predictions": "predictions.npz", "confusion_npy": None, "confusion_csv": None}
    if c <= DENSE_MAX:
        matrix = confusion_matrix(result.labels, result.predicted, c)
        np.save(out / "confusion.npy", matrix)
        files["confusion_npy"] = "confusion.npy"
        if c <= CSV_MAX:
            with open(out / "confusion.csv", "w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(["true \\ predicted", *class_names])
                writer.writerows([name, *row] for name, row in zip(class_names, matrix.tolist()))
            files["confusion_csv"] = "confusion.csv"
    files["confusion_png"] = plot_confusion(out / "confusion.png", result, class_names).name
    return files


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def plot_confusion(path: Path, result: EvalResult, class_names: Sequence[str]) -> Path:
    plt = _pyplot()
    c = len(class_names)
    matrix, size = binned_confusion(result.labels, result.predicted, c)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    image = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, label="share of the true class's test images")
    unit = "class" if size == 1 else f"group of {size} classes"
    ax.set(xlabel=f"predicted {unit} (label order)", ylabel=f"true {unit} (label order)",
           title=f"confusion, top-1 error {result.metrics['top1_err']:.2f}%")
    if size == 1 and c <= 20:  # names fit on the axes
        ax.set_xticks(range(c), class_names, rotation=90)
        ax.set_yticks(range(c), class_names)
    return _save(fig, path)


def plot_per_class_accuracy(path: Path, per_class_acc: Sequence[float | None], samples_per_class: Sequence[int],
                            shot_acc: dict, many_threshold: int = 100, few_threshold: int = 20) -> Path:
    """Each class's accuracy against its training count; the dashed lines are the shot-group thresholds."""
    plt = _pyplot()
    points = [(n, a) for n, a in zip(samples_per_class, per_class_acc) if a is not None and n > 0]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    if points:
        n, a = np.array(points, dtype=float).T
        ax.scatter(n, a, s=14, alpha=0.7)
        ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter

    for x in (few_threshold - 0.5, many_threshold + 0.5):  # few: n < 20, many: n > 100 (cbl.evaluation.metrics.shot_accuracy)
        ax.axvline(x, color="grey", ls="--", lw=0.8)
    plain = FuncFormatter(lambda v, _: f"{v:g}")  # 20, 100 rather than 2x10^1, 10^2
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    ax.set(xlabel="training images of the class (log)", ylabel="top-1 accuracy (%)", ylim=(-2, 102),
           title=f"per-class accuracy; many / medium / few-shot: {fmt(shot_acc.get('many'))} / "
                 f"{fmt(shot_acc.get('medium'))} / {fmt(shot_acc.get('few'))} %")
    return _save(fig, path)
