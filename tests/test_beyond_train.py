"""Beyond the paper, end to end: the methods sweep on the digits demo runs every method through
`python -m cbl.train` and `scripts/make_table.py --table methods` fills the README marker; deferred re-weighting
switches at the right epoch in the training loop, and a DRW run with class-aware sampling resumes exactly."""

import logging

import pytest
import torch

from cbl.reporting.runs import find_runs
from cbl.training import run as run_module
from cbl.training.checkpoint import list_checkpoints, load_latest_checkpoint
from cbl.training.run import train
from tests.runfactory import run_script
from tests.test_beyond_configs import EXPECTED
from tests.train_utils import QUIET, compose_cfg, demo_overrides, read_history, read_metrics, run_cli

SHORT = ["optim.epochs=2", "optim.milestones=[1]", "optim.factors=[0.1]"]  # DRW from epoch 2 (after milestone 1)


def test_methods_demo_sweep_runs_every_method_and_fills_the_readme_table(tmp_path):
    out = tmp_path / "outputs"
    p = run_cli(["sweep=methods_demo", f"output_dir={out}", *SHORT, "device=cpu"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    runs = find_runs(out / "methods_demo")
    assert len(runs) == len(EXPECTED) and all(r.status == "finished" for r in runs)
    by_method = {next(o for o in r.overrides if o.startswith("method=")).removeprefix("method="): r for r in runs}
    for preset, (label, loss, beta, gamma, sampler, settings) in EXPECTED.items():
        run = by_method[preset]
        assert (run.method, run.loss, run.beta) == (label, loss, beta)
        assert run.settings == settings.replace("drw_epoch=160", "drw_epoch=1")
        assert run.config["sampler"] == sampler and run.last_epoch == 2

    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- cbl:methods:start -->\nold\n<!-- cbl:methods:end -->\n")
    p = run_script("make_table", "--runs", str(out / "methods_demo"), "--table", "methods", "--readme", str(readme),
                   "--marker", "methods")
    assert p.returncode == 0, p.stderr
    text = readme.read_text()
    assert "old" not in text and "12 finished runs" in text
    rows = [line for line in text.splitlines() if line.startswith("| digits_lt |")]
    assert len(rows) == len(EXPECTED)  # one row per method (cb_softmax and softmax differ by beta)
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    # a paper loss with beta > 0 prints as its preset's name, cb_<loss>, never as the plain loss
    assert sorted((c[3], c[4], c[7]) for c in cells) == sorted(
        (f"cb_{label}" if label == loss and beta > 0 else label, loss,
         (settings.replace("drw_epoch=160", "drw_epoch=1") or "-"))
        for label, loss, beta, _, _, settings in EXPECTED.values()
    )
    assert {c[3] for c in cells} >= {"cb_softmax", "cb_focal", "softmax"}
    # the paper's configurations come first
    assert [c[3] for c in cells[:3]] == ["cb_focal", "softmax", "cb_softmax"]


class Recorder:
    """Wraps the criterion; records (epoch, weights in force) at every step."""

    def __init__(self, criterion):
        self.criterion, self.seen = criterion, []

    def __call__(self, logits, labels):
        self.seen.append((self.criterion.epoch, self.criterion.loss.weights.clone()))
        return self.criterion(logits, labels)

    def set_epoch(self, epoch):
        self.criterion.set_epoch(epoch)

    def to(self, device):
        self.criterion.to(device)
        return self


def test_drw_switches_in_the_training_loop_after_drw_epoch_epochs(tmp_path, monkeypatch):
    real, made = run_module.build_criterion, []
    monkeypatch.setattr(run_module, "build_criterion", lambda cfg, counts: made.append(Recorder(real(cfg, counts))) or made[-1])
    cfg = compose_cfg(*demo_overrides(epochs=4), *QUIET, "method=drw", "loss.drw_epoch=2")
    train(cfg, tmp_path / "run")
    seen = made[0].seen
    target = made[0].criterion.deferred
    assert sorted({e for e, _ in seen}) == [1, 2, 3, 4]
    for epoch, weights in seen:
        expected = torch.ones_like(target) if epoch <= 2 else target
        assert torch.equal(weights, expected), epoch
    assert not torch.equal(target, torch.ones_like(target))
    assert read_metrics(tmp_path / "run")["run"]["method"] == "drw"


@pytest.mark.parametrize("overrides", [["method=drw", "sampler=class_balanced"], ["method=ldam_drw", "sampler=sqrt"]],
                         ids=["drw+cb_resample", "ldam_drw+sqrt_resample"])
def test_drw_with_resampling_resumes_exactly(tmp_path, overrides, caplog):
    args = [*demo_overrides(epochs=4), *QUIET, *overrides, "loss.drw_epoch=2"]
    full = train(compose_cfg(*args), tmp_path / "full")
    stopped = tmp_path / "stopped"
    train(compose_cfg(*args, "keep_checkpoints=4"), stopped)
    for epoch, path in list_checkpoints(stopped):
        if epoch > 2:  # stopped at the last epoch before the weights switch on
            path.unlink()
    (stopped / "metrics.json").unlink()
    assert load_latest_checkpoint(stopped)["epoch"] == 2
    with caplog.at_level(logging.INFO):
        resumed = train(compose_cfg(*args, "resume=true"), stopped)
    # from epoch 2's checkpoint, not from scratch (which, deterministic, would give the same numbers)
    assert any("resuming" in m and m.endswith("(epoch 2)") for m in caplog.messages), caplog.messages
    for key in ("top1_err", "top5_err", "best_top1_err", "per_class_acc"):
        assert resumed[key] == full[key], key
    assert [r["train_loss"] for r in read_history(stopped)] == [r["train_loss"] for r in read_history(tmp_path / "full")]
