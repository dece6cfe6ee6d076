"""Every config in configs/ composes, passes the checks and instantiates (data on fake trees in the real
layouts, model, loss, optimizer, schedule); the sweep files describe the paper's grids."""

from itertools import product

import pytest
import torch
from omegaconf import OmegaConf

from cbl.training import config as cbl_config
from cbl.data import build_data
from cbl.data.mlt_benchmarks import VOC_CLASSES
from cbl.losses.criterion import build_criterion, head_type
from cbl.models import build_model
from cbl.training.optim import build_optimizer, build_scheduler, resolve_decay_fc_bias, scaled_lr
from cbl.training.recipes import TABLE3_DATASETS
from tests.data_fakes import write_cifar10, write_cifar100, write_image_list, write_imagefolder, write_inat
from tests.multilabel_fakes import write_coco_mlt, write_list, write_voc_mlt
from tests.train_utils import CONFIG_DIR, compose_cfg

GROUP_OPTIONS = {g: sorted(p.stem for p in (CONFIG_DIR / g).glob("*.yaml"))
                 for g in ("dataset", "model", "loss", "optim", "experiment", "sweep")}


def test_the_groups_hold_every_option_the_project_promises():
    assert set(GROUP_OPTIONS["dataset"]) >= {"cifar10_lt", "cifar100_lt", "inat2017", "inat2018", "ilsvrc2012"}
    assert set(GROUP_OPTIONS["model"]) >= {"resnet32", "resnet50", "resnet101", "resnet152"}
    assert set(GROUP_OPTIONS["loss"]) >= {"softmax", "sigmoid", "focal"}
    assert set(GROUP_OPTIONS["optim"]) >= {"cifar", "large_scale"}


