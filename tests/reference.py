"""Independent float64 NumPy re-derivations of the paper's formulas, written from the paper and the
authors' TensorFlow code (not from cbl's code).  Tests compare cbl against these, never against numbers cbl produced itself."""

from __future__ import annotations

import math

import numpy as np


def cb_weights(counts, beta: float) -> np.ndarray:
    """w_i = (1 - beta) / (1 - beta**n_i), normalised to sum to C."""
    n = np.asarray(counts, dtype=np.float64)
    w = (1.0 - beta) / (1.0 - np.power(beta, n))
    return w / w.sum() * len(n)


def log_softmax(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def softmax_cb(z, y, w) -> float:
    """1/B sum_b w[y_b] * (-log softmax(z_b)[y_b])."""
    ce = -log_softmax(z)[np.arange(len(y)), y]
    return float((w[y] * ce).sum() / len(y))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def focal_cb(z, y, w, gamma: float) -> float:
    """1/B sum_b w[y_b] sum_c (1 - p_t)^gamma * (-log p_t), p = sigmoid(z), p_t = p if c = y_b else 1 - p.
    Written with the textbook probabilities, valid for moderate |z| (the tests keep |z| < 30)."""
    onehot = np.eye(z.shape[1])[y]
    p = _sigmoid(z)
    p_t = np.where(onehot == 1, p, 1.0 - p)
    terms = (1.0 - p_t) ** gamma * -np.log(p_t)
    return float((w[y] * terms.sum(axis=1)).sum() / len(y))


def sigmoid_cb(z, y, w) -> float:
    return focal_cb(z, y, w, gamma=0.0)


# ----------------------------------------------------------------------------- multi-hot and dense targets
# Written from the definitions in docs/losses.md, one binary term and one position at a time (loops, no
# vectorised shortcut), not from cbl's code.
def binary_term(z: float, t: int, gamma: float) -> float:
    """(1 - p_t)^gamma * -log p_t for one logit: p = sigmoid(z), p_t = p for a positive (t = 1), 1 - p for a
    negative.  The textbook probabilities, valid for moderate |z|."""
    p = 1.0 / (1.0 + math.exp(-z))
    p_t = p if t == 1 else 1.0 - p
    return (1.0 - p_t) ** gamma * -math.log(p_t)


def multilabel_cb(z, t, w, gamma: float, weighting: str, reduction: str = "batch") -> float:
    """Multi-hot rows t [B, C] of 0/1.
    "sample": sum_b omega_b sum_c term(z_bc, t_bc), omega_b the mean of w over row b's positives, or the mean of
    all of w for a row without positives; divided by B, or by sum_b omega_b for reduction "weighted_mean".
    "class":  1/B sum_b sum_c w_c term(z_bc, t_bc)."""
    z, t, w = np.asarray(z, np.float64), np.asarray(t), np.asarray(w, np.float64)
    batch, classes = z.shape
    total, omegas = 0.0, []
    for b in range(batch):
        positives = [c for c in range(classes) if t[b, c] == 1]
        omega = sum(w[c] for c in positives) / len(positives) if positives else sum(w) / classes
        omegas.append(omega)
        for c in range(classes):
            total += (omega if weighting == "sample" else w[c]) * binary_term(z[b, c], int(t[b, c]), gamma)
    return total / (sum(omegas) if reduction == "weighted_mean" else batch)


def dense_cb(z, y, w, loss_type: str, gamma: float = 0.0, ignore_index: int = -100) -> float:
    """Logits [B, C, d1, ...], targets [B, d1, ...]: every position whose target is not ignore_index becomes one
    example (its C logits, its class), and the class-index loss of those N_valid examples is returned; 0 for none."""
    z, y = np.asarray(z, np.float64), np.asarray(y)
    rows, labels = [], []
    for pos in np.ndindex(*y.shape):
        if y[pos] != ignore_index:
            rows.append([z[(pos[0], c, *pos[1:])] for c in range(z.shape[1])])
            labels.append(int(y[pos]))
    if not rows:
        return 0.0
    rows, labels = np.array(rows), np.array(labels)
    return softmax_cb(rows, labels, w) if loss_type == "softmax" else focal_cb(rows, labels, w, gamma)


def class_counts(labels, num_classes: int, ignore_index: int = -100) -> list[int]:
    """n_c: how many entries of the integer labels (any shape) equal c, entries equal to ignore_index skipped."""
    counts = [0] * num_classes
    for value in np.asarray(labels).reshape(-1).tolist():
        if value != ignore_index:
            counts[value] += 1
    return counts


def multi_hot_counts(rows) -> list[int]:
    """n_c: how many rows have a 1 in column c."""
    rows = np.asarray(rows)
    return [sum(1 for r in range(rows.shape[0]) if rows[r, c] == 1) for c in range(rows.shape[1])]


def effective_numbers(counts, beta: float) -> np.ndarray:
    """E_n = (1 - beta**n) / (1 - beta) (Cui et al., Sec. 3)."""
    n = np.asarray(counts, dtype=np.float64)
    return (1.0 - np.power(beta, n)) / (1.0 - beta)


def cifar_lt_counts(n_max: int, num_classes: int, imbalance_factor: float) -> list[int]:
    """The authors' data code: int(img_max * (imb_factor ** (cls_idx / (cls_num - 1.0)))), imb_factor = 1 / IF."""
    return [int(n_max * ((1.0 / imbalance_factor) ** (i / (num_classes - 1.0)))) for i in range(num_classes)]


# ----------------------------------------------------------------------------- beyond the paper
# Written from the cited papers' equations (and, for LDAM's margins and normalisation, the LDAM-DRW authors'
# public code as described in their paper), not from cbl's code.
def inverse_weights(counts, power: float = 1.0) -> np.ndarray:
    """w_i = n_i**(-power) normalised to sum to C: power 1 inverse frequency, 1/2 inverse square root."""
    n = np.asarray(counts, dtype=np.float64)
    w = 1.0 / n**power
    return w / w.sum() * len(n)


def reduce(per_example: np.ndarray, w_y: np.ndarray, reduction: str) -> float:
    """sum_b w[y_b] l_b divided by B ("batch", Cui et al.) or by sum_b w[y_b] ("weighted_mean", PyTorch's
    F.cross_entropy(weight=w))."""
    total = (w_y * per_example).sum()
    return float(total / (len(per_example) if reduction == "batch" else w_y.sum()))


def cross_entropy(z, y) -> np.ndarray:
    """per-example -log softmax(z_b)[y_b]"""
    return -log_softmax(np.asarray(z, dtype=np.float64))[np.arange(len(y)), y]


def ldam_margins(counts, max_m: float) -> np.ndarray:
    """Cao et al. 2019 Eq. 13: m_j = K / n_j**(1/4), K such that max_j m_j = max_m."""
    n = np.asarray(counts, dtype=np.float64)
    m = 1.0 / n**0.25
    return m * (max_m / m.max())


def ldam(z, y, counts, max_m: float, s: float, w=None, reduction: str = "batch") -> float:
    """sum_b w[y_b] CE(s * (z_b - m_{y_b} e_{y_b}), y_b), reduced; w = 1 by default."""
    z = np.array(z, dtype=np.float64)
    m = ldam_margins(counts, max_m)
    z[np.arange(len(y)), y] -= m[y]
    w = np.ones(z.shape[1]) if w is None else np.asarray(w, dtype=np.float64)
    return reduce(cross_entropy(s * z, y), w[y], reduction)


def balanced_softmax(z, y, counts, w=None, reduction: str = "batch") -> float:
    """Ren et al. 2020: -log( n_y exp(z_y) / sum_j n_j exp(z_j) ), reduced."""
    z = np.asarray(z, dtype=np.float64)
    n = np.asarray(counts, dtype=np.float64)
    # written as the ratio of the paper (no log-sum-exp shortcut): the tests keep |z| moderate
    num = n[y] * np.exp(z[np.arange(len(y)), y])
    den = (n[None, :] * np.exp(z)).sum(axis=1)
    w = np.ones(z.shape[1]) if w is None else np.asarray(w, dtype=np.float64)
    return reduce(-np.log(num / den), w[y], reduction)


def logit_adjusted(z, y, counts, tau: float, w=None, reduction: str = "batch") -> float:
    """Menon et al. 2021 Eq. 10: -log( exp(z_y + tau log pi_y) / sum_j exp(z_j + tau log pi_j) ), pi = n / N."""
    z = np.asarray(z, dtype=np.float64)
    n = np.asarray(counts, dtype=np.float64)
    pi = n / n.sum()
    w = np.ones(z.shape[1]) if w is None else np.asarray(w, dtype=np.float64)
    return reduce(cross_entropy(z + tau * np.log(pi)[None, :], y), w[y], reduction)


def drw_weights(w, epoch: int, drw_epoch) -> np.ndarray:
    """Cao et al. 2019 Sec. 3.3: ones for the first drw_epoch epochs (1-based epoch <= drw_epoch), then w."""
    w = np.asarray(w, dtype=np.float64)
    return np.ones_like(w) if drw_epoch is not None and epoch <= drw_epoch else w


def class_sampling_probs(counts, q: float) -> np.ndarray:
    """p(class c) when sample i is drawn with probability ∝ n_{y_i}**(q - 1): n_c * n_c**(q-1) = n_c**q, normalised."""
    n = np.asarray(counts, dtype=np.float64)
    p = n * n ** (q - 1.0)
    return p / p.sum()


def class_probabilities(z, probability: str, scale: float = 1.0) -> np.ndarray:
    """softmax(scale * z), or the normalised one-vs-rest sigmoids sigma(z_c) / sum_j sigma(z_j) (moderate |z|)."""
    z = np.asarray(z, dtype=np.float64)
    if probability == "softmax":
        return np.exp(log_softmax(scale * z))
    p = _sigmoid(z)
    return p / p.sum(axis=1, keepdims=True)


def ece_nll(z, y, probability: str, bins: int = 15, scale: float = 1.0) -> tuple[float, float]:
    """Guo et al. (2017): ECE (%) over `bins` equal-width bins (lo, hi] of the top-1 confidence, one image at a time,
    and the mean negative log-likelihood of the true class."""
    p = class_probabilities(z, probability, scale)
    y = np.asarray(y)
    members: list[list[tuple[float, bool]]] = [[] for _ in range(bins)]
    for row, label in zip(p, y):
        top = int(np.argmax(row))
        conf = float(row[top])
        b = next(i for i in range(bins) if conf <= (i + 1) / bins)  # conf > i / bins for the first such i
        members[b].append((conf, top == label))
    ece = sum(len(m) / len(y) * abs(np.mean([c for _, c in m]) - np.mean([f for f, _ in m])) for m in members if m)
    nll = float(-np.mean(np.log(p[np.arange(len(y)), y])))
    return 100.0 * ece, nll


def paired_bootstrap(wrong_a, wrong_b, resamples: int, seed: int) -> np.ndarray:
    """Error differences (%, a - b) over `resamples` draws of N test images with replacement (the same draw for a and b)."""
    rng = np.random.default_rng(seed)
    wrong_a, wrong_b = np.asarray(wrong_a, float), np.asarray(wrong_b, float)
    n = len(wrong_a)
    out = np.empty(resamples)
    for r in range(resamples):
        idx = rng.integers(0, n, n)
        out[r] = 100.0 * (wrong_a[idx].mean() - wrong_b[idx].mean())
    return out
