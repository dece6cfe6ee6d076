"""cbl.training.bank: K configurations of one Table 2 cell trained together equal their separate runs (cbl.training.run.train)
within float tolerance -- per-epoch losses, errors, final weights and optimizer state; a member's checkpoint
resumes as a separate run; a diverging member fails alone; configs that cannot share a bank are refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from cbl.reporting.runs import find_runs
from cbl.training.bank import BankError, train_bank, train_bank_epoch
from cbl.training.checkpoint import checkpoint_path, list_checkpoints, load_checkpoint
from cbl.training.run import train
from tests.train_utils import QUIET, compose_cfg, read_history, read_metrics, run_cli, tiny_cifar_overrides

#: one Table 2 cell: a softmax, a class-balanced focal and a class-balanced sigmoid run (different heads, biases
#: and weight decay of the classifier bias), and LDAM-DRW (a cosine head and an epoch-dependent loss)
MEMBERS = {
    "softmax": ["loss=softmax"],
    "cb_focal": ["loss=focal", "loss.beta=0.999", "loss.gamma=2.0"],
    "cb_sigmoid": ["loss=sigmoid", "loss.beta=0.9"],
    "ldam_drw": ["loss=ldam", "loss.beta=0.999", "loss.drw_epoch=1"],
}


#: a tamer schedule than tiny_cifar_overrides' (batch 16, lr 0.1) for these 62 random images
TAME = ("optim.batch_size=32", "optim.reference_batch=32", "optim.lr=0.01")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One CPU thread on both sides.  Training on 62 random images is chaotic: a separate run made with 2 threads
    instead of 1 (another summation order, nothing else) already differs from itself by 0.5% in the stem's
    gradient at step 3 and by 10% at step 4.  With the same summation order, differences left are the bank's."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def cfgs(data_root: Path, epochs: int = 2, extra: tuple[str, ...] = ()) -> dict[str, object]:
    base = [*QUIET, *tiny_cifar_overrides(data_root, epochs=epochs), *TAME, *extra]
    return {name: compose_cfg(*base, *overrides) for name, overrides in MEMBERS.items()}


def assert_same_run(bank_dir: Path, solo_dir: Path, epoch: int, atol: float = 1e-5) -> None:
    """Same history (losses to float rounding; errors exactly, as no prediction may flip) and the same
    checkpoint: weights, BN statistics, momentum buffers (the summed gradients), lr schedule."""
    b, s = read_history(bank_dir), read_history(solo_dir)
    assert [r["epoch"] for r in b] == [r["epoch"] for r in s]
    for rb, rs in zip(b, s):
        assert rb["train_loss"] == pytest.approx(rs["train_loss"], rel=1e-4, abs=1e-6)
        assert (rb["top1_err"], rb["top5_err"], rb["lr"]) == (rs["top1_err"], rs["top5_err"], pytest.approx(rs["lr"]))
    cb, cs = (load_checkpoint(checkpoint_path(d, epoch)) for d in (bank_dir, solo_dir))
    assert cb["model"].keys() == cs["model"].keys()
    for name in cs["model"]:
        torch.testing.assert_close(cb["model"][name], cs["model"][name], rtol=1e-4, atol=atol, msg=lambda m: f"{name}: {m}")
    ob, os_ = cb["optimizer"], cs["optimizer"]
    assert [{k: v for k, v in g.items() if k != "params"} for g in ob["param_groups"]] == \
        [{k: v for k, v in g.items() if k != "params"} for g in os_["param_groups"]]  # fmt: skip
    assert [g["params"] for g in ob["param_groups"]] == [g["params"] for g in os_["param_groups"]]
    for i, state in os_["state"].items():
        torch.testing.assert_close(ob["state"][i]["momentum_buffer"], state["momentum_buffer"], rtol=1e-4, atol=atol)
    assert cb["scheduler"] == cs["scheduler"] and cb["config"] == cs["config"]


@pytest.fixture(scope="module")
def solo_and_bank(tmp_path_factory):
    """Each member trained alone (cbl.training.run.train) and all four in one bank, 2 epochs each."""
    tmp = tmp_path_factory.mktemp("bank")
    configs = cfgs(tmp / "data")
    for name, cfg in configs.items():
        train(cfg, tmp / "solo" / name)
    results = train_bank(list(configs.values()), [tmp / "bank" / name for name in configs])
    return tmp, configs, results


def test_bank_members_equal_their_separate_runs(solo_and_bank):
    tmp, configs, results = solo_and_bank
    for name, result in zip(configs, results):
        assert isinstance(result, dict) and result["status"] == "finished", result
        solo = read_metrics(tmp / "solo" / name)
        for key in ("top1_err", "top5_err", "per_class_acc", "shot_acc", "samples_per_class", "run", "epochs_completed"):
            assert result[key] == solo[key], (name, key)
        assert read_metrics(tmp / "bank" / name) == result
        assert_same_run(tmp / "bank" / name, tmp / "solo" / name, epoch=2)
        assert (tmp / "bank" / name / "config.yaml").read_text() == (tmp / "solo" / name / "config.yaml").read_text()


def test_a_bank_members_checkpoint_resumes_as_a_separate_run(solo_and_bank, tmp_path):
    """Epoch 1 of the bank's focal member, continued by cbl.train alone, ends where the separate run ends."""
    tmp, configs, _ = solo_and_bank
    run = tmp_path / "cb_focal"
    shutil.copytree(tmp / "bank" / "cb_focal", run)
    checkpoint_path(run, 2).unlink()
    (run / "metrics.json").unlink()
    cfg = configs["cb_focal"].copy()
    cfg.resume = True
    train(cfg, run)
    assert_same_run(run, tmp / "solo" / "cb_focal", epoch=2)


