"""wandb problems never stop training (they become one warning and wandb is switched off); what a run logs and
its group; a killed and resumed run is one wandb run holding every epoch once (offline, read back from its files)."""

import json
import logging
import signal
import statistics

import pytest

from cbl.reporting.runs import find_runs
from cbl.reporting.wandb_offline import offline_runs
from cbl.training.checkpoint import load_latest_checkpoint
from cbl.training.run import train
from cbl.training.run_files import run_fields
from cbl.training.tracking import (MAX_CLASS_SERIES, ROWS_FILE, Classes, Tracker, epoch_payload, epoch_row,
                                   final_payload, read_rows, run_tags, wandb_group)
from tests.train_utils import compose_cfg, demo_overrides, read_history, read_metrics, run_cli

wandb = pytest.importorskip("wandb")


def make(tmp_path, **kw):
    args = dict(mode="offline", project="cbl-test", run_dir=tmp_path, name="t", group="g", config={"beta": 0.9})
    args.update(kw)
    return Tracker(**args)


def test_offline_run_leaves_its_files(tmp_path):
    t = make(tmp_path)
    assert t.active and t.run_id
    t.log({"loss": 1.0}, step=1)
    t.summary({"top1_err": 12.5})
    t.finish(0)
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].rglob("*.wandb"))


def test_disabled_does_nothing(tmp_path):
    t = make(tmp_path, mode="disabled")
    assert not t.active
    t.log({"x": 1}, step=1)
    t.finish(0)
    assert not (tmp_path / "wandb").exists()


def test_bad_mode():
    with pytest.raises(ValueError, match="wandb.mode must be one of online, offline, disabled; got 'cloud'"):
        Tracker(mode="cloud", project="p", run_dir=".", name="n")


def test_no_network_and_bad_key_is_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    with caplog.at_level(logging.WARNING):
        t = make(tmp_path, mode="online", init_timeout=3)
    assert not t.active
    assert "wandb init failed" in caplog.text
    t.log({"loss": 1.0}, step=1)  # no-ops, no exception
    t.finish(1)


def test_unwritable_wandb_dir_is_a_warning(tmp_path, caplog):
    (tmp_path / "wandb").write_text("a file where wandb wants its folder")  # mkdir fails, like a full disk
    with caplog.at_level(logging.WARNING):
        t = make(tmp_path)
    assert not t.active and "wandb init failed" in caplog.text


def test_failure_while_logging_switches_wandb_off(tmp_path, caplog):
    t = make(tmp_path)

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    t.run.log = disk_full
    run = t.run
    with caplog.at_level(logging.WARNING):
        t.log({"loss": 1.0}, step=1)
        t.log({"loss": 2.0}, step=2)
    assert not t.active
    assert caplog.text.count("No space left on device") == 1
    run.finish()


# ----------------------------------------------------------------------------- what a run logs, and its group
#: training images per class -> many (> 100) / medium (20..100) / few (< 20), as documented in cbl/evaluation/metrics.py
THREE = Classes(names=["head", "aquarium fish", "tail/x"], counts=[150, 50, 10])


def record(epoch, loss=None, top1=None):
    return {"epoch": epoch, "lr": 0.1, "train_loss": 1.0 / epoch if loss is None else loss,
            "top1_err": 50.0 - epoch if top1 is None else top1, "top5_err": 5.0, "seconds": 0.5}


def test_epoch_payload_has_shot_and_per_class_accuracy():
    row = epoch_row(record(2), {"per_class_acc": [90.0, 40.0, 5.0]})
    p = epoch_payload(row, THREE)
    assert p == {"epoch": 2, "lr": 0.1, "train_loss": 0.5, "top1_err": 48.0, "top5_err": 5.0, "seconds": 0.5,
                 "shot_acc/many": 90.0, "shot_acc/medium": 40.0, "shot_acc/few": 5.0,
                 "class_acc/0_head": 90.0, "class_acc/1_aquarium_fish": 40.0, "class_acc/2_tail_x": 5.0}
    # an epoch without evaluation logs lr and loss only
    assert epoch_payload(epoch_row({**record(3), "top1_err": None, "top5_err": None}, None), THREE) == \
           {"epoch": 3, "lr": 0.1, "train_loss": 1 / 3, "seconds": 0.5}


