"""keep_best=true: the best-top-1 epoch's checkpoint survives the pruning to the newest keep_checkpoints; it is a
runtime key (never part of the run's name), and `cbl-evaluate --checkpoint best` reproduces the best error."""

import json

import pytest
import torch
from omegaconf import OmegaConf

from cbl.training.config import RUNTIME_KEYS, ConfigError, check, run_name
from cbl.evaluate import main as evaluate_main
from cbl.training.checkpoint import best_epoch, list_checkpoints, load_checkpoint, save_checkpoint
from cbl.training.run import save_run_checkpoint, train
from tests.train_utils import QUIET, compose_cfg, demo_overrides, read_history, read_metrics


def row(epoch: int, top1: float | None) -> dict:
    return {"epoch": epoch, "top1_err": top1}


def test_best_epoch_is_the_first_lowest_evaluated_error():
    assert best_epoch([row(1, 50.0), row(2, None), row(3, 40.0), row(4, 40.0), row(5, 45.0)]) == 3
    assert best_epoch([row(1, None)]) is None and best_epoch([]) is None


def test_pruning_spares_the_kept_epoch_only(tmp_path):
    for epoch in range(1, 7):
        save_checkpoint({"epoch": epoch, "w": torch.full((3,), float(epoch))}, tmp_path, epoch, keep=2, keep_epoch=2)
    assert [e for e, _ in list_checkpoints(tmp_path)] == [6, 5, 2]
    assert load_checkpoint(list_checkpoints(tmp_path)[-1][1])["w"].tolist() == [2.0] * 3  # intact, verified (CRC)
    # a new best: the old one goes at the next pruning, as any old checkpoint
    save_checkpoint({"epoch": 7, "w": torch.zeros(3)}, tmp_path, 7, keep=2, keep_epoch=7)
    assert [e for e, _ in list_checkpoints(tmp_path)] == [7, 6]
    assert not list((tmp_path / "checkpoints").glob(".*tmp*"))  # written atomically, as the others


@pytest.mark.parametrize("keep_best,expected", [(True, [4, 3, 1]), (False, [4, 3])])
def test_the_run_checkpoint_keeps_the_best_epoch_of_the_history(tmp_path, keep_best, expected):
    cfg = OmegaConf.create({"keep_checkpoints": 2, "keep_best": keep_best})
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    history = []
    for epoch, err in enumerate([30.0, 35.0, 40.0, 33.0], start=1):  # epoch 1 stays the best
        history.append(row(epoch, err))
        save_run_checkpoint(cfg, tmp_path, epoch, model=model, optimizer=opt, scheduler=sched, history=history,
                            comparable={}, wall_time_s=0.0, wandb_id=None, world_size=1)  # fmt: skip
    assert [e for e, _ in list_checkpoints(tmp_path)] == expected


def test_keep_best_is_a_checked_runtime_key():
    assert "keep_best" in RUNTIME_KEYS
    plain = lambda *o: OmegaConf.to_container(compose_cfg(*o), resolve=True)  # noqa: E731
    assert compose_cfg().keep_best is False  # the paper reports the last epoch
    assert run_name(plain("keep_best=true")) == run_name(plain())
    with pytest.raises(ConfigError, match="keep_best='yes' is not allowed: must be true or false"):
        check(compose_cfg("keep_best=yes"))


# lr 1.0 on the digits demo: the error rises again after epoch 4 (seed 0, deterministic), so the best is not the last
BUMPY = [*demo_overrides(epochs=5), *QUIET, "optim.lr=1.0", "keep_checkpoints=1"]


def test_a_run_with_keep_best_keeps_the_best_and_evaluates_it_to_the_recorded_best(tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(compose_cfg(*BUMPY, "keep_best=true"), run_dir)
    metrics, history = read_metrics(run_dir), read_history(run_dir)
    best = min(history, key=lambda r: r["top1_err"])  # independent of cbl.training.checkpoint.best_epoch
    assert best["epoch"] != 5, "the test needs a run whose best epoch is not its last (see BUMPY)"
    assert metrics["best_epoch"] == best["epoch"]
    assert sorted(e for e, _ in list_checkpoints(run_dir)) == sorted({best["epoch"], 5})

    assert evaluate_main([str(run_dir), "--checkpoint", "best"]) == 0
    evaluated = json.loads((run_dir / "eval" / f"epoch_{best['epoch']:04d}" / "evaluation.json").read_text())
    assert evaluated["epoch"] == best["epoch"] and evaluated["matches_recorded"] is True
    assert evaluated["top1_err"] == metrics["best_top1_err"] and evaluated["top5_err"] == best["top5_err"]


def test_without_keep_best_the_best_checkpoint_is_gone_and_the_error_says_how_to_keep_it(tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(compose_cfg(*BUMPY), run_dir)
    assert [e for e, _ in list_checkpoints(run_dir)] == [5]
    best = read_metrics(run_dir)["best_epoch"]
    assert best != 5, "the test needs a run whose best epoch is not its last (see BUMPY)"
    with pytest.raises(SystemExit) as exit_info:
        evaluate_main([str(run_dir), "--checkpoint", "best"])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"cbl-evaluate: error: --checkpoint best: the best epoch, {best} ") and "keep_best=true" in line
