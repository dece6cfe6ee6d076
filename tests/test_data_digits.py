"""digits-LT: deterministic offline split of scikit-learn's digits, long-tailed like CIFAR-LT."""

import socket

import numpy as np
import pytest
from sklearn.datasets import load_digits

from cbl.data.digits import load_digits_lt
from cbl.data.long_tail import long_tail_counts


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_sizes_counts_and_pixels(no_network):
    split = load_digits_lt(imbalance_factor=10, subset_seed=0)
    assert split.samples_per_class == long_tail_counts(120, 10, 10)
    assert split.samples_per_class[0] == 120 and split.samples_per_class[-1] == 12
    assert split.x_train.shape == (sum(split.samples_per_class), 8, 8, 1) and split.x_train.dtype == np.uint8
    assert np.bincount(split.y_test).tolist() == [50] * 10 and split.x_test.shape == (500, 8, 8, 1)
    assert split.class_names == [str(i) for i in range(10)]
    assert split.x_train.max() == 255 and split.x_train.min() == 0


def test_test_set_is_the_last_images_of_each_class_and_train_is_drawn_from_the_rest():
    d = load_digits()
    ref = np.round(d.images * 255 / 16).astype(np.uint8)
    test_idx = np.sort(np.concatenate([np.flatnonzero(d.target == c)[-50:] for c in range(10)]))
    split = load_digits_lt(10, subset_seed=3)
    np.testing.assert_array_equal(split.x_test[..., 0], ref[test_idx])
    np.testing.assert_array_equal(split.y_test, d.target[test_idx])
    pool = {(ref[i].tobytes(), int(d.target[i])) for i in np.setdiff1d(np.arange(len(ref)), test_idx)}
    assert all((x[..., 0].tobytes(), int(y)) in pool for x, y in zip(split.x_train, split.y_train))


def test_subset_seed_and_imbalance_factor():
    a, b, c = load_digits_lt(10, 0), load_digits_lt(10, 0), load_digits_lt(10, 1)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    assert load_digits_lt(1).samples_per_class == [120] * 10
    assert load_digits_lt(100, n_max=100, test_per_class=20).samples_per_class == long_tail_counts(100, 10, 100)


def test_bad_arguments():
    with pytest.raises(ValueError, match="imbalance_factor must be a finite number >= 1; got 0.5"):
        load_digits_lt(0.5)
    with pytest.raises(ValueError, match=r"test_per_class must be < 174 \(the size of digit class 8\); got 174"):
        load_digits_lt(10, test_per_class=174)
    with pytest.raises(ValueError, match="class 8 has 124 images but the long-tail profile asks for 125"):
        load_digits_lt(1, n_max=125)
