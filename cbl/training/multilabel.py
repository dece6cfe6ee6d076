"""The multi-label side of a training run (datasets of cbl/data/multilabel.py): the evaluation pass, what each
evaluated epoch records, what metrics.json holds, and the runs that stay single-label.

Evaluation scores every test image with the model's logits and computes per-class average precision, mAP and the mAP
of the head / medium / tail classes by training positives (cbl/evaluation/multilabel.py; all in percent).  Each
evaluated epoch's record (metrics.jsonl, wandb) holds

    map, map_head, map_medium, map_tail          (top1_err, top5_err, ece, nll stay null: single-label metrics)

and metrics.json holds, besides what every run records (cbl/training/run.py),

    task "multilabel", map (the last epoch, as single-label runs report their last-epoch error), best_map and
    best_epoch (the highest mAP over the evaluated epochs, selected on the test set), group_map {head, medium, tail},
    per_class_ap (None for a class without a positive test image), class_groups (the thresholds), and
    classes_without_positives.

No predictions file is written: cbl-evaluate, the model bank and the gain / selection tables are single-label and
refuse multi-label runs in one line (`refuse_multilabel`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from cbl.evaluation.multilabel import GROUPS, HEAD_MIN, TAIL_BELOW, multilabel_metrics
from cbl.training.checkpoint import best_epoch
from cbl.training.engine import autocast

#: what an evaluated epoch of a multi-label run adds to its record
RECORD_KEYS = ("map", *(f"map_{g}" for g in GROUPS))
#: the single-label metrics of a record, null for a multi-label run
SINGLE_LABEL_KEYS = ("top1_err", "top5_err", "ece", "nll")
#: the class groups of group_map, as metrics.json states them
CLASS_GROUPS = {"head": f"n >= {HEAD_MIN}", "medium": f"{TAIL_BELOW} <= n < {HEAD_MIN}", "tail": f"n < {TAIL_BELOW}"}


class ScoreCollector:
    """Keeps an evaluation pass's logits and 0/1 targets on the host; `gather` joins every process's rows.

    AP depends on the set of (score, target) pairs of a class, not on their order, so the rows of the processes are
    simply concatenated (each test image is evaluated by exactly one process, cbl.data.epoch.rank_slice)."""

    def __init__(self) -> None:
        self.scores: list[Tensor] = []
        self.targets: list[Tensor] = []

    def __call__(self, logits: Tensor, targets: Tensor) -> None:
        self.scores.append(logits.detach().float().cpu())
        self.targets.append(targets.detach().cpu().to(torch.uint8))

    def gather(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.scores:
            raise ValueError("no test batches were evaluated")
        parts = [(torch.cat(self.scores).numpy(), torch.cat(self.targets).numpy())]
        if dist.is_available() and dist.is_initialized():
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, parts[0])
            parts = [p for p in gathered if len(p[0])]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


class MultiLabelRefused(ValueError):
    """A single-label tool asked to handle a multi-label run or dataset; the message is one line."""


@torch.no_grad()
def evaluate_multilabel(model: nn.Module, loader: Iterable, samples_per_class: Sequence[int], *,
                        device: torch.device, amp_dtype: torch.dtype | None = None) -> dict[str, Any]:
    """mAP, per-class AP and group mAP (%) over the whole test loader (every process's share gathered)."""
    model.eval()
    collector = ScoreCollector()
    for images, targets in loader:
        with autocast(device, amp_dtype):
            logits = model(images)
        collector(logits.float(), targets)
    scores, targets = collector.gather()
    return {**{k: None for k in SINGLE_LABEL_KEYS}, **multilabel_metrics(scores, targets, samples_per_class)}


def epoch_record(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The mAP fields of an evaluated epoch's record."""
    return {"map": evaluation["map"], **{f"map_{g}": evaluation["group_map"][g] for g in GROUPS}}


def final_results(history: list[dict[str, Any]], last_eval: dict[str, Any]) -> dict[str, Any]:
    """The task-specific part of a finished multi-label run's metrics.json (module docstring)."""
    best = next(r for r in history if r["epoch"] == best_epoch(history))
    return {
        "task": "multilabel",
        "map": last_eval["map"],
        "best_map": best["map"],
        "best_epoch": best["epoch"],
        "group_map": last_eval["group_map"],
        "per_class_ap": last_eval["per_class_ap"],
        "class_groups": CLASS_GROUPS,
        "classes_without_positives": last_eval["classes_without_positives"],
    }


def headline(metrics: dict[str, Any]) -> str:
    """"mAP 61.20%" or "top-1 error 29.64%": a run's main number, for log lines."""
    if metrics.get("task") == "multilabel":
        return f"mAP {metrics['map']:.2f}%" if metrics.get("map") is not None else "mAP -"
    return f"top-1 error {metrics['top1_err']:.2f}%" if metrics.get("top1_err") is not None else "top-1 error -"


def refuse_multilabel(what: str, dataset: str | None, multilabel: bool) -> None:
    """One line when a single-label tool (`what`) meets a multi-label run or dataset."""
    if multilabel:
        raise MultiLabelRefused(f"{what} handles single-label runs; {dataset} is multi-label (its runs report mAP in "
                                f"metrics.json; `make_table --table multilabel` tabulates them, docs/multilabel.md)")
