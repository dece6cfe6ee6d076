"""The tensor path and the torchvision path draw the same augmentation distribution (fixed seeds, so the
statistical tests are deterministic): crop offsets dy, dx uniform on {0..8} and independent, flip ~
Bernoulli(0.5), independent of the offsets -- the distribution of RandomCrop(32, padding=4) + RandomHorizontalFlip()."""

import numpy as np
import pytest
from scipy import stats

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


def cells(p: np.ndarray, pad: int = 4) -> np.ndarray:
    """Counts over the (2*pad+1)**2 * 2 joint cells of (dy, dx, flip)."""
    k = 2 * pad + 1
    return np.bincount((p[:, 0] * k + p[:, 1]) * 2 + p[:, 2], minlength=k * k * 2)


def uniform_p_values(p: np.ndarray) -> dict:
    """Chi-square goodness of fit of the joint and the marginals against the target distribution."""
    return {
        "joint": stats.chisquare(cells(p)).pvalue,
        "dy": stats.chisquare(np.bincount(p[:, 0], minlength=9)).pvalue,
        "dx": stats.chisquare(np.bincount(p[:, 1], minlength=9)).pvalue,
        "flip": stats.binomtest(int(p[:, 2].sum()), len(p), 0.5).pvalue,
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
    assert stats.chi2_contingency(table).pvalue > ALPHA


def test_the_checks_reject_a_wrong_distribution():
    images, labels = marker_images(M), np.arange(M)
    narrow = params(TensorLoader(images, labels, 128, train=True, seed=11, pad=3))  # offsets 1..7 in pad-4 terms
    assert uniform_p_values(narrow)["dx"] < 1e-6
    unflipped = params(TensorLoader(images, labels, 128, train=True, seed=11, flip=False))
    assert uniform_p_values(unflipped)["flip"] < 1e-6
    assert stats.chi2_contingency(np.stack([cells(narrow) + 1, cells(unflipped) + 1])).pvalue < 1e-6