def test_per_class_keys_sort_by_class_and_many_classes_become_a_histogram():
    hundred = Classes([f"c{i}" for i in range(100)], [200 - i for i in range(100)])
    keys = [k for k in epoch_payload(epoch_row(record(1), {"per_class_acc": [50.0] * 100}), hundred)
            if k.startswith("class_acc/")]
    assert keys[0] == "class_acc/00_c0" and keys[-1] == "class_acc/99_c99" and keys == sorted(keys)
    n = MAX_CLASS_SERIES + 1
    many = Classes([str(i) for i in range(n)], [500] * n)
    p = epoch_payload(epoch_row(record(1), {"per_class_acc": [10.0] * (n - 1) + [None]}), many)
    assert not any(k.startswith("class_acc/") for k in p) and isinstance(p["class_acc_hist"], wandb.Histogram)
    assert p["shot_acc/many"] == 10.0 and "shot_acc/few" not in p  # no few-shot class: nothing logged


def test_final_per_class_table_and_charts():
    classes = Classes(["a", "b", "c", "d"], [101, 100, 20, 19])  # the boundaries of the shot groups
    final = {"per_class_acc": [80.0, 60.0, None, 10.0], "samples_per_class": [101, 100, 20, 19]}
    out = final_payload(final, classes)
    table = out["per_class"]
    assert table.columns == ["class_index", "class", "train_count", "shot", "accuracy"]
    assert table.data == [[0, "a", 101, "many", 80.0], [1, "b", 100, "medium", 60.0], [3, "d", 19, "few", 10.0]]
    assert type(out["per_class_acc_bar"]).__name__ == type(out["per_class_acc_vs_count"]).__name__ == "CustomChart"


def fields_of(*overrides):
    over = ["dataset=cifar10_lt", "dataset.imbalance_factor=100", "loss=focal", "loss.beta=0.999", "loss.gamma=0.5",
            *overrides]
    return {**run_fields(compose_cfg(*over), num_classes=10), "data_source": "official"}


def test_group_is_the_configuration_without_the_seed():
    base = fields_of()
    group = wandb_group(base)
    assert group.startswith("cifar10_lt-if100-resnet32-focal-b0.999-g0.5-fp32-e200-") and len(group) <= 128
    assert wandb_group(fields_of("seed=3")) == group  # seeds are averaged
    for change in (["loss.beta=0.99"], ["loss.gamma=2.0"], ["dataset.imbalance_factor=50"], ["precision=bf16"],
                   ["optim.epochs=100"], ["sampler=class_balanced"], ["model=resnet50"]):
        assert wandb_group(fields_of(*change)) != group, change
    assert wandb_group({**base, "data_source": "npz:x.npz@sha256:0123"}) != group  # other images: another group
    assert run_tags(base, ["mine", "focal"]) == ["cifar10_lt", "if100", "resnet32", "focal", "mine"]


