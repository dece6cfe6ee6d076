"""`python -m cbl.train` as a user runs it: one-line errors with a non-zero exit code, readable run folders, no
folder left by a run refused before it started (sweeps: tests/test_cli_sweeps.py)."""

import re

import pytest

from cbl.reporting.runs import find_runs
from tests.train_utils import QUIET, demo_overrides, read_metrics, run_cli, tiny_cifar_overrides

FAST = [*demo_overrides(epochs=2), "deterministic=true"]


def test_one_configuration_one_folder_however_it_is_launched(tmp_path):
    """The default spelled out, a later sweep that includes the same run, and a relaunch: one folder, trained once."""
    first = run_cli([*FAST, "loss=focal", "loss.beta=0.99", f"output_dir={tmp_path}"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (run_dir,) = (tmp_path / "demo").iterdir()
    assert re.fullmatch(r"digits_lt-if10-small_cnn-focal-b0\.99-g1-s0-[0-9a-f]{8}", run_dir.name), run_dir.name
    assert read_metrics(run_dir)["status"] == "finished" and (run_dir / ".hydra" / "overrides.yaml").is_file()
    mtime = (run_dir / "metrics.json").stat().st_mtime_ns
    # explicit defaults (spelled as ints, on another device, with runtime switches) find the finished run
    again = run_cli([*FAST, "loss=focal", "loss.beta=0.990", "loss.gamma=1", "seed=0", "dataset.imbalance_factor=10",
                     "precision=fp32", "device=cpu", "progress=true", "resume=true", f"output_dir={tmp_path}"], cwd=tmp_path)
    assert again.returncode == 0 and "already finished" in again.stdout + again.stderr, again.stderr
    # a sweep over seeds and betas trains the three new runs and reuses the finished one
    sweep = run_cli(["-m", *FAST, "loss=focal", "loss.beta=0.99,0.9", "seed=0,1", "resume=true",
                     f"output_dir={tmp_path}"], cwd=tmp_path)  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr
    runs = find_runs(tmp_path / "demo")
    assert len(runs) == 4 and all(r.status == "finished" for r in runs)
    assert (run_dir / "metrics.json").stat().st_mtime_ns == mtime  # not trained a second time


def nothing_written(output_dir) -> bool:
    """No results tree at all: Hydra's run folder for a refused run is taken away again, and with it the output_dir
    that Hydra made for it (cbl.training.refusal.RunFoldersMade)."""
    return not output_dir.exists()


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (["loss.beta=1.0"], "loss.beta=1.0 is not allowed: beta must be a number in [0, 1)"),
        (["loss.gamma=-1"], "loss.gamma=-1 is not allowed: gamma must be a finite number >= 0"),
        (["dataset.imbalance_factor=0.5"], "dataset.imbalance_factor=0.5 is not allowed: must be a number >= 1"),
        (["optim.epochs=0"], "optim.epochs=0 is not allowed: must be an integer > 0"),
        (["+loss.bta=0.9"], "loss.bta=0.9 is not allowed: not a loss key"),
        # not numbers at all: the run folder is named before the values are checked, and the name takes any value
        (["loss.beta=abc"], "loss.beta='abc' is not allowed: beta must be a number in [0, 1)"),
        (["dataset.imbalance_factor=abc"], "dataset.imbalance_factor='abc' is not allowed: must be a number >= 1"),
        (["loss=focal", "loss.gamma=abc"], "loss.gamma='abc' is not allowed: gamma must be a finite number >= 0"),
        (["loss.beta=[0.9]"], "loss.beta=[0.9] is not allowed: beta must be a number in [0, 1)"),
        (["seed=abc"], "seed='abc' is not allowed: must be an integer >= 0"),
        (["dataset.imbalance_factor=${oc.env:CBL_NOT_SET}"],
         "dataset.imbalance_factor='${oc.env:CBL_NOT_SET}' is not allowed: it does not resolve"),
        (["method=drw", "optim.milestones=[]", "optim.factors=[]"],
         "loss.drw_epoch=${optim.milestones.0} is not allowed: it follows the first lr milestone"),
    ],
)
def test_bad_value_is_one_line_and_exit_code_2_and_leaves_no_run_folder(tmp_path, overrides, expected):
    out = tmp_path / "outputs"
    proc = run_cli([*FAST, *overrides, f"output_dir={out}"], cwd=tmp_path)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: {expected}")
    assert "Traceback" not in proc.stderr + proc.stdout
    assert nothing_written(out), sorted(out.rglob("*"))


