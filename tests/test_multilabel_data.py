"""Multi-label data (cbl/data/multilabel.py, mlt_benchmarks.py, multilabel_digits.py): the list format and its
errors, the COCO-MLT / VOC-MLT release format on small fakes, class counts from the training split, the loaders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cbl.data import build_data
from cbl.data.mlt_benchmarks import VOC_CLASSES, mlt_splits
from cbl.data.multilabel import multilabel_file_splits, read_multilabel_list
from cbl.data.multilabel_digits import load_digits_mlt
from cbl.data.tensor_loader import TensorLoader
from cbl.losses import samples_per_class
from tests.multilabel_fakes import write_coco_mlt, write_list, write_voc_mlt

BUILD = dict(seed=0, device="cpu", batch_size=4, eval_batch_size=3)


def one_line(error_type, make, match):
    with pytest.raises(error_type, match=match) as info:
        make()
    assert "\n" not in str(info.value)
    return str(info.value)


def listfile(root, train_rows, val_rows, **extra):
    write_list(root, "train.txt", train_rows)
    write_list(root, "val.txt", val_rows)
    return {"name": "multilabel_listfile", "root": str(root), "train_list": "train.txt", "val_list": "val.txt",
            "input_size": 16, "num_workers": 0, "persistent_workers": False, **extra}


def test_list_lines_parse_into_label_sets(tmp_path):
    path = tmp_path / "l.txt"
    path.write_text("a/1.jpg 3,0,17\n\n  b/2.jpg 5  \nc/3.jpg\nd with space/4.jpg 2\n")
    parsed = read_multilabel_list(path)
    assert parsed.files == ["a/1.jpg", "b/2.jpg", "c/3.jpg", "d with space/4.jpg"]
    assert parsed.labels == [(3, 0, 17), (5,), (), (2,)]
    assert parsed.lines == [1, 3, 4, 5]


@pytest.mark.parametrize("line, match", [
    ("a.jpg 1,x", r"l.txt:2: expected '<relative image path> <label>,<label>,...' with integer labels >= 0"),
    ("a.jpg -1", r"l.txt:2: expected"),
    ("a.jpg 1,,2", r"l.txt:2: expected"),
    ("a.jpg 2,1,2", r"l.txt:2: label 2 is repeated"),
    ("my image.jpg", r"l.txt:2: expected"),  # a path with a space and no label field
])
def test_malformed_lines_are_one_line_errors_naming_file_and_line(tmp_path, line, match):
    path = tmp_path / "l.txt"
    path.write_text(f"ok.jpg 0\n{line}\n")
    one_line(ValueError, lambda: read_multilabel_list(path), match)


def test_list_errors_out_of_range_unlabeled_missing_image_and_untrained_class(tmp_path):
    rows = [("i/0.png", "0,1"), ("i/1.png", "1"), ("i/2.png", "2,0")]
    one_line(ValueError, lambda: multilabel_file_splits("multilabel_listfile", listfile(tmp_path / "a", rows, [("v/0.png", "3")])),
             r"val.txt:1: label 3 is out of range: the classes are 0..2")
    one_line(ValueError, lambda: multilabel_file_splits("multilabel_listfile", listfile(tmp_path / "b", rows, [("v/0.png", "1")], num_classes=2)),
             r"train.txt:3: label 2 is out of range: the classes are 0..1")
    unlabeled = rows + [("i/3.png", "")]
    one_line(ValueError, lambda: multilabel_file_splits("multilabel_listfile", listfile(tmp_path / "c", unlabeled, [("v/0.png", "1")])),
             r"train.txt:4: i/3.png has no labels; .* set dataset.allow_unlabeled=true")
    cfg = listfile(tmp_path / "d", unlabeled, [("v/0.png", ""), ("v/1.png", "1")], allow_unlabeled=True)
    splits = multilabel_file_splits("multilabel_listfile", cfg)
    assert splits.train_targets[3].tolist() == [0, 0, 0] and splits.test_targets.tolist() == [[0, 0, 0], [0, 1, 0]]
    cfg = listfile(tmp_path / "g", unlabeled, [("v/0.png", "")], allow_unlabeled=True)  # no class has a test positive
    one_line(ValueError, lambda: multilabel_file_splits("multilabel_listfile", cfg),
             r"val.txt: no test image has a label, so no class has an average precision \(mAP is undefined\)")
    cfg = listfile(tmp_path / "e", rows, [("v/0.png", "1")])
    (tmp_path / "e" / "v" / "0.png").unlink()
    one_line(FileNotFoundError, lambda: multilabel_file_splits("multilabel_listfile", cfg),
             r"val.txt names 1 image\(s\) not found under .*e \(first: v/0.png\)")
    one_line(ValueError, lambda: multilabel_file_splits("multilabel_listfile", listfile(tmp_path / "f", rows, [("v/0.png", "1")], num_classes=4)),
             r"classes \[3\] \(1 in all\) have no positive training image")
    one_line(FileNotFoundError, lambda: read_multilabel_list(tmp_path / "nope.txt"), "multi-label image list .*nope.txt not found")


def test_listfile_loaders_yield_multi_hot_rows_and_count_training_positives(tmp_path):
    rows = [("i/0.png", "0,1"), ("i/1.png", "1"), ("i/2.png", "2,0"), ("i/3.png", "1,2"), ("i/4.png", "1")]
    data = build_data(listfile(tmp_path, rows, [("v/0.png", "0"), ("v/1.png", "1,2")]), **BUILD)
    assert data.multilabel and data.num_classes == 3 and data.in_channels == 3
    assert data.samples_per_class == [2, 4, 2]
    seen = torch.cat([y for _, y in data.train])
    assert seen.shape == (5, 3) and seen.dtype == torch.float32
    assert sorted(map(tuple, seen.int().tolist())) == sorted([(1, 1, 0), (0, 1, 0), (1, 0, 1), (0, 1, 1), (0, 1, 0)])
    x, y = next(iter(data.test))
    assert x.shape == (2, 3, 16, 16) and y.tolist() == [[1, 0, 0], [0, 1, 1]]
    one_line(ValueError, lambda: build_data(listfile(tmp_path, rows, [("v/0.png", "0")]), sampler="class_balanced", **BUILD),
             r"sampler='class_balanced' is not supported for the multi-label dataset multilabel_listfile")


def test_coco_mlt_release_format(tmp_path):
    expected = write_coco_mlt(tmp_path / "coco", tmp_path / "appendix")
    train, test, names, files = mlt_splits("coco_mlt", tmp_path / "coco", tmp_path / "appendix")
    assert names == expected["names"]  # ascending category id, whatever order the file lists them in
    assert train.targets.tolist() == expected["train"] and test.targets.tolist() == expected["test"]
    assert train.files == [f"train2017/{i:012d}.jpg" for i in (9, 25, 30)]
    # counts: positives over the split's images only (image 42 is annotated but not in the long-tailed list)
    assert samples_per_class(torch.as_tensor(train.targets, dtype=torch.float32), 3).tolist() == expected["counts"]
    cfg = {"name": "coco_mlt", "root": str(tmp_path / "coco"), "lists_dir": str(tmp_path / "appendix"),
           "allow_unlabeled": True, "input_size": 16, "num_workers": 0, "persistent_workers": False}
    data = build_data(cfg, **BUILD)
    assert data.samples_per_class == expected["counts"] and data.class_names == expected["names"]
    assert data.source.id.startswith("files:coco_mlt@sha256:")  # not the release's sizes: never "official"
    # the release's numbers of (train, test) images and classes are recorded as the official split
    from cbl.data.provenance import list_file_source
    lists = sorted(p for p in (tmp_path / "appendix").rglob("*") if p.is_file())
    assert list_file_source("coco_mlt", lists, (1909, 5000, 80)).official
    assert list_file_source("voc_mlt", lists, (1142, 4952, 20)).official
    assert not list_file_source("voc_mlt", lists, (1142, 4952, 21)).official
    one_line(ValueError, lambda: multilabel_file_splits("coco_mlt", {**cfg, "allow_unlabeled": False}),
             r"instances_val2017.json: val2017/000000000011.jpg \(1 images in all\) has no labels")


def test_voc_mlt_release_format(tmp_path):
    write_voc_mlt(tmp_path / "VOCdevkit", tmp_path / "appendix")
    train, test, names, _ = mlt_splits("voc_mlt", tmp_path / "VOCdevkit", tmp_path / "appendix")
    assert names == list(VOC_CLASSES) and len(names) == 20
    idx = {n: k for k, n in enumerate(VOC_CLASSES)}
    want = np.zeros((3, 20), dtype=int)
    want[0, [idx["dog"], idx["person"]]] = 1  # the difficult person counts, as in the authors' loader
    want[1, idx["person"]] = 1
    want[2, idx["aeroplane"]] = 1
    assert train.targets.tolist() == want.tolist()
    assert test.files == ["VOC2007/JPEGImages/000001.jpg", "VOC2007/JPEGImages/000004.jpg"]
    assert test.targets[1, [idx["tvmonitor"], idx["person"]]].tolist() == [1, 1] and test.targets[1].sum() == 2
    write_voc_mlt(tmp_path / "bad", tmp_path / "appendix2", {"000001": [("unicorn", 0)]})
    one_line(ValueError, lambda: mlt_splits("voc_mlt", tmp_path / "bad", tmp_path / "appendix2"),
             r"000001.xml: object 'unicorn' is not a VOC class")


def test_missing_release_files_name_the_expected_path_and_where_to_get_them(tmp_path):
    for name, split in (("coco_mlt", "coco/longtail2017/img_id.pkl"), ("voc_mlt", "VOCdevkit/longtail2012/img_id.txt")):
        cfg = {"name": name, "root": str(tmp_path / "data"), "lists_dir": str(tmp_path / "appendix"), "input_size": 16}
        message = one_line(FileNotFoundError, lambda: build_data(cfg, **BUILD), f"split file .*{split} not found")
        assert "github.com/wutong16/DistributionBalancedLoss" in message
    write_coco_mlt(tmp_path / "coco", tmp_path / "appendix")
    (tmp_path / "coco" / "annotations" / "instances_val2017.json").unlink()
    one_line(FileNotFoundError, lambda: mlt_splits("coco_mlt", tmp_path / "coco", tmp_path / "appendix"),
             r"COCO-MLT needs .*instances_val2017.json: dataset.root must be a COCO 2017 folder .*cocodataset.org")
    write_voc_mlt(tmp_path / "voc", tmp_path / "appendix")
    (tmp_path / "voc" / "VOC2007" / "ImageSets" / "Main" / "test.txt").unlink()
    one_line(FileNotFoundError, lambda: mlt_splits("voc_mlt", tmp_path / "voc", tmp_path / "appendix"),
             r"VOC-MLT needs .*test.txt: dataset.root must be a VOCdevkit folder")


def test_digits_mlt_is_deterministic_multi_label_and_long_tailed():
    a, b = load_digits_mlt(subset_seed=0), load_digits_mlt(subset_seed=0)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.t_train, b.t_train)
    assert not np.array_equal(load_digits_mlt(subset_seed=1).t_train, a.t_train)
    per_image = a.t_train.sum(axis=1)
    assert per_image.min() == 1 and per_image.max() == 3 and (per_image > 1).mean() > 0.4
    counts = a.t_train.sum(axis=0)
    assert counts[0] >= 100 and 20 <= counts[5] < 100 and counts[9] < 20  # head, medium and tail digits
    assert list(counts) == sorted(counts, reverse=True)
    assert a.t_test.sum(axis=0).min() >= 40  # every digit has test positives
    # an empty slot is all zeros, and each label's digit fills one slot
    slots = a.x_train.reshape(-1, 2, 8, 2, 8).transpose(0, 1, 3, 2, 4).reshape(len(a.x_train), 4, 64)
    assert np.array_equal((slots.max(axis=2) > 0).sum(axis=1), per_image)


def test_tensor_loader_takes_multi_hot_rows():
    x = np.zeros((5, 4, 4, 1), dtype=np.uint8)
    t = np.array([[1, 0], [0, 1], [1, 1], [0, 1], [1, 0]], dtype=np.uint8)
    loader = TensorLoader(x, t, 2, train=True, pad=0, flip=False, seed=0)
    seen = torch.cat([y for _, y in loader])
    assert seen.dtype == torch.float32 and sorted(map(tuple, seen.int().tolist())) == sorted(map(tuple, t.tolist()))
    one_line(ValueError, lambda: TensorLoader(x, np.full((5, 2), 2), 2, train=True), r"labels must be 1-D integers or \[N, C\] 0/1 rows")
