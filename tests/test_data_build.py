"""build_data and configs/dataset/*.yaml: every config composes and is accepted; the entry point wires the
sources, loaders, counts and errors together."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from cbl.data import DATASET_NAMES, DataBundle, build_data
from cbl.data.build import ALLOWED_KEYS
from cbl.data.long_tail import long_tail_counts
from tests.data_fakes import write_cifar10, write_cifar100

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "dataset"
REAL_NPZ = Path(os.environ.get("CBL_CIFAR10_NPZ") or Path(__file__).resolve().parents[1].parent / "shared/data/cifar10_jpeg_lossy.npz")


def config(name: str, **overrides):
    cfg = OmegaConf.load(CONFIGS / f"{name}.yaml")
    return OmegaConf.merge(cfg, overrides)


def build(cfg, **kw):
    return build_data(cfg, **{"seed": 0, "device": "cpu", "batch_size": 32, "eval_batch_size": 50, **kw})


def test_one_config_per_dataset_with_known_keys():
    assert sorted(p.stem for p in CONFIGS.glob("*.yaml")) == sorted(DATASET_NAMES)
    for name in DATASET_NAMES:
        cfg = OmegaConf.to_container(OmegaConf.load(CONFIGS / f"{name}.yaml"), resolve=True)
        assert cfg["name"] == name
        assert set(cfg) <= ALLOWED_KEYS[name], sorted(set(cfg) - ALLOWED_KEYS[name])


def test_cifar_configs_follow_the_paper():
    for name, n_max in (("cifar10_lt", 5000), ("cifar100_lt", 500)):
        cfg = OmegaConf.load(CONFIGS / f"{name}.yaml")
        assert (cfg.n_max, cfg.imbalance_factor, cfg.pad, cfg.flip, cfg.input_size) == (n_max, 100, 4, True, 32)
        assert list(cfg["mean"]) == [128] * 3 and list(cfg["std"]) == [128] * 3


def test_root_follows_cbl_data_dir(monkeypatch):
    monkeypatch.setenv("CBL_DATA_DIR", "/datasets")
    assert OmegaConf.load(CONFIGS / "cifar10_lt.yaml").root == "/datasets"
    assert OmegaConf.load(CONFIGS / "inat2018.yaml").root == "/datasets/inat2018"
    monkeypatch.delenv("CBL_DATA_DIR")
    assert OmegaConf.load(CONFIGS / "cifar10_lt.yaml").root == "data"


@pytest.mark.parametrize("loader", ["tensor", "torch"])
def test_digits_config_end_to_end(loader, capsys):
    bundle = build(config("digits_lt", loader=loader, num_workers=0))
    assert isinstance(bundle, DataBundle)
    assert (bundle.num_classes, bundle.in_channels, bundle.input_size) == (10, 1, 8)
    assert bundle.samples_per_class == long_tail_counts(120, 10, 10)
    bundle.train.set_epoch(1)
    ys = torch.cat([y for _, y in bundle.train])
    assert np.bincount(ys.numpy(), minlength=10).tolist() == bundle.samples_per_class
    xs, ys = zip(*bundle.test)
    assert torch.cat(ys).bincount().tolist() == [50] * 10 and xs[0].shape[1:] == (1, 8, 8)
    out = capsys.readouterr().out
    assert "digits_lt: 10 classes" in out and str(bundle.samples_per_class) in out


def test_cifar_configs_on_fake_archives(tmp_path):
    write_cifar10(tmp_path, 12, 3)
    write_cifar100(tmp_path, 4, 1)
    c10 = build(config("cifar10_lt", root=str(tmp_path), n_max=12, imbalance_factor=10, subset_seed=4))
    assert c10.samples_per_class == long_tail_counts(12, 10, 10) and c10.class_names[0] == "airplane"
    assert sum(len(y) for _, y in c10.test) == 30
    c100 = build(config("cifar100_lt", root=str(tmp_path), n_max=4, imbalance_factor=4, loader="torch", num_workers=0))
    assert c100.num_classes == 100 and c100.samples_per_class == long_tail_counts(4, 100, 4)
    x, _ = next(iter(c100.train))
    assert x.shape[1:] == (3, 32, 32)


def test_ranks_share_the_work(tmp_path):
    write_cifar10(tmp_path, 12, 3)
    cfg = config("cifar10_lt", root=str(tmp_path), n_max=12, imbalance_factor=10)
    ranks = [build(cfg, rank=r, world_size=2) for r in range(2)]
    assert len(ranks[0].train) == len(ranks[1].train) == 2  # 46 images = 32 + 14: the same 2 batches on both ranks
    per_rank = [sum(len(y) for _, y in b.test) for b in ranks]
    assert per_rank == [15, 15]
    x, _ = next(iter(ranks[0].train))
    assert len(x) == 16  # global batch 32 over 2 ranks


@pytest.mark.parametrize(
    "cfg,match",
    [
        (dict(name="cifar1000"), "unknown dataset 'cifar1000'; choose one of cifar10_lt, cifar100_lt, inat2017, inat2018, ilsvrc2012, digits_lt, "
                                  "imagefolder, listfile, imagenet_lt, places_lt"),
        (dict(name="digits_lt", imbalance_factr=10), r"unknown or inapplicable keys \['imbalance_factr'\]"),
        (dict(name="inat2018", imbalance_factor=10), r"dataset config for inat2018 has unknown or inapplicable keys \['imbalance_factor'\]"),
        (dict(name="inat2018", loader="tensor"), "dataset.loader must be one of torch; got 'tensor'"),
        (dict(name="digits_lt", loader="dali"), "dataset.loader must be one of tensor, torch; got 'dali'"),
        (dict(name="digits_lt", flip="yes"), "dataset.flip must be true or false; got 'yes'"),
        (dict(name="digits_lt", input_size=32), r"input_size for digits_lt must be 8 \(its images are 8x8\); got 32"),
        (dict(name="digits_lt", imbalance_factor=0.5), "imbalance_factor must be a finite number >= 1; got 0.5"),
    ],
)
def test_config_errors(cfg, match):
    with pytest.raises(ValueError, match=match):
        build(cfg)


def test_missing_cifar_is_reported_with_its_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"CIFAR-10 not found at {tmp_path / 'cifar-10-batches-py'}"):
        build(dict(name="cifar10_lt", root=str(tmp_path)))


@pytest.mark.data
@pytest.mark.skipif(not REAL_NPZ.is_file(), reason=f"{REAL_NPZ} not present (set CBL_CIFAR10_NPZ)")
def test_real_npz_through_build_data():
    bundle = build(config("cifar10_lt", npz=str(REAL_NPZ)), batch_size=128, eval_batch_size=1000)
    assert sum(bundle.samples_per_class) == 12406 and len(bundle.train) == 97 and len(bundle.test) == 10
    x, y = next(iter(bundle.train))
    assert x.shape == (128, 3, 32, 32) and -1.0 <= x.min() and x.max() < 1.0
