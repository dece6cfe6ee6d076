"""The tensor path and the torchvision path draw the same augmentation distribution (fixed seeds, so the
statistical tests are deterministic): crop offsets dy, dx uniform on {0..8} and independent, flip ~
Bernoulli(0.5), independent of the offsets -- the distribution of RandomCrop(32, padding=4) + RandomHorizontalFlip()."""

import numpy as np
import pytest
import torch

from cbl.data.tensor_loader import TensorLoader
from cbl.data.torch_loader import ArrayDataset, TorchLoader
from cbl.data.transforms import cifar_transform
from tests.data_fakes import marker_images, recover_crop

M, EPOCHS, ALPHA = 256, 16, 1e-3  # 4096 augmented samples per path, 25 expected per joint cell


def params(loader) -> np.ndarray:
    """[n, 3] of (dy, dx, flipped) over EPOCHS epochs."""
    out = []
    for e in range(EPOCHS):
        loader.set_epoch(e)
        for x, _ in loader:
            out += [recover_crop(img) for img in (x * 128 + 128).round().byte().numpy()]
    return np.asarray(out, dtype=np.int64)


def chi2_sf(stat: float, dof: int) -> float:
    """P(X >= stat) for X ~ chi-square(dof) = Q(dof/2, stat/2), the regularised upper incomplete gamma."""
    return float(torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64), torch.tensor(stat / 2, dtype=torch.float64)))


def goodness_of_fit(counts: np.ndarray) -> float:
    """Pearson chi-square p-value of counts against equal cell probabilities."""
    expected = counts.sum() / len(counts)
    return chi2_sf(((counts - expected) ** 2 / expected).sum(), len(counts) - 1)


def homogeneity(table: np.ndarray) -> float:
    """Pearson chi-square p-value that the rows of a contingency table share one distribution."""
    table = table[:, table.sum(axis=0) > 0].astype(np.float64)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    return chi2_sf(((table - expected) ** 2 / expected).sum(), (table.shape[0] - 1) * (table.shape[1] - 1))


def cells(p: np.ndarray, pad: int = 4) -> np.ndarray:
    """Counts over the (2*pad+1)**2 * 2 joint cells of (dy, dx, flip)."""
    k = 2 * pad + 1
    return np.bincount((p[:, 0] * k + p[:, 1]) * 2 + p[:, 2], minlength=k * k * 2)


def uniform_p_values(p: np.ndarray) -> dict:
    """Chi-square goodness of fit of the joint and the marginals against the target distribution."""
    return {
        "joint": goodness_of_fit(cells(p)),
        "dy": goodness_of_fit(np.bincount(p[:, 0], minlength=9)),
        "dx": goodness_of_fit(np.bincount(p[:, 1], minlength=9)),
        "flip": goodness_of_fit(np.bincount(p[:, 2], minlength=2)),
    }


@pytest.fixture(scope="module")
def samples():
    images, labels = marker_images(M), np.arange(M)
    tensor = TensorLoader(images, labels, 128, train=True, seed=11)
    torch_path = TorchLoader(ArrayDataset(images, labels, cifar_transform(True)), 128, train=True, seed=11)
    return params(tensor), params(torch_path)


def test_offsets_stay_in_range(samples):
    for p in samples:
        assert len(p) == M * EPOCHS
        assert p[:, :2].min() == 0 and p[:, :2].max() == 8


@pytest.mark.parametrize("path", [0, 1], ids=["tensor", "torchvision"])
def test_each_path_matches_the_target_distribution(samples, path):
    for name, pvalue in uniform_p_values(samples[path]).items():
        assert pvalue > ALPHA, name


def test_the_two_paths_draw_the_same_distribution(samples):
    table = np.stack([cells(samples[0]), cells(samples[1])])
    assert homogeneity(table) > ALPHA


def test_the_checks_reject_a_wrong_distribution():
    images, labels = marker_images(M), np.arange(M)
    narrow = params(TensorLoader(images, labels, 128, train=True, seed=11, pad=3))  # offsets 1..7 in pad-4 terms
    assert uniform_p_values(narrow)["dx"] < 1e-6
    unflipped = params(TensorLoader(images, labels, 128, train=True, seed=11, flip=False))
    assert uniform_p_values(unflipped)["flip"] < 1e-6
    assert homogeneity(np.stack([cells(narrow), cells(unflipped)])) < 1e-6


def test_p_values_match_known_chi_square_quantiles():
    # 0.999 quantiles of chi-square with 1 and 8 degrees of freedom (standard tables)
    for stat, dof in ((10.828, 1), (26.124, 8)):
        assert chi2_sf(stat, dof) == pytest.approx(1e-3, rel=1e-3)
    # with 2 degrees of freedom the tail is exp(-x/2) exactly
    for x in (0.5, 3.0, 40.0):
        assert chi2_sf(x, 2) == pytest.approx(np.exp(-x / 2), rel=1e-12)