def test_a_refused_run_keeps_an_output_dir_that_was_there_before(tmp_path):
    """Only what Hydra made for the refused run goes: an existing (even empty) output_dir and its other runs stay."""
    out = tmp_path / "outputs"
    (out / "other").mkdir(parents=True)
    proc = run_cli([*FAST, "loss.beta=1.0", f"output_dir={out}"], cwd=tmp_path)
    assert proc.returncode == 2 and sorted(out.rglob("*")) == [out / "other"]
    (out / "other").rmdir()
    proc = run_cli([*FAST, "loss.beta=1.0", f"output_dir={out}"], cwd=tmp_path)
    assert proc.returncode == 2 and out.is_dir() and not list(out.iterdir())


@pytest.mark.parametrize("args, expected", [
    (["loss.bta=0.9"], "error: loss.bta=0.9: the config has no key 'loss.bta' (check its spelling; to add a new key, "
                       "write +loss.bta=0.9)"),
    (["seeed=1"], "error: seeed=1: the config has no key 'seeed'"),
    (["loss=hinge"], "error: loss=hinge: no such loss option; choose one of balanced_softmax, focal, ldam, "
                     "logit_adjusted, sigmoid, softmax"),
    (["hydra/launcher=nosuch"], "error: hydra/launcher=nosuch: no such hydra/launcher option; choose one of bank, basic,"),
    (["loss.beta=[0.9"], "error: cannot parse the overrides: no viable alternative at input '[0.9'"),
    # in a sweep: every value is tried before any job runs, so the typo in its second job refuses the sweep
    (["-m", "loss=softmax,hinge"], "error: loss=hinge: no such loss option"),
    (["-m", "loss.beta=0.9,0.99", "loss.gama=1,2"], "error: loss.gama=1: the config has no key 'loss.gama'"),
    # several values without -m: Hydra's "Ambiguous value" report, as one line that says what to write instead
    (["loss.beta=0.0,0.9"], "error: loss.beta=0.0,0.9: several values run one job each only in a sweep: add -m "
                            "(cbl-train -m loss.beta=0.0,0.9); a list is one value in brackets, loss.beta=[0.0,0.9]"),
    # a config group takes one option (no bracket advice); the override is quoted as typed
    (["loss=softmax,focal"], "error: loss=softmax,focal: several values run one job each only in a sweep: add -m "
                             "(cbl-train -m loss=softmax,focal)\n"),
    (["seed=range(0,2)"], "error: seed=range(0,2): several values run one job each only in a sweep: add -m "
                          "(cbl-train -m seed=range(0,2)); a list is one value in brackets, seed=[0,1]"),
])
def test_an_override_that_does_not_compose_is_one_line_exit_2_and_writes_nothing(tmp_path, args, expected):
    out = tmp_path / "outputs"
    flags = [a for a in args if a.startswith("-")]  # Hydra's parser wants its flags before the overrides
    proc = run_cli([*flags, *FAST, *[a for a in args if a not in flags], f"output_dir={out}", f"hydra.sweep.dir={out}/sweep"],
                   cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line == expected.rstrip("\n") if expected.endswith("\n") else line.startswith(expected), line  # \n: all of it
    assert "Traceback" not in proc.stderr + proc.stdout and not out.exists() and not (tmp_path / "outputs").exists()


def test_m_after_the_overrides_is_taken_as_if_it_came_first(tmp_path):
    """Hydra's parser rejects flags after overrides with its usage block; cbl-train moves -m to the front."""
    out = tmp_path / "outputs"
    proc = run_cli([*FAST, "seed=0,1", "-m", f"output_dir={out}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(list((out / "demo").glob("*/metrics.json"))) == 2


def test_hydra_full_error_still_gets_hydra_s_own_report(tmp_path):
    proc = run_cli([*FAST, "loss.bta=0.9", f"output_dir={tmp_path / 'o'}"], cwd=tmp_path,
                   env={"HYDRA_FULL_ERROR": "1"})
    assert proc.returncode == 1 and "Could not override 'loss.bta'" in proc.stderr and "Traceback" in proc.stderr


def test_missing_data_names_the_path_and_leaves_no_run_folder(tmp_path):
    proc = run_cli(["dataset=cifar100_lt", f"dataset.root={tmp_path / 'nowhere'}", "dataset.download=false",
                    "device=cpu", "wandb.mode=disabled", f"output_dir={tmp_path / 'outputs'}"], cwd=tmp_path)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: ") and str(tmp_path / "nowhere" / "cifar-100-python") in line
    assert nothing_written(tmp_path / "outputs")


def test_a_refused_run_leaves_a_previous_runs_folder_as_it_was(tmp_path):
    """A stopped run's folder (checkpoints, no metrics.json) refused without resume=true: kept, no failure recorded."""
    first = run_cli([*FAST, f"output_dir={tmp_path}"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (run_dir,) = (tmp_path / "demo").iterdir()
    (run_dir / "metrics.json").unlink()  # as if killed after its last checkpoint
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    again = run_cli([*FAST, f"output_dir={tmp_path}"], cwd=tmp_path)
    assert again.returncode == 2 and "already holds a run stopped after epoch 2; pass resume=true" in again.stderr
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before
    assert find_runs(tmp_path / "demo")[0].status == "incomplete"


def test_a_run_that_fails_after_it_started_records_why(tmp_path):
    """Divergence mid-epoch: exit 3, and the run folder's metrics.json says failed and why."""
    proc = run_cli([*FAST, "optim.lr=1e30", f"output_dir={tmp_path}"], cwd=tmp_path)
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines()[-1].startswith("error: non-finite training loss (nan) at epoch 1")
    (run,) = find_runs(tmp_path / "demo")
    assert run.status == "failed" and "non-finite training loss" in run.error


def test_a_table3_dataset_alone_is_refused_for_the_cifar_network(tmp_path):
    """dataset=inat2017 with the default model and schedule would train ResNet-32 on the CIFAR recipe."""
    proc = run_cli(["dataset=inat2017", "device=cpu", "wandb.mode=disabled", f"output_dir={tmp_path / 'outputs'}"],
                   cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == ("error: model.name='resnet32' is not allowed: ResNet-32 is the CIFAR network; inat2017 trains "
                           "ResNet-50/101/152: experiment=table3 dataset=inat2017 sets the model and the large-scale "
                           "schedule\n")
    assert nothing_written(tmp_path / "outputs")


def test_a_short_run_of_the_papers_setting_goes_to_runs_and_says_its_warmup_is_cut(tmp_path):
    """The README's smoke run (optim.epochs=2): not a paper run, so outputs/runs, not outputs/table2."""
    tiny = [o for o in tiny_cifar_overrides(tmp_path / "data", epochs=2) if not o.startswith("optim.warmup_epochs=")]
    proc = run_cli([*tiny, *QUIET, "optim.warmup_epochs=3", f"output_dir={tmp_path / 'outputs'}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in (tmp_path / "outputs").iterdir()] == ["runs"]
    (run,) = find_runs(tmp_path / "outputs" / "runs")
    assert run.status == "finished" and run.dataset == "cifar10_lt" and run.recipe_differences()
    warned = [line for line in (proc.stdout + proc.stderr).splitlines() if "is shorter than optim.warmup_epochs" in line]
    assert len(warned) == 1 and "optim.epochs=2 is shorter than optim.warmup_epochs=3" in warned[0]
