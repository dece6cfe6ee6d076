"""Your own data (docs/custom_data.md): class folders (imagefolder), `path label` lists (listfile) and the
ImageNet-LT / Places-LT split files, from tiny trees in the real formats: counts, labels that match the image
content, the seeded long-tailed subset, provenance, every one-line error, config composition and a short
training run per format."""

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from cbl.training import config as cbl_config
from cbl.training.config import ConfigError
from cbl.data import build_data, provenance
from cbl.data.custom import custom_splits
from cbl.data.long_tail import class_shuffle, long_tail_counts
from cbl.data.transforms import IMAGENET_MEAN, IMAGENET_STD, small_image_transform
from cbl.training.run import train
from tests.data_fakes import write_image, write_image_list, write_imagefolder, write_listed_images
from tests.train_utils import QUIET, compose_cfg, read_metrics, run_cli

MEAN, STD = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
FOLDER_COLOURS = {"cat": (220, 30, 30), "dog": (30, 220, 30), "eel": (30, 30, 220)}
LIST_COLOURS = {0: (220, 30, 30), 1: (30, 220, 30), 2: (30, 30, 220), 3: (220, 220, 30)}


def centre_colour(x: torch.Tensor) -> np.ndarray:
    return x[:, x.shape[1] // 2, x.shape[2] // 2].numpy() * STD + MEAN


def build(cfg: dict, **kw):
    return build_data({"num_workers": 0, "input_size": 16, **cfg}, **{"seed": 0, "device": "cpu", "batch_size": 4,
                                                                       "eval_batch_size": 4, **kw})


def assert_images_match_labels(bundle, colour_of):
    """Every image is its class's solid colour: the label really is that image's class."""
    seen = {}
    for name, loader in (("train", bundle.train), ("test", bundle.test)):
        ys = []
        for x, y in loader:
            for xi, yi in zip(x, y.tolist()):
                np.testing.assert_allclose(centre_colour(xi), colour_of(yi), atol=10)
            ys += y.tolist()
        seen[name] = np.bincount(ys, minlength=bundle.num_classes).tolist()
    return seen


def one_line(e) -> str:
    message = str(e.value)
    assert "\n" not in message
    return message


# ----------------------------------------------------------------------------- imagefolder
@pytest.fixture
def folder(tmp_path):
    write_imagefolder(tmp_path, "train", {"cat": 5, "dog": 3, "eel": 1}, FOLDER_COLOURS)
    write_imagefolder(tmp_path, "val", {"cat": 2, "dog": 1, "eel": 2}, FOLDER_COLOURS)
    write_image(tmp_path / "train" / "dog" / "nested" / "extra.png", FOLDER_COLOURS["dog"])  # any depth, PNG too
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    return tmp_path


def test_imagefolder_counts_labels_and_images(folder):
    bundle = build(dict(name="imagefolder", root=str(folder)))
    assert bundle.class_names == ["cat", "dog", "eel"] and bundle.samples_per_class == [5, 4, 1]
    assert (bundle.num_classes, bundle.in_channels, bundle.input_size) == (3, 3, 16)
    seen = assert_images_match_labels(bundle, lambda y: FOLDER_COLOURS[bundle.class_names[y]])
    assert seen == {"train": [5, 4, 1], "test": [2, 1, 2]}
    assert bundle.source.id.startswith("folder:imagefolder@sha256:") and not bundle.source.official
    assert "10 train / 5 val images, 3 classes (no official release to compare with)" in bundle.source.detail
    # the Inception-style recipe at 224 reads the same tree
    x, _ = next(iter(build(dict(name="imagefolder", root=str(folder), input_size=224)).test))
    assert x.shape[1:] == (3, 224, 224)


def test_imagefolder_long_tailed_subset_is_the_cifar_profile_and_seeded(tmp_path):
    colours = {f"c{k}": (40 * k, 100, 200 - 40 * k) for k in range(4)}
    write_imagefolder(tmp_path, "train", {"c0": 9, "c1": 7, "c2": 8, "c3": 6}, colours)
    write_imagefolder(tmp_path, "val", {c: 1 for c in colours}, colours)

    def subset(**kw):
        s = custom_splits("imagefolder", {"root": str(tmp_path), **kw}, None, None)
        return s, sorted(p for p, _ in s.train.samples)

    full, all_files = subset()
    assert np.bincount(full.train_labels).tolist() == [9, 7, 8, 6]
    s, files = subset(imbalance_factor=5)  # n_max = the smallest class count, 6
    assert np.bincount(s.train_labels, minlength=4).tolist() == long_tail_counts(6, 4, 5) == [6, 3, 2, 1]
    assert s.train.targets == s.train_labels.tolist() and len(s.train.imgs) == 12
    # which images: class c keeps the first n_c of its seeded shuffle (cbl.data.long_tail), the same every time
    labels = np.asarray(full.train.targets)
    expected = sorted(all_files[i] for c, n in enumerate([6, 3, 2, 1])
                      for i in class_shuffle(np.flatnonzero(labels == c), 0, c)[:n])
    assert files == expected and subset(imbalance_factor=5)[1] == files
    assert subset(imbalance_factor=5, subset_seed=1)[1] != files
    s, _ = subset(imbalance_factor=2, n_max=7)
    assert np.bincount(s.train_labels).tolist() == long_tail_counts(7, 4, 2)
    assert s.source.id == full.source.id  # the source is the tree; the subset is recorded with the run
    with pytest.raises(ValueError) as e:
        subset(imbalance_factor=2, n_max=10)
    assert "class 'c0' (label 0) has 9 images but the long-tail profile n_i = int(10 * (1/2) ** (i/3)) asks for 10 " \
           "(1 classes short); lower dataset.n_max (null = the smallest class count, 6)" in one_line(e)
    bundle = build(dict(name="imagefolder", root=str(tmp_path), imbalance_factor=5, subset_seed=3))
    assert bundle.samples_per_class == [6, 3, 2, 1] and len(bundle.test.loader.dataset) == 4


def test_imagefolder_errors_are_one_line(tmp_path):
    def fails(exc, match):
        with pytest.raises(exc, match=match) as e:
            build(dict(name="imagefolder", root=str(tmp_path)))
        one_line(e)

    tmp_path = tmp_path / "data"
    fails(FileNotFoundError, "root folder .*data does not exist; expected <root>/train/<class>/<image>")
    tmp_path.mkdir()
    fails(FileNotFoundError, "no train folder at .*train")
    (tmp_path / "train").mkdir()
    fails(FileNotFoundError, "train holds no class folders")
    write_imagefolder(tmp_path, "train", {"cat": 2, "dog": 1}, FOLDER_COLOURS)
    (tmp_path / "train" / "eel").mkdir()
    (tmp_path / "train" / "eel" / "readme.txt").write_text("x")
    write_imagefolder(tmp_path, "val", {"cat": 1, "dog": 1, "eel": 1}, FOLDER_COLOURS)
    fails(ValueError, r"class folder .*train/eel holds no images \(1 empty class folder\(s\): \['eel'\]\); images need one of the extensions .jpg")
    write_imagefolder(tmp_path, "train", {"eel": 1}, FOLDER_COLOURS)
    write_imagefolder(tmp_path, "val", {"fox": 1}, {"fox": (1, 2, 3)})
    fails(ValueError, r"val classes \['fox'\] \(1 in all\) have no train folder")
    write_imagefolder(tmp_path, "train", {"fox": 1, "gnu": 1}, {"fox": (1, 2, 3), "gnu": (3, 2, 1)})
    fails(ValueError, r"train classes \['gnu'\] \(1 in all\) have no val folder")


# ----------------------------------------------------------------------------- listfile
def write_lists(root, train_per_class, val_per_class, suffix=".jpg"):
    train = write_listed_images(root, "imgs/train", train_per_class, LIST_COLOURS, suffix)
    val = write_listed_images(root, "imgs/val", val_per_class, LIST_COLOURS, suffix)
    return train, val


def test_listfile_counts_labels_and_images(tmp_path):
    train, val = write_lists(tmp_path, {2: 1, 0: 4, 1: 2, 3: 1}, {0: 1, 1: 2, 2: 1, 3: 1})
    # the split files' quirks: a leading "/" is still relative to the root, blank lines are skipped, a path may hold spaces
    write_image(tmp_path / "imgs" / "train" / "class_1" / "with space.jpg", LIST_COLOURS[1])
    lines = [f"/{train[0][0]} {train[0][1]}", *train[1:], "", ("imgs/train/class_1/with space.jpg", 1)]
    write_image_list(tmp_path / "lists" / "train.txt", lines)
    write_image_list(tmp_path / "lists" / "val.txt", val)
    bundle = build(dict(name="listfile", root=str(tmp_path), train_list="lists/train.txt", val_list="lists/val.txt"))
    assert bundle.samples_per_class == [4, 3, 1, 1] and bundle.num_classes == 4
    assert bundle.class_names == ["class_0", "class_1", "class_2", "class_3"]  # the images' folder names
    seen = assert_images_match_labels(bundle, lambda y: LIST_COLOURS[y])
    assert seen == {"train": [4, 3, 1, 1], "test": [1, 2, 1, 1]}
    digest = hashlib.sha256("".join(f"{n} {hashlib.sha256((tmp_path / 'lists' / n).read_bytes()).hexdigest()}\n"
                                    for n in ("train.txt", "val.txt")).encode()).hexdigest()
    assert bundle.source.id == f"files:listfile@sha256:{digest[:16]}"
    # absolute list paths, and a long-tailed subset of the list as for imagefolder
    s = custom_splits("listfile", {"root": str(tmp_path), "train_list": str(tmp_path / "lists" / "train.txt"),
                                   "val_list": str(tmp_path / "lists" / "val.txt"), "imbalance_factor": 1, "n_max": 1}, None, None)
    assert np.bincount(s.train_labels).tolist() == [1, 1, 1, 1] and sorted(s.train.labels.tolist()) == [0, 1, 2, 3]


def test_class_names_fall_back_to_label_numbers(tmp_path):
    entries = [(f"flat/{i}.png", y) for i, y in enumerate([0, 1, 1])]
    for rel, y in entries:
        write_image(tmp_path / rel, LIST_COLOURS[y])
    write_image_list(tmp_path / "t.txt", entries)
    bundle = build(dict(name="listfile", root=str(tmp_path), train_list="t.txt", val_list="t.txt"))
    assert bundle.class_names == ["0", "1"]


@pytest.mark.parametrize("train_lines,val_lines,exc,match", [
    (["imgs/train/class_0/0_0.jpg 0", "imgs/train/class_0/0_1.jpg"], None, ValueError,
     r"train.txt:2: expected '<relative image path> <integer label>'; got 'imgs/train/class_0/0_1.jpg'"),
    (["imgs/train/class_0/0_0.jpg zero"], None, ValueError, r"train.txt:1: label 'zero' is not an integer"),
    (["imgs/train/class_0/0_0.jpg 1.0"], None, ValueError, r"train.txt:1: label '1.0' is not an integer"),
    (["", "imgs/train/class_0/0_0.jpg -1"], None, ValueError, r"train.txt:2: label -1 is negative; labels are 0..C-1"),
    (["imgs/train/class_0/0_0.jpg 0", "imgs/train/class_2/2_0.jpg 2"], None, ValueError,
     r"train.txt: labels must cover 0..2 \(C = largest label \+ 1\) but labels \[1\] \(1 in all\) have no training image"),
    (None, ["imgs/val/class_0/0_0.jpg 0", "imgs/val/class_1/1_0.jpg 9"], ValueError,
     r"val.txt:2: label 9 is out of range: the train list train.txt has labels 0..2"),
    ([*(f"imgs/train/gone_{i}.jpg 0" for i in range(7)), "imgs/train/class_1/1_0.jpg 1", "imgs/train/class_2/2_0.jpg 2"],
     None, FileNotFoundError, (r"train.txt names 7 image\(s\) not found under .* \(first: imgs/train/gone_0.jpg, "
                               r"imgs/train/gone_1.jpg, imgs/train/gone_2.jpg, imgs/train/gone_3.jpg, imgs/train/gone_4.jpg\); "
                               r"set dataset.root to the folder")),
    ([], None, ValueError, r"image list .*train.txt lists no images"),
])
def test_listfile_errors_are_one_line(tmp_path, train_lines, val_lines, exc, match):
    train, val = write_lists(tmp_path, {0: 1, 1: 1, 2: 1}, {0: 1, 1: 1, 2: 1})
    write_image_list(tmp_path / "train.txt", train if train_lines is None else train_lines)
    write_image_list(tmp_path / "val.txt", val if val_lines is None else val_lines)
    with pytest.raises(exc, match=match) as e:
        build(dict(name="listfile", root=str(tmp_path), train_list="train.txt", val_list="val.txt"))
    one_line(e)


def test_listfile_missing_files_and_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"image root {tmp_path / 'nope'} does not exist"):
        build(dict(name="listfile", root=str(tmp_path / "nope"), train_list="a.txt", val_list="b.txt"))
    with pytest.raises(FileNotFoundError, match=f"image list {tmp_path / 'a.txt'} not found"):
        build(dict(name="listfile", root=str(tmp_path), train_list="a.txt", val_list="b.txt"))
    with pytest.raises(ValueError, match="dataset.val_list is required for dataset=listfile"):
        build(dict(name="listfile", root=str(tmp_path), train_list="a.txt"))


