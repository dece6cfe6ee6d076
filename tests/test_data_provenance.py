"""Data provenance: every source gets a label that says whether it is the official release (checked against its
md5 sums or sizes, never assumed) or names the content hash of what was read; runs record it and refuse to
resume on other data."""

import hashlib

import numpy as np
import pytest
from omegaconf import OmegaConf

from cbl.training.config import ConfigError
from cbl.data import build_data, load_cifar_lt, provenance
from cbl.data import cifar as cifar_module
from cbl.data.imagenet import ilsvrc2012_splits
from cbl.data.inaturalist import inaturalist_splits
from cbl.training.run import train
from tests.data_fakes import write_cifar10, write_imagefolder, write_inat
from tests.train_utils import QUIET, compose_cfg, read_metrics, tiny_cifar_overrides


def _hash(path, algorithm="sha256") -> str:
    return hashlib.new(algorithm, path.read_bytes()).hexdigest()


def _npz(path, seed=0, n=20):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(10), n // 10)
    np.savez(path, x_train=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), y_train=y,
             x_test=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), y_test=y)
    return path


def test_npz_source_names_the_file_and_its_content_hash(tmp_path):
    path = _npz(tmp_path / "copy.npz")
    split = load_cifar_lt("cifar10", npz=path, imbalance_factor=1, n_max=2)
    assert split.source.id == f"npz:copy.npz@sha256:{_hash(path)[:16]}"
    assert not split.source.official and _hash(path) in split.source.detail
    # another content under the same name is another source
    other = load_cifar_lt("cifar10", npz=_npz(tmp_path / "copy.npz", seed=1), imbalance_factor=1, n_max=2)
    assert other.source.id != split.source.id and other.source.id.startswith("npz:copy.npz@sha256:")


def test_cifar_folder_is_official_only_with_the_official_md5_sums(tmp_path, monkeypatch):
    write_cifar10(tmp_path, per_class_train=3, per_class_test=1)
    folder = tmp_path / "cifar-10-batches-py"
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    # the fake tree is not the official archive: its label names the folder and the content hash
    split = load_cifar_lt("cifar10", root=tmp_path, imbalance_factor=1, n_max=3, download=False)
    assert split.source.id.startswith("folder:cifar-10-batches-py@sha256:") and not split.source.official
    assert "md5 differs from the official archive" in split.source.detail
    # torchvision's list is what "official" is checked against
    assert cifar_module.official_md5("cifar10")["data_batch_1"] == "c99cafc152244af753f735de768cd75f"
    assert set(cifar_module.official_md5("cifar100")) == {"train", "test", "meta"}
    md5 = {f: _hash(folder / f, "md5") for f in files}
    monkeypatch.setattr(cifar_module, "official_md5", lambda name: md5)
    assert load_cifar_lt("cifar10", root=tmp_path, imbalance_factor=1, n_max=3, download=False).source.id == "official"
    # one changed byte in one file and it is not official any more
    monkeypatch.setattr(cifar_module, "official_md5", lambda name: {**md5, "test_batch": "0" * 32})
    source = load_cifar_lt("cifar10", root=tmp_path, imbalance_factor=1, n_max=3, download=False).source
    assert not source.official and "for test_batch" in source.detail


def test_inat_is_official_only_with_the_official_sizes(tmp_path, monkeypatch):
    write_inat(tmp_path, 2018, {2: 3, 5: 1}, {2: 1, 5: 1}, {2: (250, 0, 0), 5: (0, 250, 0)})
    *_, source = inaturalist_splits(tmp_path, "inat2018")
    combined = hashlib.sha256(
        "".join(f"{n} {_hash(tmp_path / n)}\n" for n in ("train2018.json", "val2018.json")).encode()
    ).hexdigest()
    assert source.id == f"files:inat2018@sha256:{combined[:16]}"
    assert "4 train / 2 val images, 2 classes" in source.detail and "437513" in source.detail
    monkeypatch.setitem(provenance.OFFICIAL_SIZES, "inat2018", (4, 2, 2))
    assert inaturalist_splits(tmp_path, "inat2018")[-1].id == "official"


def test_ilsvrc_is_official_only_with_the_official_sizes(tmp_path, monkeypatch):
    colours = {"n01": (250, 0, 0), "n02": (0, 250, 0)}
    write_imagefolder(tmp_path, "train", {"n01": 2, "n02": 1}, colours)
    write_imagefolder(tmp_path, "val", {"n01": 1, "n02": 1}, colours)
    *_, source = ilsvrc2012_splits(tmp_path)
    assert source.id.startswith("folder:ilsvrc2012@sha256:") and "3 train / 2 val images, 2 classes" in source.detail
    # the hash is over the sample list relative to the root: the same tree elsewhere has the same id
    moved = tmp_path.rename(tmp_path.parent / "moved")
    assert ilsvrc2012_splits(moved)[-1].id == source.id
    monkeypatch.setitem(provenance.OFFICIAL_SIZES, "ilsvrc2012", (3, 2, 2))
    assert ilsvrc2012_splits(moved)[-1].id == "official"


def test_build_data_carries_the_source(tmp_path):
    bundle = build_data(dict(name="digits_lt"), seed=0, device="cpu", batch_size=8, eval_batch_size=8)
    assert bundle.source.id == "official" and "load_digits" in bundle.source.detail
    path = _npz(tmp_path / "c.npz")
    bundle = build_data(dict(name="cifar10_lt", npz=str(path), imbalance_factor=1, n_max=2), seed=0, device="cpu",
                        batch_size=8, eval_batch_size=8)
    assert bundle.source.id == f"npz:c.npz@sha256:{_hash(path)[:16]}"


def test_a_run_records_its_source_and_refuses_to_resume_on_other_data(tmp_path):
    data = tmp_path / "data"
    cfg = compose_cfg(*tiny_cifar_overrides(data, epochs=1), *QUIET)
    run_dir = tmp_path / "run"
    train(cfg, run_dir)
    metrics = read_metrics(run_dir)
    source = metrics["data_source"]
    assert source["id"].startswith("folder:cifar-10-batches-py@sha256:") and source["official"] is False
    assert metrics["run"]["data_source"] == source["id"]
    assert OmegaConf.load(run_dir / "config.yaml").data_source.id == source["id"]

    # the same config on a changed copy of the data may not continue that run's checkpoint
    (run_dir / "metrics.json").unlink()
    write_cifar10(data, per_class_train=12, per_class_test=3, seed=1)
    longer = compose_cfg(*tiny_cifar_overrides(data, epochs=1), *QUIET, "resume=true")
    with pytest.raises(ConfigError, match="cannot resume .* data_source"):
        train(longer, run_dir)