def test_a_bank_resumes_its_members_and_skips_finished_ones(solo_and_bank, tmp_path):
    tmp, configs, _ = solo_and_bank
    names = list(configs)
    for name in names:
        shutil.copytree(tmp / "bank" / name, tmp_path / name)
    for name in names[1:]:  # stopped after epoch 1: resume them; the first one is finished
        checkpoint_path(tmp_path / name, 2).unlink()
        (tmp_path / name / "metrics.json").unlink()
    resumed = []
    for cfg in configs.values():
        cfg = cfg.copy()
        cfg.resume = True
        resumed.append(cfg)
    results = train_bank(resumed, [tmp_path / n for n in names])
    assert results[0] == read_metrics(tmp / "bank" / names[0])  # untouched
    for name, result in zip(names[1:], results[1:]):
        assert result["status"] == "finished"
        assert_same_run(tmp_path / name, tmp / "solo" / name, epoch=2)


def test_a_diverging_member_fails_alone(tmp_path):
    """Member 1's loss turns NaN at step 2: it is masked out and reported; member 0 trains on as it would alone."""
    configs = cfgs(tmp_path / "data", epochs=1)
    from cbl.models.bank import CifarResNetBank
    from cbl.training.run import build
    from cbl.training.distributed import setup_distributed

    env = setup_distributed("cpu")
    setups = [build(c, env) for c in (configs["softmax"], configs["cb_focal"])]

    class NanAtStep2(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.calls = inner, 0

        def forward(self, logits, labels):
            self.calls += 1
            loss = self.inner(logits, labels)
            return loss * float("nan") if self.calls >= 2 else loss

    def run(members, criteria):
        from cbl.training.bank import bank_optimizer
        from cbl.training.run import build_schedule

        bank = CifarResNetBank([s.model for s in members])
        opt = bank_optimizer(bank, members)
        sched = build_schedule(configs["softmax"], opt, members[0].data)
        members[0].data.train.set_epoch(1)
        alive = torch.ones(len(members), dtype=torch.bool)
        stats = train_bank_epoch(bank, members[0].data.train, criteria, opt, sched, alive, epoch=1,
                                 device=torch.device("cpu"), check_every=3)  # fmt: skip
        return bank, alive, stats

    bank, alive, stats = run(setups, [setups[0].criterion, NanAtStep2(setups[1].criterion)])
    assert alive.tolist() == [True, False]
    assert list(stats["diverged"]) == [1] and "non-finite training loss (nan) at epoch 1, step 2/" in str(stats["diverged"][1])
    alone, _, alone_stats = run([build(configs["softmax"], env)], [setups[0].criterion])
    assert stats["train_loss"][0] == pytest.approx(alone_stats["train_loss"][0], rel=1e-5)
    for name, t in alone.member_state_dict(0).items():
        torch.testing.assert_close(bank.member_state_dict(0)[name], t, rtol=1e-4, atol=1e-5)


def test_configs_that_cannot_share_a_bank_are_refused(tmp_path):
    configs = cfgs(tmp_path / "data", epochs=1)
    other_seed = compose_cfg(*QUIET, *tiny_cifar_overrides(tmp_path / "data", epochs=1), *TAME, "seed=1")
    with pytest.raises(BankError, match="may differ only in loss; seed is 0 in one and 1 in another"):
        train_bank([configs["softmax"], other_seed], [tmp_path / "a", tmp_path / "b"])
    demo = compose_cfg(*QUIET, "experiment=demo")
    with pytest.raises(BankError, match="model small_cnn cannot be trained in a bank; allowed: resnet32"):
        train_bank([demo], [tmp_path / "c"])
    for folder in ("a", "b", "c"):  # refused before any member started: nothing written, as for a separate run
        assert not (tmp_path / folder).exists()


def test_bank_launcher_runs_a_sweep_into_the_basic_launchers_folders(tmp_path):
    """4 jobs, banks of at most 3: one bank of 3 and one job alone; the same folders, files and results as the
    basic launcher's sweep; a member with a bad value fails alone, with the line a separate job prints and no folder,
    and the sweep's exit status says so."""
    sweep = ["-m", *QUIET, *tiny_cifar_overrides(tmp_path / "data", epochs=1), "loss=softmax,focal",
             "loss.beta=0.0,0.999"]  # fmt: skip
    basic = run_cli([*sweep, f"output_dir={tmp_path / 'basic'}"], cwd=tmp_path)
    assert basic.returncode == 0, basic.stderr[-3000:]
    bank = run_cli([*sweep, "hydra/launcher=bank", "hydra.launcher.max_members=3", f"output_dir={tmp_path / 'bank'}"],
                   cwd=tmp_path)  # fmt: skip
    assert bank.returncode == 0, bank.stderr[-3000:]
    basic_runs = {r.path.name: r for r in find_runs(tmp_path / "basic")}
    bank_runs = {r.path.name: r for r in find_runs(tmp_path / "bank")}
    assert set(bank_runs) == set(basic_runs) and len(bank_runs) == 4
    for name, run in bank_runs.items():
        assert run.status == "finished", run.error
        assert run.metrics["top1_err"] == basic_runs[name].metrics["top1_err"]
        assert run.history()[0]["train_loss"] == pytest.approx(basic_runs[name].history()[0]["train_loss"], rel=1e-4)
        for f in ("config.yaml", "overrides.yaml"):  # the same but for the output_dir given
            text = (basic_runs[name].path / ".hydra" / f).read_text()
            assert (run.path / ".hydra" / f).read_text() == text.replace(str(tmp_path / "basic"), str(tmp_path / "bank"))
        assert (run.path / ".hydra" / "hydra.yaml").is_file()
    logs = sorted(p.name for p in (tmp_path / "bank" / "runs").glob("bank_*.log"))
    assert logs == ["bank_0.log"] and "bank of 3 from epoch 1" in (tmp_path / "bank" / "runs" / "bank_0.log").read_text()

    failing = run_cli(["-m", *QUIET, *tiny_cifar_overrides(tmp_path / "data", epochs=1), "loss=focal",
                       "loss.beta=0.0,1.5", "hydra/launcher=bank", f"output_dir={tmp_path / 'fail'}"], cwd=tmp_path)  # fmt: skip
    assert failing.returncode == 2  # bad input, as the separate run's exit status
    (run,) = find_runs(tmp_path / "fail")
    assert run.status == "finished" and "-b0-" in run.path.name
    (line,) = [x for x in failing.stderr.splitlines() if x.startswith("error: job #1 ")]
    assert "-focal-b1.5-" in line and line.endswith(": loss.beta=1.5 is not allowed: beta must be a number in [0, 1)")
    assert failing.stderr.strip().splitlines()[-1].startswith("error: 1 of 2 jobs failed: #1")


def test_each_member_logs_to_its_own_wandb_run_and_a_bad_checkpoint_fails_its_member_alone(solo_and_bank, tmp_path):
    """wandb offline: one run per member, open side by side in one process.  Resuming a member whose checkpoint
    was trained with another config fails that member with the separate run's message; the others train."""
    tmp, configs, _ = solo_and_bank
    shutil.copytree(tmp / "bank" / "cb_focal", tmp_path / "wrong")
    (tmp_path / "wrong" / "metrics.json").unlink()
    names = {"softmax": "softmax", "cb_sigmoid": "cb_sigmoid", "wrong": "cb_sigmoid"}  # folder -> config
    resumed = []
    for config in names.values():
        cfg = configs[config].copy()
        cfg.resume, cfg.wandb.mode = True, "offline"
        resumed.append(cfg)
    results = train_bank(resumed, [tmp_path / n for n in names])
    assert [r["status"] for r in results[:2]] == ["finished", "finished"]
    assert isinstance(results[2], ValueError)
    assert "its checkpoint was trained with loss.beta=0.999, this run asks for 0.9" in str(results[2])
    # refused before it started: no failure record over the stopped run, whose checkpoints stay
    assert not (tmp_path / "wrong" / "metrics.json").exists() and list_checkpoints(tmp_path / "wrong")
    ids = set()
    for name in ("softmax", "cb_sigmoid"):
        (run,) = (tmp_path / name / "wandb").glob("offline-run-*")
        ids.add(run.name.rsplit("-", 1)[1])
    assert len(ids) == 2


def test_hydra_discovers_the_bank_launcher_and_checks_its_option():
    from hydra.core.plugins import Plugins
    from hydra.plugins.launcher import Launcher

    from hydra_plugins.cbl_bank_launcher.bank_launcher import BankLauncher

    # by name: Hydra executes plugin modules itself, so the class it found may be another object than the
    # one imported here, depending on which came first in this process
    found = {(c.__module__, c.__qualname__) for c in Plugins.instance().discover(Launcher)}
    assert (BankLauncher.__module__, BankLauncher.__qualname__) in found
    with pytest.raises(ValueError, match="hydra.launcher.max_members=0 is not allowed: a positive integer"):
        BankLauncher(max_members=0)


@pytest.mark.slow
def test_a_compiled_channels_last_bank_equals_the_separate_runs(tmp_path):
    """compile=true channels_last=true (what a GPU sweep uses) changes float rounding only.  One epoch: the
    warm-up's small steps keep the rounding of other kernels from growing (see one_thread)."""
    configs = cfgs(tmp_path / "data", epochs=1)
    names = ["softmax", "cb_focal"]
    fast = []
    for name in names:
        train(configs[name], tmp_path / "solo" / name)
        cfg = configs[name].copy()
        cfg.compile, cfg.channels_last = True, True
        fast.append(cfg)
    results = train_bank(fast, [tmp_path / "bank" / n for n in names])
    for name, result in zip(names, results):
        assert result["status"] == "finished"
        # the stem's gradient sums many cancelling terms through 31 batch norms: channels_last batch norm's
        # rounding (docs/scaling_out.md) moves it by up to ~0.3% of its largest entry here
        assert_same_run(tmp_path / "bank" / name, tmp_path / "solo" / name, epoch=1, atol=5e-3)
