"""Long-tail profile and subsets against the published long-tailed CIFAR sizes and formulas re-derived here."""

import math

import numpy as np
import pytest

from cbl.data.long_tail import long_tail_counts, long_tail_indices

# total training images per imbalance factor, as the authors' data code gives them (the sum over classes of
# n_i = int(n_max * IF**(-i / (C - 1))); CIFAR-10 IF 100: 12406, CIFAR-100 IF 100: 10847, as the paper reports)
PAPER_TOTALS = {
    ("cifar10", 5000, 10): {1: 50000, 10: 20431, 20: 17023, 50: 13996, 100: 12406, 200: 11203},
    ("cifar100", 500, 100): {1: 50000, 10: 19573, 20: 15907, 50: 12608, 100: 10847, 200: 9502},
}
CASES = [(name, n_max, c, imb, total) for (name, n_max, c), t in PAPER_TOTALS.items() for imb, total in t.items()]


@pytest.mark.parametrize("name,n_max,num_classes,imb,total", CASES)
def test_counts_match_paper_sizes_and_profile(name, n_max, num_classes, imb, total):
    counts = long_tail_counts(n_max, num_classes, imb)
    assert len(counts) == num_classes and all(isinstance(n, int) for n in counts)
    assert sum(counts) == total
    assert counts[0] == n_max  # class 0 is the head
    assert counts[-1] == int(n_max / imb)  # the tail is n_max / IF
    assert counts == sorted(counts, reverse=True)
    # the authors' expression verbatim (their imb_factor is 1/IF), from their data-generation code
    img_max, imb_factor, cls_num = n_max, 1 / imb, num_classes
    assert counts == [int(img_max * (imb_factor ** (cls_idx / (cls_num - 1.0)))) for cls_idx in range(cls_num)]
    # and every count is the floor of the exact value, up to one unit of float rounding at an integer
    for i, n in enumerate(counts):
        exact = n_max * math.pow(imb, -i / (num_classes - 1))
        assert abs(n - exact) < 1 + 1e-9 and n <= exact + 1e-9


def test_if_one_is_balanced_and_large_if_keeps_one_image():
    assert long_tail_counts(7, 5, 1) == [7] * 5
    assert long_tail_counts(100, 3, 100.0) == [100, 10, 1]
    assert long_tail_counts(10, 2, 1e6)[-1] == 0  # IF above n_max empties the tail: allowed here, caught by the losses


@pytest.mark.parametrize(
    "args,match",
    [
        ((5000, 10, 0.5), "imbalance_factor must be a finite number >= 1; got 0.5"),
        ((5000, 10, float("nan")), "imbalance_factor"),
        ((5000, 10, float("inf")), "imbalance_factor"),
        ((5000, 10, "100"), "imbalance_factor"),
        ((5000, 1, 10), "num_classes must be an integer >= 2; got 1"),
        ((0, 10, 10), "n_max must be an integer >= 1; got 0"),
        ((50.5, 10, 10), "n_max"),
        ((True, 10, 10), "n_max"),
    ],
)
def test_counts_reject_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(")):
        long_tail_counts(*args)


def labels_grouped(per_class: int, num_classes: int, shuffled: bool = True) -> np.ndarray:
    y = np.repeat(np.arange(num_classes), per_class)
    return np.random.default_rng(123).permutation(y) if shuffled else y


def test_subset_has_exact_counts_sorted_unique_indices():
    y = labels_grouped(50, 10)
    counts = long_tail_counts(50, 10, 10)
    idx = long_tail_indices(y, counts, seed=0)
    assert idx.dtype == np.int64
    assert np.all(np.diff(idx) > 0)  # ascending, no duplicates
    assert np.bincount(y[idx], minlength=10).tolist() == counts


def test_subset_depends_on_seed_only():
    y = labels_grouped(50, 10)
    counts = long_tail_counts(50, 10, 10)
    a, b = long_tail_indices(y, counts, 0), long_tail_indices(y.copy(), list(counts), 0)
    assert np.array_equal(a, b)
    c = long_tail_indices(y, counts, 1)
    assert not np.array_equal(a, c)
    assert np.bincount(y[c], minlength=10).tolist() == counts


def test_subset_follows_the_documented_recipe():
    """Per class: PCG64(SeedSequence([seed, c])) raw draws, stable argsort, first n_c (re-implemented here)."""
    y = labels_grouped(30, 4)
    counts = [30, 12, 5, 1]
    for seed in (0, 7):
        expected = []
        for c, n in enumerate(counts):
            members = np.where(y == c)[0]
            keys = np.random.PCG64(np.random.SeedSequence([seed, c])).random_raw(len(members))
            expected += members[np.argsort(keys, kind="stable")][:n].tolist()
        assert long_tail_indices(y, counts, seed).tolist() == sorted(expected)


def test_subsets_are_nested_across_imbalance_factors():
    y = labels_grouped(100, 10)
    subsets = [set(long_tail_indices(y, long_tail_counts(100, 10, imb), 3).tolist()) for imb in (1, 10, 50, 100)]
    assert all(small <= big for big, small in zip(subsets, subsets[1:]))


def test_subset_is_a_uniform_choice_within_each_class():
    # over many seeds each of 12 members of a class is kept 4/12 of the time (chi-square, 11 dof)
    y = labels_grouped(12, 2, shuffled=False)
    hits = np.zeros(12)
    seeds = 600
    for s in range(seeds):
        hits += np.bincount(long_tail_indices(y, [4, 12], s)[:4], minlength=12)
    expected = seeds * 4 / 12
    chi2 = ((hits - expected) ** 2 / expected).sum()
    assert chi2 < 31.26  # 0.999 quantile of chi-square with 11 degrees of freedom
    # and the rule is not "keep the first n": the head of the class is not always chosen
    assert hits[:4].max() < seeds


def test_subset_errors():
    y = labels_grouped(5, 3)
    with pytest.raises(ValueError, match="class 1 has 5 images but the long-tail profile asks for 6"):
        long_tail_indices(y, [5, 6, 1], 0)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        long_tail_indices(y, [5, 5], 0)
    with pytest.raises(ValueError, match="seed must be an integer >= 0; got -1"):
        long_tail_indices(y, [1, 1, 1], -1)
    with pytest.raises(ValueError, match="integer class indices"):
        long_tail_indices(y.astype(float), [1, 1, 1], 0)

