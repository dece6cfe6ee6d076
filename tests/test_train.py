"""The training entrypoint: a short run writes every file of its run directory, resume continues exactly,
runs are refused or resumed as they should, divergence and preemption are reported."""

import json
import os
import signal

import pytest
import torch
from omegaconf import OmegaConf

from cbl.training.config import ConfigError
from cbl.data import long_tail_counts
from cbl.training import run as run_module
from cbl.training.checkpoint import list_checkpoints, load_latest_checkpoint
from cbl.training.engine import DivergenceError
from cbl.training.run import train
from tests.train_utils import QUIET, compose_cfg, demo_overrides, read_history, read_metrics, tiny_cifar_overrides

HISTORY_KEYS = {"epoch", "lr", "train_loss", "top1_err", "top5_err", "ece", "nll", "seconds"}


def test_short_resnet32_run_writes_every_file(tmp_path):
    cfg = compose_cfg(*tiny_cifar_overrides(tmp_path / "data"), *QUIET, "wandb.mode=offline", "loss=focal",
                      "loss.beta=0.999", "loss.gamma=0.5")
    run_dir = tmp_path / "run"
    final = train(cfg, run_dir)

    written = OmegaConf.load(run_dir / "config.yaml")
    assert written.loss.name == "focal" and written.loss.beta == 0.999 and written.dataset.root == str(tmp_path / "data")

    history = read_history(run_dir)
    assert [r["epoch"] for r in history] == [1, 2]
    assert all(set(r) == HISTORY_KEYS for r in history)
    assert all(0 <= r["top1_err"] <= 100 and 0 <= r["top5_err"] <= r["top1_err"] for r in history)

    metrics = read_metrics(run_dir)
    assert metrics == json.loads(json.dumps(final))
    assert metrics["status"] == "finished" and metrics["error"] is None
    assert metrics["top1_err"] == history[-1]["top1_err"] and metrics["top5_err"] == history[-1]["top5_err"]
    assert metrics["best_top1_err"] == min(r["top1_err"] for r in history)
    assert metrics["samples_per_class"] == long_tail_counts(12, 10, 4)
    assert len(metrics["per_class_acc"]) == 10
    assert set(metrics["shot_acc"]) == {"many", "medium", "few"}
    assert metrics["seed"] == 0 and metrics["subset_seed"] == 0 and metrics["epochs_completed"] == 2
    assert metrics["git_commit"] and metrics["wall_time_s"] > 0
    assert metrics["run"] | {} == metrics["run"] and metrics["run"]["loss"] == "focal" and metrics["run"]["method"] == "focal"
    assert metrics["run"]["imbalance_factor"] == 4 and metrics["run"]["model"] == "resnet32"

    assert [e for e, _ in list_checkpoints(run_dir)] == [2, 1]
    state = load_latest_checkpoint(run_dir)
    assert state["epoch"] == 2 and {"model", "optimizer", "scheduler", "rng", "history"} <= set(state)
    assert list((run_dir / "wandb").glob("offline-run-*"))


def test_top1_error_matches_an_independent_evaluation_of_the_checkpoint(tmp_path):
    from cbl.data import build_data
    from cbl.models import build_model

    cfg = compose_cfg(*demo_overrides(epochs=2), *QUIET)
    final = train(cfg, tmp_path / "run")
    state = load_latest_checkpoint(tmp_path / "run")
    data = build_data(cfg.dataset, seed=0, device=torch.device("cpu"), batch_size=64, eval_batch_size=37)
    model = build_model("small_cnn", data.num_classes, in_channels=data.in_channels)
    model.load_state_dict(state["model"])
    model.eval()
    wrong = total = 0
    with torch.no_grad():
        for x, y in data.test:
            wrong += int((model(x).argmax(1) != y).sum())
            total += len(y)
    assert total == 500
    assert final["top1_err"] == pytest.approx(100.0 * wrong / total)


def test_resume_continues_at_the_next_epoch_with_the_same_result(tmp_path):
    full = train(compose_cfg(*demo_overrides(epochs=4), *QUIET), tmp_path / "full")

    # The same run stopped after epoch 2 (as if killed), then resumed with the full schedule.
    stopped = tmp_path / "stopped"
    train(compose_cfg(*demo_overrides(epochs=4), *QUIET, "keep_checkpoints=4"), stopped)
    for epoch, path in list_checkpoints(stopped):
        if epoch > 2:
            path.unlink()
    (stopped / "metrics.json").unlink()
    assert load_latest_checkpoint(stopped)["epoch"] == 2
    resumed = train(compose_cfg(*demo_overrides(epochs=4), *QUIET, "resume=true"), stopped)

    assert [r["epoch"] for r in read_history(stopped)] == [1, 2, 3, 4]
    for key in ("top1_err", "top5_err", "best_top1_err", "per_class_acc", "shot_acc"):
        assert resumed[key] == full[key], key
    assert [r["train_loss"] for r in read_history(stopped)] == [r["train_loss"] for r in read_history(tmp_path / "full")]