# ----------------------------------------------------------------------------- ImageNet-LT / Places-LT split files
@pytest.mark.parametrize("name,prefix,classes", [("imagenet_lt", "ImageNet_LT", 1000), ("places_lt", "Places_LT", 365)])
def test_benchmark_split_files(tmp_path, monkeypatch, caplog, name, prefix, classes):
    lists = tmp_path / "lists"
    cfg = dict(name=name, root=str(tmp_path / "images"), lists_dir=str(lists))
    with pytest.raises(FileNotFoundError) as e:
        build(cfg)
    message = one_line(e)
    assert f"{prefix}_train.txt, {prefix}_test.txt not found in {lists}" in message
    assert "github.com/zhmiao/OpenLongTailRecognition-OLTR" in message
    train, test = write_lists(tmp_path / "images", {0: 3, 1: 2, 2: 1}, {0: 2, 1: 2, 2: 2})
    write_image_list(lists / f"{prefix}_train.txt", train)
    write_image_list(lists / f"{prefix}_test.txt", test)
    write_image_list(lists / f"{prefix}_val.txt", test[::2])
    with caplog.at_level("WARNING"):
        bundle = build(cfg)
    assert f"has 3 classes (the released split has {classes})" in caplog.text
    assert bundle.samples_per_class == [3, 2, 1] and bundle.test.num_samples == 6
    assert bundle.source.id.startswith(f"files:{name}@sha256:") and f"{prefix}_test.txt" in bundle.source.detail
    assert build({**cfg, "eval_split": "val"}).test.num_samples == 3
    with pytest.raises(ValueError, match="dataset.eval_split must be one of test, val; got 'dev'"):
        build({**cfg, "eval_split": "dev"})
    # "official" only for the released sizes with the test list (what papers report)
    monkeypatch.setitem(provenance.OFFICIAL_SIZES, name, (6, 6, 3))
    assert build(cfg).source.official and not build({**cfg, "eval_split": "val"}).source.official


