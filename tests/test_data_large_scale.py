"""iNaturalist 2017/2018 and ILSVRC 2012 from tiny trees in the official layouts, end to end through the
Inception-style transforms; the transforms themselves against torchvision's v1 reference pipeline."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from cbl.data import build_data
from cbl.data.imagenet import ilsvrc2012_splits
from cbl.data.inaturalist import INaturalist, inaturalist_splits
from cbl.data.transforms import IMAGENET_MEAN, IMAGENET_STD, inception_transform
from tests.data_fakes import write_imagefolder, write_inat, write_jpeg

MEAN, STD = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
# category ids as listed in the file: unsorted, with gaps; labels follow the sorted ids 2 -> 0, 5 -> 1, 9 -> 2
TRAIN = {9: 1, 2: 4, 5: 2}
VAL = {5: 1, 9: 2, 2: 1}
COLOURS = {2: (250, 10, 10), 5: (10, 250, 10), 9: (10, 10, 250)}
LABEL_OF = {2: 0, 5: 1, 9: 2}


def centre_colour(x: torch.Tensor) -> np.ndarray:
    """Un-normalised RGB of the centre pixel of a [3, H, W] normalised tensor."""
    return x[:, x.shape[1] // 2, x.shape[2] // 2].numpy() * STD + MEAN


@pytest.fixture(scope="module", params=[2017, 2018])
def inat_root(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"inat{request.param}")
    write_inat(root, request.param, TRAIN, VAL, COLOURS)
    return request.param, root


def test_inat_labels_counts_and_images_end_to_end(inat_root):
    year, root = inat_root
    cfg = dict(name=f"inat{year}", root=str(root), loader="torch", num_workers=0, input_size=224)
    bundle = build_data(cfg, seed=0, device="cpu", batch_size=4, eval_batch_size=3)
    assert bundle.num_classes == 3 and bundle.in_channels == 3 and bundle.input_size == 224
    assert bundle.samples_per_class == [TRAIN[2], TRAIN[5], TRAIN[9]]
    assert bundle.class_names == ["Species 2", "Species 5", "Species 9"]
    image_dir = {2017: "train_val_images", 2018: "train_val2018"}[year]
    ds = INaturalist(root, f"inat{year}", "val")
    assert all(f.startswith(f"{image_dir}/") for f in ds.files)
    for loader, expected in ((bundle.train, TRAIN), (bundle.test, VAL)):
        ys = []
        for x, y in loader:
            assert x.shape[1:] == (3, 224, 224) and x.dtype == torch.float32
            for xi, yi in zip(x, y.tolist()):
                # every image is its category's solid colour: the label really is that image's class
                colour = COLOURS[[k for k, v in LABEL_OF.items() if v == yi][0]]
                np.testing.assert_allclose(centre_colour(xi), colour, atol=8)
            ys += y.tolist()
        assert sorted(ys) == sorted(LABEL_OF[k] for k, n in expected.items() for _ in range(n))


def test_inat_val_uses_the_train_label_space(tmp_path):
    write_inat(tmp_path, 2018, TRAIN, VAL, COLOURS)
    train, val, counts, _ = inaturalist_splits(tmp_path, "inat2018")
    assert counts == [4, 2, 1]
    assert sorted(val.labels.tolist()) == [0, 1, 2, 2]
    doc = json.loads((tmp_path / "val2018.json").read_text())
    doc["annotations"][0]["category_id"] = 77
    (tmp_path / "val2018.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="has category_id 77, not among the 3 categories of train2018.json"):
        inaturalist_splits(tmp_path, "inat2018")


def test_inat_missing_data_messages(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"root folder {tmp_path / 'nope'} does not exist.*github.com/visipedia/inat_comp"):
        INaturalist(tmp_path / "nope", "inat2017")
    with pytest.raises(FileNotFoundError) as e:
        INaturalist(tmp_path, "inat2017", "train")
    assert str(tmp_path / "train2017.json") in str(e.value) and "https://github.com/visipedia/inat_comp" in str(e.value)
    (tmp_path / "train2017.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read .*train2017.json as JSON"):
        INaturalist(tmp_path, "inat2017", "train")
    (tmp_path / "train2017.json").write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match=r"missing list\(s\) \['annotations', 'categories'\]"):
        INaturalist(tmp_path, "inat2017", "train")
    with pytest.raises(ValueError, match="unknown iNaturalist version 'inat2019'; choose one of inat2017, inat2018"):
        INaturalist(tmp_path, "inat2019")


def test_inat_category_count_is_logged_not_fatal(tmp_path, caplog):
    write_inat(tmp_path, 2017, TRAIN, VAL, COLOURS)
    with caplog.at_level("WARNING"):
        INaturalist(tmp_path, "inat2017", "train")
    assert "3 categories in train2017.json (the official release has 5089)" in caplog.text


WNIDS = {"n01440764": (200, 30, 30), "n01443537": (30, 200, 30)}


def test_ilsvrc_class_folders_end_to_end(tmp_path):
    write_imagefolder(tmp_path, "train", {"n01440764": 3, "n01443537": 1}, WNIDS)
    write_imagefolder(tmp_path, "val", {"n01440764": 1, "n01443537": 2}, WNIDS)
    cfg = dict(name="ilsvrc2012", root=str(tmp_path), input_size=224, num_workers=0)
    bundle = build_data(cfg, seed=1, device="cpu", batch_size=2, eval_batch_size=2)
    assert bundle.class_names == sorted(WNIDS) and bundle.samples_per_class == [3, 1]
    ys = []
    for x, y in bundle.test:
        for xi, yi in zip(x, y.tolist()):
            np.testing.assert_allclose(centre_colour(xi), WNIDS[bundle.class_names[yi]], atol=8)
        ys += y.tolist()
    assert sorted(ys) == [0, 1, 1]
    assert sum(len(y) for _, y in bundle.train) == 4


def test_ilsvrc_missing_and_mismatched_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"ILSVRC 2012 train folder not found at {tmp_path / 'train'}.*valprep"):
        ilsvrc2012_splits(tmp_path)
    write_imagefolder(tmp_path, "train", {"n01440764": 1, "n01443537": 1}, WNIDS)
    with pytest.raises(FileNotFoundError, match="ILSVRC 2012 val folder not found"):
        ilsvrc2012_splits(tmp_path)
    (tmp_path / "val").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no class folders with images"):
        ilsvrc2012_splits(tmp_path)
    write_imagefolder(tmp_path, "val", {"n01440764": 1}, WNIDS)
    with pytest.raises(ValueError, match=r"train and val class folders differ .*\['n01443537'\]"):
        ilsvrc2012_splits(tmp_path)


def v1_reference(train: bool, size: int, pad: int):
    norm = [T.ToTensor(), T.Normalize(MEAN / 255, STD / 255)]
    bicubic = T.InterpolationMode.BICUBIC
    if train:
        return T.Compose([T.RandomResizedCrop(size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), interpolation=bicubic), T.RandomHorizontalFlip()] + norm)
    return T.Compose([T.Resize(size + pad, interpolation=bicubic), T.CenterCrop(size)] + norm)


@pytest.mark.parametrize("size,pad", [(224, 32), (320, 46)])
def test_inception_transforms_match_torchvision_v1(tmp_path, size, pad):
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (61, 83, 3), dtype=np.uint8))
    for train in (False, True):
        for seed in range(3 if train else 1):
            torch.manual_seed(seed)
            ours = inception_transform(train, size)(img)
            torch.manual_seed(seed)
            ref = v1_reference(train, size, pad)(img)
            assert ours.shape == (3, size, size) and type(ours) is torch.Tensor
            torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_input_size_is_224_or_320(tmp_path):
    with pytest.raises(ValueError, match="input_size must be one of 224, 320 for the large-scale datasets; got 256"):
        inception_transform(True, 256)
    write_jpeg(tmp_path / "train" / "n1" / "a.JPEG", (1, 2, 3))
    with pytest.raises(ValueError, match="input_size must be one of 224, 320"):
        build_data(dict(name="ilsvrc2012", root=str(tmp_path), input_size=32), seed=0, device="cpu", batch_size=1, eval_batch_size=1)