# ----------------------------------------------------------------------------- resume: one run, every epoch once
def test_replay_takes_checkpointed_epochs_from_the_rows_file_and_supersedes_the_old_offline_run(tmp_path):
    first = make(tmp_path, classes=THREE)
    run_id = first.run_id
    for e in (1, 2, 3):  # the first attempt logs epochs 1-3 ...
        row = epoch_row(record(e), {"per_class_acc": [90.0, 40.0 + e, 5.0]})
        first.keep(row)
        first.log_epoch(row)
    first.finish(1)
    # ... but the resumed one restarts from a checkpoint of epoch 2 whose epoch 2 differs from the rows file's
    # (an older checkpoint after the newest was lost), and whose epoch 3 is to be retrained
    history = [record(1), record(2, loss=0.123)]
    second = make(tmp_path, classes=THREE, run_id=run_id, history=history)
    assert second.run_id == run_id
    assert [r["epoch"] for r in read_rows(tmp_path / "wandb" / ROWS_FILE)] == [1, 2]  # epoch 3 dropped
    new = epoch_row(record(3, top1=11.0), {"per_class_acc": [99.0, 77.0, 66.0]})
    second.keep(new)
    second.log_epoch(new)
    second.finish(0)

    (run,) = offline_runs(tmp_path / "wandb", wait_s=10)  # the first attempt's folder is gone
    assert run.run_id == run_id and run.steps == [1, 2, 3] and run.exit_code == 0
    one, two, three = run.history
    assert one["class_acc/1_aquarium_fish"] == 41.0 and one["shot_acc/medium"] == 41.0  # from the rows file
    assert two["train_loss"] == 0.123 and not any(k.startswith(("class_acc", "shot_acc")) for k in two)
    assert three["top1_err"] == 11.0 and three["class_acc/0_head"] == 99.0 and three["shot_acc/few"] == 66.0
    assert [r["epoch"] for r in read_rows(tmp_path / "wandb" / ROWS_FILE)] == [1, 2, 3]


def test_online_resume_sends_only_the_epochs_the_server_lacks(tmp_path, monkeypatch):
    inits, logged = [], []

    class FakeRun:
        id = "abcd1234"
        resumed, starting_step = True, 3  # the server holds epochs 1 and 2
        dir = str(tmp_path / "wandb" / "run-x-abcd1234" / "files")
        summary: dict = {}

        def log(self, data, step=None):
            logged.append(step)

        def finish(self, exit_code=0):
            pass

    monkeypatch.setattr(wandb, "init", lambda **kw: inits.append(kw) or FakeRun())
    history = [record(e) for e in (1, 2, 3, 4)]
    t = make(tmp_path, mode="online", run_id="abcd1234", history=history, classes=THREE)
    assert inits[-1]["id"] == "abcd1234" and inits[-1]["resume"] == "allow"
    assert logged == [3, 4]
    t.log_epoch(epoch_row(record(5), None))
    assert logged == [3, 4, 5]
    FakeRun.resumed, FakeRun.starting_step = False, 0  # the server lacks the run: it gets every epoch
    logged.clear()
    make(tmp_path, mode="online", run_id="abcd1234", history=history)
    assert logged == [1, 2, 3, 4]
    make(tmp_path, mode="offline")
    assert inits[-1]["resume"] is None and len(inits[-1]["id"]) == 8  # offline: never resume=, a new id


def test_an_id_survives_a_failed_init(tmp_path):
    (tmp_path / "wandb").write_text("not a folder")
    t = make(tmp_path, run_id="keepme12")
    assert not t.active and t.run_id == "keepme12"  # the checkpoint hands it on to the next attempt