@pytest.fixture(scope="module")
def fake_roots(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_cifar10(root, per_class_train=6, per_class_test=2)
    write_cifar100(root, per_class_train=6, per_class_test=1)
    colours = {k: (20 * k, 100, 200 - 20 * k) for k in range(3)}
    write_inat(root / "inat2017", 2017, {0: 3, 1: 2, 2: 1}, {0: 1, 1: 1, 2: 1}, colours)
    write_inat(root / "inat2018", 2018, {0: 3, 1: 2, 2: 1}, {0: 1, 1: 1, 2: 1}, colours)
    wn = {f"n0{i}": (50 * i, 20, 20) for i in range(3)}
    write_imagefolder(root / "ilsvrc2012", "train", {"n00": 3, "n01": 2, "n02": 1}, wn)
    write_imagefolder(root / "ilsvrc2012", "val", {"n00": 1, "n01": 1, "n02": 1}, wn)
    # list files over the same images, relative to that root (as ImageNet-LT's are to the ILSVRC 2012 folder)
    for prefix, (split, per_class) in product(("ImageNet_LT", "Places_LT"), (("train", (3, 2, 1)), ("test", (1, 1, 1)))):
        entries = [(f"{'train' if split == 'train' else 'val'}/n0{k}/n0{k}_{i}.JPEG", k) for k, n in enumerate(per_class) for i in range(n)]
        write_image_list(root / prefix / f"{prefix}_{split}.txt", entries)
    # multi-label: COCO-MLT / VOC-MLT in their released layout, and a multi-label list
    write_coco_mlt(root / "coco", root / "appendix")
    every_class = {f"2008_{k:06d}": [(name, 0)] for k, name in enumerate(VOC_CLASSES)}  # n_c >= 1 for the weights
    write_voc_mlt(root / "VOCdevkit", root / "appendix", train_objects=every_class)
    write_list(root / "mine", "train.txt", [("a.png", "0,1"), ("b.png", "1")])
    write_list(root / "mine", "val.txt", [("c.png", "0")])
    return root


def dataset_overrides(name, root):
    small = {"cifar10_lt": ["dataset.n_max=6", "dataset.imbalance_factor=3"],
             "cifar100_lt": ["dataset.n_max=6", "dataset.imbalance_factor=3"],
             "inat2017": [f"dataset.root={root / 'inat2017'}", "dataset.num_workers=0"],
             "inat2018": [f"dataset.root={root / 'inat2018'}", "dataset.num_workers=0"],
             "ilsvrc2012": [f"dataset.root={root / 'ilsvrc2012'}", "dataset.num_workers=0"],
             "imagefolder": [f"dataset.root={root / 'ilsvrc2012'}", "dataset.num_workers=0"],
             "listfile": [f"dataset.root={root / 'ilsvrc2012'}", f"dataset.train_list={root / 'ImageNet_LT/ImageNet_LT_train.txt'}",
                          f"dataset.val_list={root / 'ImageNet_LT/ImageNet_LT_test.txt'}", "dataset.num_workers=0"],
             "imagenet_lt": [f"dataset.root={root / 'ilsvrc2012'}", f"dataset.lists_dir={root / 'ImageNet_LT'}", "dataset.num_workers=0"],
             "places_lt": [f"dataset.root={root / 'ilsvrc2012'}", f"dataset.lists_dir={root / 'Places_LT'}", "dataset.num_workers=0"],
             # multi-label data takes a sigmoid-based loss
             "coco_mlt": [f"dataset.root={root / 'coco'}", f"dataset.lists_dir={root / 'appendix'}", "dataset.num_workers=0", "loss=sigmoid"],
             "voc_mlt": [f"dataset.root={root / 'VOCdevkit'}", f"dataset.lists_dir={root / 'appendix'}", "dataset.num_workers=0", "loss=sigmoid"],
             "multilabel_listfile": [f"dataset.root={root / 'mine'}", "dataset.train_list=train.txt", "dataset.val_list=val.txt",
                                     "dataset.num_workers=0", "loss=sigmoid"],
             "digits_mlt": ["loss=sigmoid"]}
    if name in ("cifar10_lt", "cifar100_lt"):
        return [f"dataset.root={root}", *small[name]]
    return small.get(name, [])


def build_everything(cfg, num_classes, in_channels=3):
    model = build_model(cfg.model.name, num_classes, loss_type=head_type(cfg.loss.name), in_channels=in_channels,
                        **{k: v for k, v in cfg.model.items() if k != "name"})
    criterion = build_criterion(cfg.loss, [10] * num_classes)
    o = cfg.optim
    optimizer = build_optimizer(model, name=o.name, lr=scaled_lr(o.lr, o.batch_size, o.reference_batch),
                                momentum=o.momentum, weight_decay=o.weight_decay, nesterov=o.nesterov, decay_bn=o.decay_bn,
                                decay_fc_bias=resolve_decay_fc_bias(o.decay_fc_bias, head_type(cfg.loss.name)))
    build_scheduler(optimizer, steps_per_epoch=10, warmup_epochs=o.warmup_epochs, milestones=list(o.milestones),
                    factors=list(o.factors))
    return model, criterion


@pytest.mark.parametrize("dataset", GROUP_OPTIONS["dataset"])
def test_every_dataset_config_builds_its_loaders(dataset, fake_roots):
    # the Table 3 datasets train ResNet-50/101/152: the default ResNet-32 is refused on them (test_run_names.py)
    model = ["model=resnet50"] if dataset in TABLE3_DATASETS else []
    cfg = compose_cfg(f"dataset={dataset}", *model, *dataset_overrides(dataset, fake_roots), "device=cpu")
    cbl_config.check(cfg)
    data = build_data(cfg.dataset, seed=0, device=torch.device("cpu"), batch_size=4, eval_batch_size=4)
    x, y = next(iter(data.train))
    assert x.shape[1:] == (data.in_channels, data.input_size, data.input_size) and x.dtype == torch.float32
    assert len(data.samples_per_class) == data.num_classes
    # a multi-label image counts once per label
    assert (sum(data.samples_per_class) >= data.train.num_samples) if data.multilabel else (
        sum(data.samples_per_class) == data.train.num_samples)
    assert (y.shape == (len(x), data.num_classes)) if data.multilabel else (y.shape == (len(x),))


@pytest.mark.parametrize("model", GROUP_OPTIONS["model"])
@pytest.mark.parametrize("loss", GROUP_OPTIONS["loss"])
def test_every_model_and_loss_config_instantiates(model, loss):
    cfg = compose_cfg(f"model={model}", f"loss={loss}", "dataset=digits_lt" if model == "small_cnn" else "dataset=cifar10_lt")
    cbl_config.check(cfg)
    net, criterion = build_everything(cfg, num_classes=5)
    if model in ("resnet32", "small_cnn"):  # the big ones are exercised in tests/test_models.py
        logits = net(torch.randn(2, 3, 32, 32))
        loss_value = criterion(logits, torch.tensor([0, 4]))
        assert torch.isfinite(loss_value)


@pytest.mark.parametrize("optim", GROUP_OPTIONS["optim"])
def test_every_optim_config_instantiates(optim):
    cfg = compose_cfg(f"optim={optim}", "model=small_cnn")
    cbl_config.check(cfg)
    build_everything(cfg, num_classes=3)


@pytest.mark.parametrize("experiment", GROUP_OPTIONS["experiment"])
def test_every_experiment_composes_and_checks(experiment):
    cfg = compose_cfg(f"experiment={experiment}")
    cbl_config.check(cfg)
    build_everything(cfg, num_classes=7)


def sweep_params(name):
    node = OmegaConf.load(CONFIG_DIR / "sweep" / f"{name}.yaml")
    return {k: str(v).split(",") for k, v in node.hydra.sweeper.params.items()}


@pytest.mark.parametrize("sweep", GROUP_OPTIONS["sweep"])
def test_every_sweep_value_composes_and_checks(sweep):
    params = sweep_params(sweep)
    base = compose_cfg(f"sweep={sweep}")
    cbl_config.check(base)
    first = {k: v[0] for k, v in params.items()}
    for key, values in params.items():  # one axis at a time, the others at their first value (a real job)
        for value in values:
            job = {**first, key: value}
            cbl_config.check(compose_cfg(f"sweep={sweep}", *(f"{k}={v}" for k, v in job.items())))
    # the extreme corner of the grid as well
    corner = [f"{k}={v[-1]}" for k, v in params.items()]
    cbl_config.check(compose_cfg(f"sweep={sweep}", *corner))


def grid_size(name):
    size = 1
    for values in sweep_params(name).values():
        size *= len(values)
    return size


def test_table2_sweeps_cover_the_paper_grid():
    runs = set()
    for name in ("table2_softmax_sigmoid", "table2_focal"):
        cfg = compose_cfg(f"sweep={name}")
        assert cfg.name == "table2" and cfg.model.name == "resnet32" and cfg.optim.epochs == 200
        p = sweep_params(name)
        for values in product(*p.values()):
            combo = dict(zip(p, values))
            gamma = float(combo.get("loss.gamma", 0.0))
            runs.add((combo["dataset"], float(combo["dataset.imbalance_factor"]), combo["loss"], gamma, float(combo["loss.beta"])))
    expected = {(d, float(f), loss, g, b)
                for d in ("cifar10_lt", "cifar100_lt") for f in (200, 100, 50, 20, 10, 1)
                for loss, g in (("softmax", 0.0), ("sigmoid", 0.0), ("focal", 0.5), ("focal", 1.0), ("focal", 2.0))
                for b in (0.0, 0.9, 0.99, 0.999, 0.9999)}
    assert runs == expected and len(runs) == 300


def test_table3_sweeps_cover_the_paper_rows():
    assert grid_size("table3_softmax") == 9 and grid_size("table3_cb_focal") == 18
    focal = compose_cfg("sweep=table3_cb_focal")
    assert (focal.loss.name, focal.loss.beta, focal.loss.gamma) == ("focal", 0.999, 0.5)
    assert focal.optim.batch_size == 1024 and focal.optim.epochs == 90 and focal.optim.nesterov
    assert compose_cfg("sweep=table3_softmax").loss.name == "softmax"


def test_input_normalisation_follows_the_authors_code():
    # CIFAR: x / 128 - 1 (src/cifar_model.py); iNat: iNat statistics; ILSVRC: ImageNet statistics (tpu resnet_main.py)
    expected = {"cifar10_lt": ([0.5] * 3, [0.5] * 3), "cifar100_lt": ([0.5] * 3, [0.5] * 3),
                "inat2017": ([0.466, 0.471, 0.380], [0.195, 0.194, 0.192]),
                "inat2018": ([0.466, 0.471, 0.380], [0.195, 0.194, 0.192]),
                "ilsvrc2012": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])}
    for name, (mean, std) in expected.items():
        ds = compose_cfg(f"dataset={name}").dataset
        assert [m / 255 for m in ds.mean] == pytest.approx(mean, abs=2e-3) and [s / 255 for s in ds.std] == pytest.approx(std, abs=2e-3)
