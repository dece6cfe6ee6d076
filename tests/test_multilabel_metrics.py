"""Multi-label metrics (cbl/evaluation/multilabel.py) against independent computations, and the head / medium / tail
groups against the split the DB-loss release publishes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from cbl.evaluation.multilabel import average_precision, class_group, group_map, mean_of, multilabel_metrics


def brute_force_ap(scores: np.ndarray, positive: np.ndarray) -> float:
    """The mean over positives of the precision among all images scored at least as high (float64, one by one)."""
    precisions = []
    for i in np.flatnonzero(positive):
        at_least = scores >= scores[i]
        precisions.append(positive[at_least].sum() / at_least.sum())
    return 100.0 * float(np.mean(precisions))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_precision_matches_a_brute_force_derivation_with_ties(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, size=(300, 7)).astype(np.float32)  # few distinct values: many ties
    targets = (rng.random((300, 7)) < rng.uniform(0.02, 0.5, size=7)).astype(np.uint8)
    targets[0] = 1  # every class has a positive
    ours = average_precision(scores, targets)
    for c in range(7):
        assert ours[c] == pytest.approx(brute_force_ap(scores[:, c].astype(np.float64), targets[:, c] == 1), abs=1e-9)


def test_average_precision_matches_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(500, 5))
    scores[:, 1] = np.round(scores[:, 1], 1)  # ties
    targets = (rng.random((500, 5)) < 0.2).astype(int)
    want = metrics.average_precision_score(targets, scores, average=None) * 100
    assert average_precision(scores, targets) == pytest.approx(list(want), abs=1e-9)


def test_a_class_without_positives_has_no_ap_and_stays_out_of_the_mean():
    scores = np.array([[0.9, 0.1, 0.3], [0.2, 0.8, 0.5], [0.4, 0.7, 0.2]])
    targets = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0]])
    ap = average_precision(scores, targets)
    assert ap[0] == pytest.approx(100.0) and ap[1] == pytest.approx(100.0) and ap[2] is None
    out = multilabel_metrics(scores, targets, [150, 30, 5])
    assert out["map"] == pytest.approx(100.0) and out["classes_without_positives"] == 1
    assert out["group_map"] == {"head": pytest.approx(100.0), "medium": pytest.approx(100.0), "tail": None}
    metrics = pytest.importorskip("sklearn.metrics")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns, then scores the class 0: its mean would be 66.7
        assert metrics.average_precision_score(targets, scores, average=None)[2] == 0.0


def test_known_values_perfect_reversed_and_all_tied():
    positive = np.array([1, 1, 0, 0, 0])
    assert average_precision(np.array([[5.0], [4], [3], [2], [1]]), positive[:, None]) == [pytest.approx(100.0)]
    # positives ranked 4th and 5th: (1/4 + 2/5) / 2
    assert average_precision(np.array([[1.0], [2], [3], [4], [5]]), positive[:, None]) == [pytest.approx(32.5)]
    # everything tied: the precision of the whole set, the prevalence
    assert average_precision(np.zeros((5, 1)), positive[:, None]) == [pytest.approx(40.0)]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"targets must be 0 or 1; got 2"):
        average_precision(np.zeros((2, 2)), np.array([[0, 2], [1, 0]]))
    with pytest.raises(ValueError, match=r"both be \[N, C\]"):
        average_precision(np.zeros((2, 2)), np.zeros((2, 3)))


def test_groups_follow_the_db_loss_inequalities():
    # tools/create_longtail_dataset.py: head n >= 100, middle 20 <= n < 100, tail n < 20
    assert [class_group(n) for n in (1000, 100, 99, 20, 19, 1)] == ["head", "head", "medium", "medium", "tail", "tail"]
    assert group_map([80.0, 60.0, None, 40.0, 10.0], [300, 100, 50, 20, 3]) == {
        "head": pytest.approx(70.0), "medium": pytest.approx(40.0), "tail": pytest.approx(10.0)}
    assert group_map([50.0], [7]) == {"head": None, "medium": None, "tail": pytest.approx(50.0)}
    assert mean_of([None, None]) is None


def test_groups_reproduce_the_released_voc_mlt_split():
    """The VOC-MLT release's class_freq.pkl (training positives per class) and class_split.pkl, as published in
    github.com/wutong16/DistributionBalancedLoss appendix/VOCdevkit/longtail2012/: the thresholds give its split,
    including class 15 (pottedplant, exactly 100 positives) in the head and class 13 (20 positives) in the middle."""
    class_freq = [6, 34, 8, 14, 154, 17, 249, 29, 479, 4, 240, 48, 11, 20, 775, 100, 5, 82, 7, 64]
    released = {"head": {4, 6, 8, 10, 14, 15}, "medium": {1, 7, 11, 13, 17, 19}, "tail": {0, 2, 3, 5, 9, 12, 16, 18}}
    ours = {g: {c for c, n in enumerate(class_freq) if class_group(n) == g} for g in released}
    assert ours == released