def test_finished_run_is_not_overwritten_and_resume_returns_it(tmp_path):
    cfg = compose_cfg(*demo_overrides(epochs=1), *QUIET)
    first = train(cfg, tmp_path / "run")
    with pytest.raises(ConfigError, match="already holds a finished run; pass resume=true"):
        train(cfg, tmp_path / "run")
    again = train(compose_cfg(*demo_overrides(epochs=1), *QUIET, "resume=true"), tmp_path / "run")
    assert again == json.loads(json.dumps(first))


def test_stopped_run_needs_resume_and_a_matching_config(tmp_path):
    run_dir = tmp_path / "run"
    train(compose_cfg(*demo_overrides(epochs=2), *QUIET), run_dir)
    (run_dir / "metrics.json").unlink()  # as if killed after the last checkpoint
    with pytest.raises(ConfigError, match="stopped after epoch 2; pass resume=true"):
        train(compose_cfg(*demo_overrides(epochs=2), *QUIET), run_dir)
    with pytest.raises(ConfigError, match="trained with loss.beta=0.0, this run asks for 0.9"):
        train(compose_cfg(*demo_overrides(epochs=2), *QUIET, "resume=true", "loss.beta=0.9"), run_dir)
    # runtime keys may change on resume (here: device and progress); the final metrics are rewritten
    final = train(compose_cfg(*demo_overrides(epochs=2), *QUIET, "resume=true", "progress=true"), run_dir)
    assert final["status"] == "finished" and final["epochs_completed"] == 2


class NaNAt:
    """Wraps a criterion: returns NaN at (epoch, step), counting steps from 1."""

    def __init__(self, criterion, epoch, step, steps_per_epoch):
        self.criterion, self.at, self.calls, self.steps = criterion, (epoch - 1) * steps_per_epoch + step, 0, steps_per_epoch

    def __call__(self, logits, labels):
        self.calls += 1
        loss = self.criterion(logits, labels)
        return loss * float("nan") if self.calls == self.at else loss

    def to(self, device):
        return self

    def set_epoch(self, epoch):
        self.criterion.set_epoch(epoch)


def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real = run_module.build_criterion
    monkeypatch.setattr(run_module, "build_criterion", lambda cfg, counts: NaNAt(real(cfg, counts), 2, 3, 8))
    run_dir = tmp_path / "run"
    with pytest.raises(DivergenceError, match=r"non-finite training loss \(nan\) at epoch 2, step 3/8"):
        train(compose_cfg(*demo_overrides(epochs=3), *QUIET), run_dir)
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "failed" and "non-finite training loss" in metrics["error"]
    assert metrics["epochs_completed"] == 1
    assert load_latest_checkpoint(run_dir)["epoch"] == 1


def test_sigterm_marks_the_run_interrupted_and_resume_finishes_it(tmp_path, monkeypatch):
    real = run_module.build_criterion

    class TermAt(NaNAt):
        def __call__(self, logits, labels):
            self.calls += 1
            if self.calls == self.at:
                os.kill(os.getpid(), signal.SIGTERM)
            return self.criterion(logits, labels)

    monkeypatch.setattr(run_module, "build_criterion", lambda cfg, counts: TermAt(real(cfg, counts), 2, 5, 8))
    run_dir = tmp_path / "run"
    with pytest.raises(run_module.Preempted):
        train(compose_cfg(*demo_overrides(epochs=3), *QUIET), run_dir)
    assert read_metrics(run_dir)["status"] == "interrupted"
    monkeypatch.setattr(run_module, "build_criterion", real)
    final = train(compose_cfg(*demo_overrides(epochs=3), *QUIET, "resume=true"), run_dir)
    assert final["status"] == "finished" and [r["epoch"] for r in read_history(run_dir)] == [1, 2, 3]


def test_the_recorded_commit_is_read_once_per_process(monkeypatch):
    """A sweep's later runs report the code the process loaded, not a commit made while it trained."""
    import subprocess

    from cbl.training.run_files import git_commit

    first = git_commit()
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("git run again")))
    assert git_commit() == first
