"""The multi-label training path of `python -m cbl.train` (cbl/training/multilabel.py): a run on a tiny
multi-label list writes mAP to metrics.json and metrics.jsonl; the config checks and the single-label tools refuse
what they cannot do in one line; `make_table --table multilabel` tabulates runs; the offline demo."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cbl.training import config as cbl_config
from cbl.commands import make_table
from cbl.reporting.runs import find_runs
from cbl.reporting.tables import make_table as table_markdown
from cbl.training.multilabel import MultiLabelRefused, refuse_multilabel
from cbl.training.tracking import Classes, epoch_payload, final_summary
from tests.multilabel_fakes import write_list
from tests.train_utils import QUIET, ROOT, compose_cfg, read_history, read_metrics, run_cli


def tiny_list_overrides(root, epochs: int = 2) -> list[str]:
    rows = [(f"i/{k}.png", labels) for k, labels in enumerate(["0,1", "1", "1,2", "0", "1", "2,1", "1,0", "1"])]
    write_list(root, "train.txt", rows)
    write_list(root, "val.txt", [("v/0.png", "0"), ("v/1.png", "1,2"), ("v/2.png", "2"), ("v/3.png", "1")])
    return ["dataset=multilabel_listfile", f"dataset.root={root}", "dataset.train_list=train.txt",
            "dataset.val_list=val.txt", "dataset.input_size=16", "dataset.num_workers=0",
            "dataset.persistent_workers=false", "model=small_cnn", "optim=demo", f"optim.epochs={epochs}",
            "optim.batch_size=4", "optim.reference_batch=4", "optim.milestones=[]", "optim.factors=[]",
            "eval_batch_size=3"]


def test_a_multi_label_run_writes_map_per_evaluation_and_at_the_end(tmp_path):
    out = tmp_path / "out"
    args = [*tiny_list_overrides(tmp_path / "data"), *QUIET, "loss=focal", "loss.beta=0.999",
            "loss.multilabel_weighting=class", f"output_dir={out}", "name=ml"]
    result = run_cli(args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (run_dir,) = (out / "ml").iterdir()
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "finished" and metrics["task"] == "multilabel"
    assert metrics["samples_per_class"] == [3, 7, 2]  # positives per class over the training list
    assert len(metrics["per_class_ap"]) == 3 and all(0 < ap <= 100 for ap in metrics["per_class_ap"])
    assert metrics["map"] == pytest.approx(sum(metrics["per_class_ap"]) / 3)
    # 3, 7 and 2 training positives: all tail classes (n < 20)
    assert metrics["group_map"] == {"head": None, "medium": None, "tail": pytest.approx(metrics["map"])}
    assert metrics["run"]["multilabel_weighting"] == "class" and "top1_err" not in metrics
    history = read_history(run_dir)
    assert [h["epoch"] for h in history] == [1, 2] and history[-1]["map"] == pytest.approx(metrics["map"])
    assert all(h["top1_err"] is None and h["map_tail"] is not None for h in history)
    assert metrics["best_map"] == max(h["map"] for h in history)
    assert not list(run_dir.glob("predictions_*.npz"))
    # the tables: the multi-label one shows the run, a single-label one leaves it out with a note
    runs = find_runs(out)
    markdown, used = table_markdown("multilabel", runs)
    assert len(used) == 1 and "| multilabel_listfile | — | small_cnn | focal | 0.999 | 1 | per class |" in markdown
    with pytest.raises(Exception, match="no finished runs with a top1_err for table methods"):
        table_markdown("methods", runs)
    # a single-label tool refuses it in one line
    evaluate = subprocess.run([sys.executable, "-m", "cbl.evaluate", str(run_dir), "device=cpu"], cwd=tmp_path,
                              capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert evaluate.returncode != 0
    assert evaluate.stderr.strip().splitlines()[-1].endswith(
        "cbl-evaluate handles single-label runs; multilabel_listfile is multi-label (its runs report mAP in "
        "metrics.json; `make_table --table multilabel` tabulates them, docs/multilabel.md)")


@pytest.mark.parametrize("overrides, match", [
    (["loss=softmax"], "loss.name='softmax' is not allowed: dataset=digits_mlt is multi-label and softmax takes one label per image; use loss=sigmoid or loss=focal"),
    (["loss=ldam"], "loss.name='ldam' is not allowed: dataset=digits_mlt is multi-label"),
    (["sampler=class_balanced"], "sampler.name='class_balanced' is not allowed: dataset=digits_mlt is multi-label and class-aware sampling"),
    (["loss.multilabel_weighting=both"], "loss.multilabel_weighting='both' is not allowed: choose one of sample, class"),
    (["loss.multilabel_weighting=class", "loss.reduction=weighted_mean"], "loss.reduction='weighted_mean' is not allowed: multilabel_weighting=class weights classes"),
    (["dataset=cifar10_lt", "loss.multilabel_weighting=class"], "loss.multilabel_weighting='class' is not allowed: it weighs the labels of multi-label images; dataset=cifar10_lt has one label per image"),
    (["dataset=coco_mlt"], r"dataset.root=None is not allowed: dataset=coco_mlt needs dataset.root=<path> \(docs/multilabel.md\)"),
    (["dataset=voc_mlt", "dataset.root=/x"], r"dataset.lists_dir=None is not allowed: dataset=voc_mlt needs dataset.lists_dir=<path>"),
    (["dataset.order=authors_stream"], "dataset.order='authors_stream' is not allowed"),
])
def test_config_check_refuses_in_one_line(overrides, match):
    with pytest.raises(cbl_config.ConfigError, match=match) as info:
        cbl_config.check(compose_cfg("experiment=demo_multilabel", *overrides))
    assert "\n" not in str(info.value)


def test_the_demo_configs_compose_and_old_run_names_keep_their_hash():
    for weighting in ("sample", "class"):
        cbl_config.check(compose_cfg("experiment=demo_multilabel", "loss=focal", f"loss.multilabel_weighting={weighting}"))
    cbl_config.check(compose_cfg("dataset=coco_mlt", "dataset.root=/c", "dataset.lists_dir=/a", "model=resnet50",
                                 "loss=sigmoid"))
    # a key added at its default leaves the names of the runs recorded before it unchanged
    plain = cbl_config.OmegaConf.to_container(compose_cfg("loss=focal"), resolve=True)
    without = {**plain, "loss": {k: v for k, v in plain["loss"].items() if k != "multilabel_weighting"}}
    assert cbl_config.run_name(plain) == cbl_config.run_name(without)


def test_single_label_tools_refuse_multi_label_runs_in_one_line():
    refuse_multilabel("the model bank", "cifar10_lt", False)
    with pytest.raises(MultiLabelRefused, match=r"^the model bank handles single-label runs; coco_mlt is multi-label") as info:
        refuse_multilabel("the model bank", "coco_mlt", True)
    assert "\n" not in str(info.value)


def test_wandb_gets_map_per_class_ap_and_the_group_summary():
    row = {"epoch": 3, "lr": 0.1, "train_loss": 1.0, "top1_err": None, "map": 50.0, "map_head": 60.0,
           "map_medium": 40.0, "map_tail": None, "per_class_ap": [70.0, None, 30.0]}
    payload = epoch_payload(row, Classes(["a", "b", "c"], [200, 50, 5]))
    assert payload == {"epoch": 3, "lr": 0.1, "train_loss": 1.0, "map": 50.0, "map_head": 60.0, "map_medium": 40.0,
                       "class_ap/0_a": 70.0, "class_ap/2_c": 30.0}
    summary = final_summary({"task": "multilabel", "map": 50.0, "best_map": 55.0, "best_epoch": 2,
                             "group_map": {"head": 60.0, "medium": 40.0, "tail": None}, "epochs_completed": 3})
    assert summary == {"map": 50.0, "best_map": 55.0, "best_epoch": 2, "epochs_completed": 3,
                       "group_map/head": 60.0, "group_map/medium": 40.0}


def fake_run(path, *, loss, beta, weighting, map_, groups, seed, gamma=0.0, dataset="coco_mlt"):
    """A finished multi-label run folder as cbl.train writes it (metrics.json, metrics.jsonl)."""
    path.mkdir(parents=True)
    history = [{"epoch": 1, "lr": 0.1, "train_loss": 1.0, "top1_err": None, "map": map_ - 5,
                "map_head": groups[0] - 5, "map_medium": groups[1] - 5, "map_tail": groups[2] - 5},
               {"epoch": 2, "lr": 0.1, "train_loss": 0.9, "top1_err": None, "map": map_, "map_head": groups[0],
                "map_medium": groups[1], "map_tail": groups[2]}]
    (path / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    metrics = {"status": "finished", "error": None, "task": "multilabel", "map": map_, "best_map": map_, "best_epoch": 2,
               "group_map": dict(zip(("head", "medium", "tail"), groups)), "per_class_ap": [map_] * 4,
               "epochs": 2, "epochs_completed": 2, "samples_per_class": [500, 120, 40, 3], "seed": seed,
               "subset_seed": None, "finished_at": 1.0 + seed,
               "run": {"dataset": dataset, "imbalance_factor": None, "model": "resnet50", "input_size": 224,
                       "loss": loss, "beta": beta, "gamma": gamma, "method": loss, "sampler": "instance",
                       "multilabel_weighting": weighting, "epochs": 2, "precision": "fp32", "order": "shuffled",
                       "data_source": "official", "seed": seed}}
    (path / "metrics.json").write_text(json.dumps(metrics))


def test_make_table_multilabel_on_run_folders(tmp_path, capsys):
    runs = tmp_path / "runs"
    fake_run(runs / "a0", loss="sigmoid", beta=0.0, weighting="sample", map_=50.0, groups=(60.0, 50.0, 20.0), seed=0)
    fake_run(runs / "a1", loss="sigmoid", beta=0.0, weighting="sample", map_=52.0, groups=(62.0, 52.0, 22.0), seed=1)
    fake_run(runs / "b0", loss="sigmoid", beta=0.999, weighting="class", map_=55.0, groups=(58.0, 55.0, 40.0), seed=0)
    fake_run(runs / "c0", loss="focal", gamma=2.0, beta=0.999, weighting="sample", map_=54.0, groups=(59.0, 54.0, 35.0), seed=0)
    assert make_table.main(["--runs", str(runs), "--table", "multilabel"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("| coco_mlt")]
    assert lines == [
        "| coco_mlt | — | resnet50 | focal | 0.999 | 2 | per image | - | 54.00 | 59.00 | 54.00 | 35.00 | 1 (0) |",
        "| coco_mlt | — | resnet50 | sigmoid | - | - | - | - | 51.00 ± 1.41 | 61.00 ± 1.41 | 51.00 ± 1.41 | 21.00 ± 1.41 | 2 (0, 1) |",
        "| coco_mlt | — | resnet50 | sigmoid | 0.999 | - | per class | - | 55.00 | 58.00 | 55.00 | 40.00 | 1 (0) |",
    ]
    assert "coco_mlt: head 2 classes, medium 1 classes, tail 1 classes" in out
    assert make_table.main(["--runs", str(runs), "--table", "multilabel", "--metric", "best_top1_err"]) == 0
    assert "mAP (%) at the best epoch" in capsys.readouterr().out


@pytest.mark.slow
def test_make_demo_multilabel_writes_its_table(tmp_path):
    """`make demo-multilabel`, as the Makefile runs it (six runs of about 10 s each with one thread)."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = f"output_dir={tmp_path}"
    for extra in ([], ["loss.beta=0.999", "loss.multilabel_weighting=class"]):
        result = subprocess.run([sys.executable, "-m", "cbl.train", "sweep=demo_multilabel", out, *extra], cwd=tmp_path,
                                env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
    table = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_table.py"), "--runs",
                            str(tmp_path / "demo_multilabel"), "--table", "multilabel"], env=env, capture_output=True,
                           text=True)
    assert table.returncode == 0, table.stderr
    rows = [line for line in table.stdout.splitlines() if line.startswith("| digits_mlt")]
    assert len(rows) == 6 and sum("per class" in r for r in rows) == 2
    makefile = (ROOT / "Makefile").read_text()
    assert "$(PY) -m cbl.train sweep=demo_multilabel loss.beta=0.999 loss.multilabel_weighting=class $(ARGS)" in makefile


def test_the_figures_leave_multi_label_runs_out_with_a_note(tmp_path, capsys):
    from cbl.commands import plot

    fake_run(tmp_path / "runs" / "a0", loss="sigmoid", beta=0.999, weighting="class", map_=50.0, groups=(60.0, 50.0, 20.0), seed=0)
    plot.main(["--out", str(tmp_path / "figs"), "--runs", str(tmp_path / "runs"), "--recipe", "all", "--compare"])
    assert "1 multi-label run(s) left out: the figures are single-label" in capsys.readouterr().err