def test_killed_and_resumed_run_is_one_wandb_run_with_every_epoch_once(tmp_path, monkeypatch):
    """A real SIGKILL after epoch 2 of 3 (wandb offline), then resume=true: one offline run, one id, epochs 1-3
    once each, with the keys the dashboard reads and the numbers of metrics.jsonl / metrics.json."""
    # the killed process must not share this process's wandb service (inherited through WANDB_SERVICE), as a
    # separately launched run does not: a run left open in a shared service keeps its id "in use"
    monkeypatch.delenv("WANDB_SERVICE", raising=False)
    over = [*demo_overrides(epochs=3), "device=cpu", "deterministic=true", "progress=false", "wandb.mode=offline",
            "loss=focal", "loss.beta=0.999"]
    killed = run_cli([*over, f"output_dir={tmp_path / 'out'}"], cwd=tmp_path, env={"CBL_KILL_AT": "epoch:2"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (found,) = find_runs(tmp_path / "out")
    run_dir = found.path
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1  # the killed attempt's
    kept = {r["epoch"]: r for r in read_rows(run_dir / "wandb" / ROWS_FILE)}
    assert sorted(kept) == [1, 2]
    wandb_id = load_latest_checkpoint(run_dir)["wandb_id"]

    train(compose_cfg(*over, "resume=true"), run_dir)  # in-process: one interpreter start less

    (run,) = offline_runs(run_dir / "wandb", wait_s=10)
    assert run.run_id == wandb_id and run.exit_code == 0
    assert run.steps == [1, 2, 3]  # every epoch once
    metrics, history = read_metrics(run_dir), read_history(run_dir)
    counts = metrics["samples_per_class"]
    class_keys = [f"class_acc/{i}_{i}" for i in range(10)]  # the digits' class names are "0" ... "9"
    for row, rec in zip(run.history, history):
        assert row["epoch"] == rec["epoch"] == row["_step"]
        for key in ("lr", "train_loss", "top1_err", "top5_err"):
            assert row[key] == rec[key], (rec["epoch"], key)
        acc = [row[k] for k in class_keys]
        if rec["epoch"] in kept:  # replayed from the rows file the killed process wrote
            assert acc == kept[rec["epoch"]]["per_class_acc"]
        for shot, members in (("many", lambda n: n > 100), ("medium", lambda n: 20 <= n <= 100),
                              ("few", lambda n: n < 20)):  # fmt: skip
            group = [a for a, n in zip(acc, counts) if members(n)]
            assert (row.get(f"shot_acc/{shot}") is None) == (not group)
            if group:
                assert row[f"shot_acc/{shot}"] == pytest.approx(statistics.mean(group))
    assert [run.history[-1][k] for k in class_keys] == metrics["per_class_acc"]
    for key in ("top1_err", "top5_err", "best_top1_err", "best_epoch", "epochs_completed"):
        assert run.summary[key] == metrics[key], key
    assert {k: run.summary[f"shot_acc/{k}"] for k in metrics["shot_acc"] if metrics["shot_acc"][k] is not None} == \
           {k: v for k, v in metrics["shot_acc"].items() if v is not None}
    # the grouping fields at the top level of the config, and the group shared by the seeds
    for key in ("dataset", "imbalance_factor", "model", "loss", "method", "beta", "gamma", "seed", "precision",
                "data_source"):
        assert run.config[key] == metrics["run"][key], key
    assert run.config["data_source"] is not None
    assert run.group == run.config["group"] == wandb_group(metrics["run"])
    assert run.group.startswith("digits_lt-if10-small_cnn-focal-b0.999-g1-fp32-e3-")
    assert run.job_type == "focal" and {"digits_lt", "if10"} <= set(run.tags)
    # the per-class table the bar chart draws: training count and accuracy of every class
    table = json.loads((run.path.parent / "files" / run.history[-1]["per_class/path"]).read_text())
    assert [r[2] for r in table["data"]] == counts and [r[4] for r in table["data"]] == metrics["per_class_acc"]


def test_an_offline_run_looks_up_no_server_not_even_when_the_process_exits(tmp_path):
    """wandb's telemetry follows the process's settings, not init's mode; an offline run must not touch the network
    (a guarded getaddrinfo records every host looked up, up to the last atexit hook)."""
    import os
    import subprocess
    import sys

    from tests.train_utils import ROOT

    code = ("import atexit, json, socket, sys\n"
            "looked, real = [], socket.getaddrinfo\n"
            "socket.getaddrinfo = lambda host, *a, **k: (looked.append(str(host)), real(host, *a, **k))[1]\n"
            "atexit.register(lambda: print(json.dumps(sorted(set(looked))), flush=True))  # first in, last to run\n"
            "from cbl.training.tracking import Tracker\n"
            f"t = Tracker(mode='offline', project='p', entity=None, run_dir={str(tmp_path)!r}, name='n', group='g',\n"
            "            job_type='j', tags=[], config={'a': 1})\n"
            "assert t.active\n"
            "t.log({'x': 1.0})\n"
            "t.finish(0)\n")
    env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**env, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    looked = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [h for h in looked if h not in ("localhost", "127.0.0.1", "::1")] == []