def test_official_sizes_of_the_benchmarks():
    # TensorFlow Datasets' imagenet_lt lists 115,846 / 20,000 / 50,000 (train / val / test); Places-LT 62,500 / 365
    assert provenance.OFFICIAL_SIZES["imagenet_lt"] == (115_846, 50_000, 1000)
    assert provenance.OFFICIAL_SIZES["places_lt"] == (62_500, 36_500, 365)


# ----------------------------------------------------------------------------- transforms
def test_small_image_recipe_resizes_crops_and_pads():
    img = Image.new("RGB", (40, 20), (10, 20, 30))
    for is_train in (False, True):
        x = small_image_transform(is_train, 16)(img)
        assert x.shape == (3, 16, 16) and type(x) is torch.Tensor
    with pytest.raises(ValueError, match="small-image recipe must be one of 16, 32, 48, 64, 96, 128; got 40"):
        small_image_transform(True, 40)


# ----------------------------------------------------------------------------- configs and training
def test_configs_compose_and_check(tmp_path):
    for name in ("imagenet_lt", "places_lt"):  # the benchmarks have default paths under CBL_DATA_DIR
        cbl_config.check(compose_cfg(f"dataset={name}"))
    cfg = compose_cfg("dataset=imagefolder", f"dataset.root={tmp_path}", "dataset.imbalance_factor=10", "dataset.input_size=32")
    cbl_config.check(cfg)
    assert cfg.dataset.imbalance_factor == 10 and cfg.dataset.n_max is None
    cases = [
        (["dataset=imagefolder"], "dataset.root=None is not allowed: dataset=imagefolder needs dataset.root=<path>"),
        (["dataset=listfile", f"dataset.root={tmp_path}", "dataset.train_list=t.txt"], "dataset.val_list=None is not allowed"),
        (["dataset=imagefolder", f"dataset.root={tmp_path}", "dataset.input_size=100"],
         "dataset.input_size=100 is not allowed: imagefolder supports 16 or 32 or 48 or 64 or 96 or 128 or 224 or 320"),
        (["dataset=imagefolder", f"dataset.root={tmp_path}", "dataset.imbalance_factor=0.5"], "dataset.imbalance_factor=0.5 is not allowed"),
        (["dataset=imagenet_lt", "dataset.eval_split=dev"], "dataset.eval_split='dev' is not allowed: choose one of test, val"),
    ]
    for overrides, match in cases:
        with pytest.raises(ConfigError) as e:
            cbl_config.check(compose_cfg(*overrides))
        assert match in one_line(e)


