"""Independent float64 NumPy re-derivations of the paper's formulas, written from DESIGN.md and the paper
(not from cbl's code).  Tests compare cbl against these, never against numbers cbl produced itself."""

from __future__ import annotations

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
