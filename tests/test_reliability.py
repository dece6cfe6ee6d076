"""Long sweeps lose nothing: a run SIGKILLed at any moment and restarted with resume=true ends with exactly
the metrics of an uninterrupted run; corrupt checkpoints fall back to the previous good one; bad config
values, missing or corrupt data and wandb failures are reported in one line and never lose work."""

import json
import logging
import re
import signal
from pathlib import Path

import numpy as np
import pytest

from cbl.training import config as cbl_config
from cbl.data.cifar import read_cifar_npz
from cbl.reporting.runs import find_runs
from cbl.training.checkpoint import list_checkpoints
from cbl.training.run import Preempted, train
from tests.train_utils import (QUIET, ROOT, compose_cfg, demo_overrides, read_history, read_metrics, run_cli,
                               tiny_cifar_overrides)

COMPARED = ("top1_err", "top5_err", "best_top1_err", "best_epoch", "per_class_acc", "shot_acc", "samples_per_class")
EPOCHS = 4
CLI = [*demo_overrides(epochs=EPOCHS), "deterministic=true", "wandb.mode=disabled", "keep_checkpoints=3"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run every crashed-and-resumed run must reproduce exactly."""
    out = tmp_path_factory.mktemp("reference")
    proc = run_cli([*CLI, f"output_dir={out}"], cwd=out)
    assert proc.returncode == 0, proc.stderr
    (run,) = find_runs(out)
    return read_metrics(run.path), read_history(run.path)


def assert_same_run(run_dir, reference):
    ref_metrics, ref_history = reference
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "finished"
    for key in COMPARED:
        assert metrics[key] == ref_metrics[key], key
    history = read_history(run_dir)
    assert [(r["epoch"], r["train_loss"], r["top1_err"], r["lr"]) for r in history] == \
           [(r["epoch"], r["train_loss"], r["top1_err"], r["lr"]) for r in ref_history]


# Kill points: mid-epoch 1 (no checkpoint yet), mid-epoch 3, inside the atomic write of the second
# checkpoint (bytes on disk, not renamed), right after the third checkpoint (metrics.jsonl not yet
# rewritten), after epoch 3's metrics, and after the last checkpoint (metrics.json not yet written).
SLOW = pytest.mark.slow
KILL_POINTS = [pytest.param("step:3", marks=SLOW), "step:21", "write:5", pytest.param("checkpoint:3", marks=SLOW),
               pytest.param("epoch:3", marks=SLOW), "checkpoint:4"]


@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_sigkill_anywhere_then_resume_gives_the_uninterrupted_result(tmp_path, reference, kill_at):
    killed = run_cli([*CLI, f"output_dir={tmp_path}"], cwd=tmp_path, env={"CBL_KILL_AT": kill_at})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (run,) = find_runs(tmp_path)
    assert not (run.path / "metrics.json").exists()
    saved = list_checkpoints(run.path)
    resumed = run_cli([*CLI, f"output_dir={tmp_path}", "resume=true"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(run.path, reference)
    # it went on from the newest checkpoint, not from scratch (which, deterministic, would give the same numbers)
    log = (run.path / "train.log").read_text()
    assert (f"(epoch {saved[0][0]})" in log.split("resuming", 1)[-1].splitlines()[0]) if saved else "resuming" not in log
    assert not list((run.path / "checkpoints").glob(".*tmp*"))  # the orphan of a killed write is cleaned up


def test_killed_twice_and_a_corrupt_checkpoint_still_reproduce(tmp_path, reference):
    for kill_at in ("step:12", "step:9"):  # second life dies in epoch 3 (its 9th step after resuming at epoch 2)
        proc = run_cli([*CLI, f"output_dir={tmp_path}", "resume=true"], cwd=tmp_path, env={"CBL_KILL_AT": kill_at})
        assert proc.returncode == -signal.SIGKILL
    (run,) = find_runs(tmp_path)
    newest_epoch, newest = list_checkpoints(run.path)[0]
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated, as by a full disk or a bad copy
    resumed = run_cli([*CLI, f"output_dir={tmp_path}", "resume=true"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"checkpoint {newest} is unreadable" in resumed.stdout + resumed.stderr
    assert f"from {list_checkpoints(run.path)[0][1].parent}" not in resumed.stderr  # no traceback noise
    assert_same_run(run.path, reference)


def test_resnet32_with_batchnorm_resumes_exactly_in_process(tmp_path, caplog):
    """The CIFAR model (BN running statistics, momentum buffers, per-step warm-up) through a kill-free
    stop/resume in-process: 3 epochs straight vs 2 + 1."""
    over = [*tiny_cifar_overrides(tmp_path / "data", epochs=3), *QUIET, "loss=focal", "loss.beta=0.99",
            "keep_checkpoints=3", "optim.warmup_epochs=2"]
    full = train(compose_cfg(*over), tmp_path / "full")
    part = tmp_path / "part"
    train(compose_cfg(*over), part)
    for epoch, path in list_checkpoints(part):
        if epoch == 3:
            path.unlink()
    (part / "metrics.json").unlink()
    with caplog.at_level(logging.INFO):
        resumed = train(compose_cfg(*over, "resume=true"), part)
    assert any("resuming" in m and m.endswith("(epoch 2)") for m in caplog.messages), caplog.messages
    for key in COMPARED:
        assert resumed[key] == full[key], key


# ----------------------------------------------------------------------------- config validation
BAD_VALUES = [
    (["loss.beta=-0.1"], "loss.beta=-0.1 is not allowed: beta must be a number in [0, 1)"),
    (["loss.beta=1.0"], "loss.beta=1.0 is not allowed: beta must be a number in [0, 1)"),
    (["loss=focal", "loss.gamma=-0.5"], "loss.gamma=-0.5 is not allowed: gamma must be a finite number >= 0"),
    (["loss.gamma=2.0"], "loss.gamma=2.0 is not allowed: gamma applies only to loss=focal"),
    (["dataset.imbalance_factor=0.9"], "dataset.imbalance_factor=0.9 is not allowed: must be a number >= 1"),
    (["dataset.name=cifar1000_lt"], "dataset.name='cifar1000_lt' is not allowed: choose one of cifar10_lt, cifar100_lt"),
    (["model.name=resnet34"], "model.name='resnet34' is not allowed: choose one of resnet32, resnet50"),
    (["loss.name=hinge"], "loss.name='hinge' is not allowed: choose one of softmax, sigmoid, focal"),
    (["optim.name=adam"], "optim.name='adam' is not allowed: choose one of sgd"),
    (["optim.epochs=0"], "optim.epochs=0 is not allowed: must be an integer > 0"),
    (["optim.batch_size=-8"], "optim.batch_size=-8 is not allowed: must be an integer > 0"),
    (["optim.lr=0"], "optim.lr=0 is not allowed: must be a number > 0"),
    (["optim.lr=-0.1"], "optim.lr=-0.1 is not allowed: must be a number > 0"),
    (["dataset.input_size=64"], "dataset.input_size=64 is not allowed: cifar10_lt supports 32"),
    (["dataset=inat2018", "dataset.input_size=256"], "dataset.input_size=256 is not allowed: inat2018 supports 224 or 320"),
    (["+optim.lr_warmup=3"], "optim.lr_warmup=3 is not allowed: not a optim key"),
    (["+seeed=1"], "seeed=1 is not allowed: no config defines the key 'seeed'"),
    (["optim.milestones=[180,160]"], "optim schedule (warmup_epochs=5, milestones=[180, 160], factors=[0.01, 0.0001]) is not allowed"),
    (["precision=fp16"], "precision='fp16' is not allowed: choose one of fp32, bf16"),
    (["device=gpu"], "device='gpu' is not allowed: choose auto, cpu, cuda or cuda:<index>"),
    (["wandb.mode=cloud"], "wandb.mode='cloud' is not allowed: choose one of online, offline, disabled"),
]


@pytest.mark.parametrize("overrides,message", BAD_VALUES, ids=[" ".join(o) for o, _ in BAD_VALUES])
def test_bad_config_values_are_refused_before_any_work(tmp_path, overrides, message):
    cfg = compose_cfg(*overrides)
    with pytest.raises(cbl_config.ConfigError) as err:
        cbl_config.check(cfg)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    # through the entrypoint: refused before it started, so nothing is written (no folder, no failure record)
    with pytest.raises(cbl_config.ConfigError):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_failed_retry_never_overwrites_a_finished_run(tmp_path):
    cfg = compose_cfg(*demo_overrides(epochs=1), *QUIET)
    train(cfg, tmp_path / "run")
    with pytest.raises(cbl_config.ConfigError):
        train(compose_cfg(*demo_overrides(epochs=1), *QUIET, "loss.beta=2"), tmp_path / "run")
    assert read_metrics(tmp_path / "run")["status"] == "finished"


# ----------------------------------------------------------------------------- data problems
def test_corrupt_npz_names_the_file(tmp_path, monkeypatch):
    bad = tmp_path / "cifar.npz"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip archive")
    with pytest.raises(ValueError, match=f"cannot read {bad} as .npz"):
        read_cifar_npz(bad, 10)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x_train=np.zeros((2, 32, 32, 3), np.uint8), y_train=np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r"wrong.npz lacks keys \['x_test', 'y_test'\]"):
        read_cifar_npz(wrong, 10)
    # a run stopped while it reads the data (SIGTERM) is preempted, not told its data file is unreadable
    truncated = tmp_path / "truncated.npz"
    np.savez_compressed(truncated, x_train=np.arange(50000, dtype=np.int64))
    truncated.write_bytes(truncated.read_bytes()[:-200])
    with pytest.raises(ValueError, match=f"cannot read {truncated} as .npz"):
        read_cifar_npz(truncated, 10)

    def stopped(*args, **kwargs):
        raise Preempted("stopped by SIGTERM")

    monkeypatch.setattr(np, "load", stopped)
    with pytest.raises(Preempted):
        read_cifar_npz(wrong, 10)


def test_missing_npz_through_the_entrypoint_is_one_line(tmp_path):
    proc = run_cli(["dataset.npz=" + str(tmp_path / "absent.npz"), "device=cpu", "wandb.mode=disabled",
                    f"output_dir={tmp_path}"], cwd=tmp_path)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line == f"error: CIFAR .npz not found at {tmp_path / 'absent.npz'}; pass the path of an .npz with keys " \
                   "x_train, y_train, x_test, y_test"


# ----------------------------------------------------------------------------- wandb problems
def test_unreachable_wandb_server_never_stops_training(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    cfg = compose_cfg(*demo_overrides(epochs=2), "device=cpu", "progress=false", "wandb.mode=online",
                      "wandb.init_timeout=3")
    with caplog.at_level(logging.WARNING):
        final = train(cfg, tmp_path / "run")
    assert final["status"] == "finished" and "wandb init failed" in caplog.text


def test_unwritable_wandb_folder_never_stops_training(tmp_path, caplog):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "wandb").write_text("a file where wandb wants its folder, as on a full or read-only disk")
    cfg = compose_cfg(*demo_overrides(epochs=2), "device=cpu", "progress=false", "wandb.mode=offline")
    with caplog.at_level(logging.WARNING):
        final = train(cfg, run_dir)
    assert final["status"] == "finished" and "wandb init failed" in caplog.text


def test_wandb_gets_the_fields_dashboards_group_by(tmp_path, monkeypatch):
    import wandb

    calls = {}

    class FakeRun:
        id = "abc123"
        summary: dict = {}

        def log(self, data, step):
            calls.setdefault("log", []).append((step, data))

        def finish(self, exit_code=0):
            calls["finish"] = exit_code

    def fake_init(**kwargs):
        calls["init"] = kwargs
        return FakeRun()

    monkeypatch.setattr(wandb, "init", fake_init)
    cfg = compose_cfg(*demo_overrides(epochs=2), "device=cpu", "progress=false", "wandb.mode=offline",
                      "loss=focal", "loss.beta=0.99")
    train(cfg, tmp_path / "run")
    init = calls["init"]
    assert init["mode"] == "offline" and init["project"] == "cbl" and init["dir"] == str(tmp_path / "run")
    # one group per configuration, seeds averaged (cbl/training/tracking.py wandb_group): readable prefix, then a hash
    assert init["group"].startswith("digits_lt-if10-small_cnn-focal-b0.99-g1-fp32-e2-") and init["job_type"] == "focal"
    for key, value in {"loss": "focal", "beta": 0.99, "gamma": 1.0, "dataset": "digits_lt", "imbalance_factor": 10,
                       "model": "small_cnn", "seed": 0, "method": "focal"}.items():
        assert init["config"][key] == value, key
    assert init["config"]["cfg"]["optim"]["lr"] == 0.05  # the whole resolved config too
    # one row per epoch, then the per-class table and charts (no step: they join the last epoch's row)
    assert [step for step, _ in calls["log"]] == [1, 2, None] and {"train_loss", "lr", "top1_err"} <= set(calls["log"][0][1])
    assert {"per_class", "per_class_acc_bar", "per_class_acc_vs_count"} == set(calls["log"][2][1])
    assert FakeRun.summary["top1_err"] == read_metrics(tmp_path / "run")["top1_err"]
    assert calls["finish"] == 0


def test_metrics_files_are_never_half_written(tmp_path, monkeypatch):
    """metrics.json / metrics.jsonl go through the same atomic write as checkpoints, and nothing else writes them."""
    from cbl.training import checkpoint, run_files

    written, real = [], checkpoint.atomic_write_text

    def recording(path, text):
        written.append(Path(path).name)
        return real(path, text)

    monkeypatch.setattr(run_files, "atomic_write_text", recording)
    for module in ("run.py", "run_files.py", "bank.py"):  # the writers of a run folder: no plain open() for writing
        source = (ROOT / "cbl" / "training" / module).read_text()
        assert not re.search(r"open\([^)]*['\"][wa]", source) and ".write_text(" not in source, module
    cfg = compose_cfg(*demo_overrides(epochs=2), *QUIET)
    train(cfg, tmp_path / "run")
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "finished"
    assert {"metrics.json", "metrics.jsonl", "config.yaml"} <= set(written) and written.count("metrics.jsonl") >= 2
