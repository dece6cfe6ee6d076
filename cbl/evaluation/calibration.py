"""Calibration of a classifier's class probabilities: expected calibration error and negative log-likelihood.

    ECE = sum_b (n_b / N) * |acc_b - conf_b|        (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017)

over M = 15 equal-width bins of the top-1 confidence, bin b = (b/M, (b+1)/M]; conf_b is the mean top-1 confidence of
the n_b test images in bin b and acc_b the fraction of them whose top-1 class is right (ties: the first maximum, as
cbl.evaluation.metrics).  Reported in percent, like the errors.  NLL = -(1/N) sum_i log p_i[y_i], in nats.

Which probabilities.  Each head is scored with the probabilities its training loss models:
  * "softmax" (softmax, balanced softmax, logit-adjusted and LDAM heads): p = softmax(s * z), s = 1 except for LDAM's
    cosine head, whose loss scales the cosines by s (Cao et al. 2019) before the softmax;
  * "sigmoid" (sigmoid and focal heads): the one-vs-rest probabilities sigma(z_c), normalised over the classes,
    p_c = sigma(z_c) / sum_j sigma(z_j).  These heads never see a softmax in training: each sigma(z_c) is trained as
    P(class c | x) against the rest, so the normalised sigmoids are the distribution the model itself states, whereas
    a softmax of the same logits would be a distribution no loss fitted.  The normalisation keeps the argmax (the
    prediction every table scores).  Computed in log space: log p_c = -softplus(-z_c) - logsumexp_j(-softplus(-z_j)).

`CalibrationAccumulator` sums the bin counts over batches (and processes, `all_reduce`), so a whole test set is
scored without holding its logits; `calibration(logits, labels, probability)` scores logits held at once, e.g. a
run's saved predictions (cbl.training.predictions).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

#: the class probabilities of a head (see the module docstring)
PROBABILITIES = ("softmax", "sigmoid")
ECE_BINS = 15


def probability_of(loss_name: str) -> str:
    """"sigmoid" for the sigmoid-based losses (sigmoid, focal), else "softmax"."""
    return "sigmoid" if loss_name in ("sigmoid", "focal") else "softmax"


def log_probabilities(logits: Tensor, probability: str, scale: float = 1.0) -> Tensor:
    """log p [N, C] in float64 of a head's logits (module docstring); `scale` multiplies softmax logits (LDAM's s)."""
    if probability not in PROBABILITIES:
        raise ValueError(f"probability must be one of {', '.join(PROBABILITIES)}; got {probability!r}")
    z = logits.to(torch.float64)
    if probability == "softmax":
        return F.log_softmax(z * scale, dim=1)
    log_sig = -F.softplus(-z)  # log sigma(z), exact for any z
    return log_sig - torch.logsumexp(log_sig, dim=1, keepdim=True)


def bin_index(confidence: Tensor, bins: int = ECE_BINS) -> Tensor:
    """The bin of each top-1 confidence: b such that b/bins < confidence <= (b+1)/bins (0 stays in bin 0)."""
    return (torch.ceil(confidence * bins).long() - 1).clamp(0, bins - 1)


class CalibrationAccumulator:
    """Per-bin counts, confidence and correctness sums and the summed NLL of an evaluation pass (float64)."""

    def __init__(self, probability: str, scale: float = 1.0, bins: int = ECE_BINS) -> None:
        if probability not in PROBABILITIES:
            raise ValueError(f"probability must be one of {', '.join(PROBABILITIES)}; got {probability!r}")
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
            raise ValueError(f"bins must be a positive integer; got {bins!r}")
        self.probability, self.scale, self.bins = probability, float(scale), bins
        # rows: count, sum of confidence, number correct per bin, and the NLL sum in [3, 0]; one tensor, so that
        # all_reduce is one collective.  Created on the first batch's device.
        self.sums: Tensor | None = None

    @torch.no_grad()
    def update(self, logits: Tensor, labels: Tensor) -> None:
        log_p = log_probabilities(logits, self.probability, self.scale)
        labels = labels.to(log_p.device).long()
        confidence, predicted = log_p.max(dim=1)  # the first maximum, as argmax
        confidence = confidence.exp()
        b = bin_index(confidence, self.bins)
        if self.sums is None:
            self.sums = torch.zeros(4, self.bins, dtype=torch.float64, device=log_p.device)
        self.sums[0].index_add_(0, b, torch.ones_like(confidence))
        self.sums[1].index_add_(0, b, confidence)
        self.sums[2].index_add_(0, b, (predicted == labels).to(torch.float64))
        self.sums[3, 0] -= log_p.gather(1, labels[:, None]).sum()

    def all_reduce(self) -> "CalibrationAccumulator":
        """Sum over all processes (in place) when torch.distributed is initialised; returns self."""
        if dist.is_available() and dist.is_initialized() and self.sums is not None:
            dist.all_reduce(self.sums, op=dist.ReduceOp.SUM)
        return self

    def compute(self) -> dict[str, float]:
        """{"ece": percent, "nll": nats per image}."""
        if self.sums is None or float(self.sums[0].sum()) == 0:
            raise ValueError("CalibrationAccumulator.compute(): no examples were accumulated")
        count, conf, correct, nll = self.sums.cpu()
        n = float(count.sum())
        gap = (correct - conf).abs().sum()  # sum_b |n_b acc_b - n_b conf_b| = sum_b n_b |acc_b - conf_b|
        return {"ece": 100.0 * float(gap) / n, "nll": float(nll[0]) / n}


def calibration(logits: Tensor, labels: Tensor, probability: str, scale: float = 1.0,
                bins: int = ECE_BINS) -> dict[str, float]:
    """ECE (%) and NLL of logits [N, C] held at once (e.g. a run's saved predictions)."""
    acc = CalibrationAccumulator(probability, scale, bins)
    acc.update(torch.as_tensor(logits), torch.as_tensor(labels))
    return acc.compute()


def reliability(logits: Tensor, labels: Tensor, probability: str, scale: float = 1.0,
                bins: int = ECE_BINS) -> dict[str, list]:
    """Per bin: its edges, count, mean confidence and accuracy (None for an empty bin): a reliability diagram's data."""
    acc = CalibrationAccumulator(probability, scale, bins)
    acc.update(torch.as_tensor(logits), torch.as_tensor(labels))
    count, conf, correct, _ = acc.sums.cpu().tolist()
    return {
        "edges": [b / bins for b in range(bins + 1)],
        "count": [int(c) for c in count],
        "confidence": [s / c if c else None for s, c in zip(conf, count)],
        "accuracy": [s / c if c else None for s, c in zip(correct, count)],
    }
