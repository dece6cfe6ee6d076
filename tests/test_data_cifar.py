"""CIFAR sources: fake archives in the real pickle format (checked against torchvision's own reader), the
missing / corrupt / download messages, the .npz path, and the real shared .npz when it is present."""

import os
import pickle
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torchvision.datasets.cifar as tv_cifar
import torchvision.datasets.utils as torchvision_utils

from cbl.data.cifar import load_cifar_lt, read_cifar_folder, read_cifar_npz
from cbl.data.long_tail import long_tail_counts
from tests.data_fakes import write_cifar10, write_cifar100

REAL_NPZ = Path(os.environ.get("CBL_CIFAR10_NPZ") or Path(__file__).resolve().parents[1].parent / "shared/data/cifar10_jpeg_lossy.npz")


@pytest.fixture(scope="module")
def cifar10_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("c10")
    return root, write_cifar10(root, per_class_train=20, per_class_test=4)


@pytest.fixture(scope="module")
def cifar100_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("c100")
    return root, write_cifar100(root, per_class_train=6, per_class_test=2)


def test_cifar10_folder_reads_the_hwc_images_written(cifar10_tree):
    root, (x_train, y_train, x_test, y_test, names) = cifar10_tree
    got = read_cifar_folder("cifar10", root)
    for a, b in zip(got[:4], (x_train, y_train, x_test, y_test)):
        np.testing.assert_array_equal(a, b)
    assert got[0].shape == (200, 32, 32, 3) and got[0].dtype == np.uint8 and got[1].dtype == np.int64
    assert got[4] == names


def test_python3_pickles_with_bytes_keys_also_read(tmp_path):
    x_train, y_train, x_test, y_test, names = write_cifar100(tmp_path, 2, 1, py2=False)
    got = read_cifar_folder("cifar100", tmp_path)
    np.testing.assert_array_equal(got[0], x_train)
    np.testing.assert_array_equal(got[3], y_test)
    assert got[4] == names


@pytest.mark.parametrize("name,tv_class,fixture", [("cifar10", tv_cifar.CIFAR10, "cifar10_tree"), ("cifar100", tv_cifar.CIFAR100, "cifar100_tree")])
def test_reader_agrees_with_torchvision(name, tv_class, fixture, request, monkeypatch):
    """torchvision's CIFAR reader on the same files (its md5 checks switched off) is the reference."""
    root, _ = request.getfixturevalue(fixture)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    x_train, y_train, x_test, y_test, names = read_cifar_folder(name, root)
    for train, (x, y) in ((True, (x_train, y_train)), (False, (x_test, y_test))):
        ref = tv_class(str(root), train=train, download=False)
        np.testing.assert_array_equal(x, ref.data)
        np.testing.assert_array_equal(y, np.asarray(ref.targets))
    assert names == ref.classes


def test_cifar100_long_tail_subset(cifar100_tree):
    root, (x_train, y_train, x_test, y_test, names) = cifar100_tree
    split = load_cifar_lt("cifar100", root, imbalance_factor=6, subset_seed=0, download=False, n_max=6)
    expected = long_tail_counts(6, 100, 6)
    assert split.samples_per_class == expected
    assert np.bincount(split.y_train, minlength=100).tolist() == expected
    assert split.class_names == names and split.num_classes == 100
    np.testing.assert_array_equal(split.x_test, x_test)  # the full balanced test set
    # every kept image is a training image with its own label
    lookup = {x.tobytes(): y for x, y in zip(x_train, y_train)}
    assert all(lookup[x.tobytes()] == y for x, y in zip(split.x_train, split.y_train))


def test_long_tail_subset_seed(cifar10_tree):
    root, _ = cifar10_tree
    a = load_cifar_lt("cifar10", root, 10, subset_seed=0, download=False, n_max=20)
    b = load_cifar_lt("cifar10", root, 10, subset_seed=0, download=False, n_max=20)
    c = load_cifar_lt("cifar10", root, 10, subset_seed=1, download=False, n_max=20)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    assert a.samples_per_class == c.samples_per_class == long_tail_counts(20, 10, 10)


def test_default_n_max_is_the_paper_head_size(cifar10_tree):
    root, _ = cifar10_tree  # 20 images per class: the paper's n_max = 5000 cannot be met
    with pytest.raises(ValueError, match="class 0 has 20 images but the long-tail profile asks for 5000"):
        load_cifar_lt("cifar10", root, 100, download=False)


