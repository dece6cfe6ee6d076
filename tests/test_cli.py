"""`python -m cbl.train` as a user runs it: one-line errors with a non-zero exit code, readable run folders,
multirun sweeps in which a failed job does not stop the others."""

import json
import re
import subprocess
import sys

import pytest

from cbl.reporting.runs import find_runs
from tests.train_utils import ROOT, demo_overrides, read_metrics, run_cli

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


@pytest.mark.parametrize(
    "override,expected",
    [
        ("loss.beta=1.0", "loss.beta=1.0 is not allowed: beta must be a number in [0, 1)"),
        ("loss.gamma=-1", "loss.gamma=-1 is not allowed: gamma must be a finite number >= 0"),
        ("dataset.imbalance_factor=0.5", "dataset.imbalance_factor=0.5 is not allowed: must be a number >= 1"),
        ("optim.epochs=0", "optim.epochs=0 is not allowed: must be an integer > 0"),
        ("+loss.bta=0.9", "loss.bta=0.9 is not allowed: not a loss key"),
    ],
)
def test_bad_value_is_one_line_and_exit_code_2(tmp_path, override, expected):
    proc = run_cli([*FAST, override, f"output_dir={tmp_path}"], cwd=tmp_path)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: {expected}")
    assert "Traceback" not in proc.stderr + proc.stdout


def test_typo_in_a_key_and_unknown_group_option_are_rejected_by_hydra(tmp_path):
    typo = run_cli([*FAST, "loss.bta=0.9", f"output_dir={tmp_path}"], cwd=tmp_path)
    assert typo.returncode != 0 and "loss.bta" in typo.stderr and "Traceback" not in typo.stderr
    unknown = run_cli([*FAST, "loss=hinge", f"output_dir={tmp_path}"], cwd=tmp_path)
    assert unknown.returncode != 0 and "Could not find 'loss/hinge'" in unknown.stderr
    assert all(f"\t{name}\n" in unknown.stderr for name in ("focal", "sigmoid", "softmax"))  # Hydra lists them


def test_missing_data_names_the_path(tmp_path):
    proc = run_cli(["dataset=cifar100_lt", f"dataset.root={tmp_path / 'nowhere'}", "dataset.download=false",
                    "device=cpu", "wandb.mode=disabled", f"output_dir={tmp_path}"], cwd=tmp_path)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: ") and str(tmp_path / "nowhere" / "cifar-100-python") in line


def test_multirun_with_a_failing_job_finishes_the_others_and_lists_the_failure(tmp_path):
    proc = run_cli(["-m", *FAST, "loss.beta=0.0,1.0,0.9", f"output_dir={tmp_path}"], cwd=tmp_path)
    assert proc.returncode == 1  # Hydra reports the failed job after running every job
    runs = {r.path.name: r for r in find_runs(tmp_path / "demo")}
    assert len(runs) == 3
    ok = [r for r in runs.values() if r.status == "finished"]
    (bad,) = [r for r in runs.values() if r.status == "failed"]
    assert len(ok) == 2 and {r.beta for r in ok} == {0.0, 0.9}
    assert "-b1-s0-" in bad.path.name and "beta must be a number in [0, 1)" in bad.error
    assert (tmp_path / "demo" / "multirun.yaml").is_file()
    summary = json.loads((bad.path / "metrics.json").read_text())
    assert summary["status"] == "failed" and summary["epochs_completed"] == 0
    # the sweep's summary names the failed run and why, and exits 1
    listing = subprocess.run([sys.executable, str(ROOT / "scripts" / "sweep_summary.py"), str(tmp_path / "demo")],
                             capture_output=True, text=True)
    assert listing.returncode == 1
    assert "2 finished" in listing.stdout and "1 failed" in listing.stdout
    assert "loss.beta=1.0" in listing.stdout and "beta must be a number in [0, 1)" in listing.stdout