def short_run(dataset_overrides: list[str]) -> list[str]:
    return [*dataset_overrides, "dataset.input_size=16", "dataset.num_workers=0", "model=small_cnn", "optim=demo",
            "optim.epochs=2", "optim.batch_size=8", "optim.reference_batch=8", "optim.milestones=[]", "optim.factors=[]",
            "eval_batch_size=8", "loss=focal", "loss.beta=0.9", "loss.gamma=0.5", *QUIET]


def test_listfile_trains_end_to_end(tmp_path):
    train_entries, val = write_lists(tmp_path, {0: 6, 1: 4, 2: 2, 3: 1}, {0: 2, 1: 2, 2: 2, 3: 2})
    write_image_list(tmp_path / "train.txt", train_entries)
    write_image_list(tmp_path / "val.txt", val)
    cfg = compose_cfg(*short_run(["dataset=listfile", f"dataset.root={tmp_path}", "dataset.train_list=train.txt",
                                  "dataset.val_list=val.txt"]))
    metrics = train(cfg, tmp_path / "run")
    assert metrics["status"] == "finished" and metrics["epochs_completed"] == 2 and metrics["samples_per_class"] == [6, 4, 2, 1]
    assert len(metrics["per_class_acc"]) == 4 and set(metrics["shot_acc"]) == {"many", "medium", "few"}
    assert metrics["data_source"]["id"].startswith("files:listfile@sha256:")
    assert read_metrics(tmp_path / "run")["run"]["dataset"] == "listfile"


def test_imagefolder_trains_from_the_command_line(tmp_path):
    colours = {f"c{k}": (60 * k, 120, 220 - 60 * k) for k in range(4)}
    write_imagefolder(tmp_path / "data", "train", {c: 5 for c in colours}, colours)
    write_imagefolder(tmp_path / "data", "val", {c: 2 for c in colours}, colours)
    args = short_run(["dataset=imagefolder", f"dataset.root={tmp_path / 'data'}", "dataset.imbalance_factor=5"])
    done = run_cli([*args, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = read_metrics(tmp_path / "run")
    assert metrics["status"] == "finished" and metrics["samples_per_class"] == long_tail_counts(5, 4, 5) == [5, 2, 1, 1]
    assert metrics["data_source"]["id"].startswith("folder:imagefolder@sha256:")
    # a missing root is one line before any work
    bad = run_cli(["dataset=imagefolder", *QUIET, f"hydra.run.dir={tmp_path / 'bad'}"], cwd=tmp_path)
    assert bad.returncode == 2
    assert "error: dataset.root=None is not allowed: dataset=imagefolder needs dataset.root=<path>" in bad.stderr