def test_missing_archive_message(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_cifar_lt("cifar10", tmp_path / "data", 100, download=False)
    msg = str(e.value)
    assert "\n" not in msg
    assert str(tmp_path / "data" / "cifar-10-batches-py") in msg
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in msg and "dataset.download=true" in msg
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        load_cifar_lt("cifar100", tmp_path, 100, download=False)


def test_failed_download_becomes_file_not_found(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision_utils, "download_and_extract_archive", offline)
    with pytest.raises(FileNotFoundError, match=r"CIFAR-10 not found at .*download failed: URLError") as err:
        load_cifar_lt("cifar10", tmp_path, 100, download=True)
    assert "set dataset.download=true" not in str(err.value)  # it was true: do not suggest it


def test_download_uses_torchvision_url_and_md5_then_reads(tmp_path, monkeypatch):
    calls = []

    def fake_download(url, root, filename, md5):
        calls.append((url, filename, md5))
        write_cifar10(Path(root), 20, 1)

    monkeypatch.setattr(torchvision_utils, "download_and_extract_archive", fake_download)
    split = load_cifar_lt("cifar10", tmp_path, 10, download=True, n_max=20)
    assert calls == [(tv_cifar.CIFAR10.url, tv_cifar.CIFAR10.filename, tv_cifar.CIFAR10.tgz_md5)]
    assert len(split.y_test) == 10
    load_cifar_lt("cifar10", tmp_path, 10, download=True, n_max=20)
    assert len(calls) == 1  # present now: no second download


def test_corrupt_batch_names_the_file(tmp_path):
    write_cifar10(tmp_path, 2, 1)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(b"\x80\x02}q\x00(X\x04\x00\x00\x00da")  # truncated pickle
    with pytest.raises(ValueError, match=f"cannot read CIFAR file {bad}"):
        read_cifar_folder("cifar10", tmp_path)
    with open(bad, "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(ValueError, match=r"data_batch_3: 'data' must be uint8 \[N, 3072\]"):
        read_cifar_folder("cifar10", tmp_path)


def test_unknown_variant():
    with pytest.raises(ValueError, match="unknown CIFAR variant 'cifar1000'; choose one of cifar10, cifar100"):
        load_cifar_lt("cifar1000", "data", 10)


def write_npz(path, n_per_class=8, **overrides):
    rng = np.random.default_rng(0)
    y_train = np.repeat(np.arange(10), n_per_class)
    arrays = dict(
        x_train=rng.integers(0, 256, (len(y_train), 32, 32, 3), dtype=np.uint8), y_train=y_train,
        x_test=rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), y_test=np.repeat(np.arange(10), 2),
        class_names=np.array([f"c{i}" for i in range(10)]),
    )
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return arrays


def test_npz_source(tmp_path):
    arrays = write_npz(tmp_path / "c.npz")
    split = load_cifar_lt("cifar10", "unused", imbalance_factor=4, subset_seed=2, npz=tmp_path / "c.npz", n_max=8)
    assert split.samples_per_class == long_tail_counts(8, 10, 4)
    assert split.class_names == [f"c{i}" for i in range(10)]
    np.testing.assert_array_equal(split.x_test, arrays["x_test"])
    write_npz(tmp_path / "nonames.npz", class_names=None)
    assert read_cifar_npz(tmp_path / "nonames.npz", 10)[4] == [str(i) for i in range(10)]


@pytest.mark.parametrize(
    "overrides,match",
    [
        (dict(y_test=None), r"lacks keys \['y_test'\]"),
        (dict(x_test=np.zeros((20, 32, 32, 3), np.float32)), "x_test must be uint8"),
        (dict(x_test=np.zeros((20, 3, 32, 32), np.uint8)), r"x_test must be uint8 \[N, H, W, C\]"),
        (dict(x_test=np.zeros((20, 28, 28, 3), np.uint8)), r"x_test must be uint8 \[N, 32, 32, 3\]"),
        (dict(y_test=np.full(20, 10)), r"y_test must lie in \[0, 10\); got 10"),
        (dict(y_test=np.zeros(19, np.int64)), "one per image"),
        (dict(class_names=np.array(["a", "b"])), "class_names has 2 names; expected 10"),
    ],
)
def test_npz_validation(tmp_path, overrides, match):
    write_npz(tmp_path / "c.npz", **overrides)
    with pytest.raises(ValueError, match=match):
        read_cifar_npz(tmp_path / "c.npz", 10)


def test_npz_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"CIFAR .npz not found at {tmp_path / 'x.npz'}"):
        read_cifar_npz(tmp_path / "x.npz", 10)


@pytest.mark.data
@pytest.mark.skipif(not REAL_NPZ.is_file(), reason=f"{REAL_NPZ} not present (set CBL_CIFAR10_NPZ)")
def test_real_cifar10_npz():
    x_train, y_train, x_test, y_test, names = read_cifar_npz(REAL_NPZ, 10)
    assert x_train.shape == (50000, 32, 32, 3) and x_test.shape == (10000, 32, 32, 3)
    assert np.bincount(y_train).tolist() == [5000] * 10 and np.bincount(y_test).tolist() == [1000] * 10
    assert names[0] == "airplane" and names[9] == "truck"
    split = load_cifar_lt("cifar10", "unused", 100, npz=REAL_NPZ)
    assert len(split.y_train) == 12406 and len(split.y_test) == 10000
    assert split.samples_per_class == long_tail_counts(5000, 10, 100)
