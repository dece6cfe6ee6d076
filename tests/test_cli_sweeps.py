"""`python -m cbl.train -m ...` when jobs fail: every job runs, each failed one gets the line its single run would
print (naming the job), the sweep a one-line summary and an exit status (cbl/training/failures.py); a job refused
before it started leaves no folder, one that failed after it started records why."""

import subprocess
import sys

from cbl.reporting.runs import find_runs
from tests.train_utils import ROOT, demo_overrides, run_cli

FAST = [*demo_overrides(epochs=2), "deterministic=true"]


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error: ")]


def test_a_bad_value_in_one_job_fails_that_job_alone_with_one_line(tmp_path):
    proc = run_cli(["-m", *FAST, "loss.beta=0.0,1.0,0.9,abc", f"output_dir={tmp_path}"], cwd=tmp_path)
    assert proc.returncode == 2  # every failure was bad input: what the single run exits with
    assert "Traceback" not in proc.stderr + proc.stdout and "Error executing job" not in proc.stderr
    runs = {r.path.name: r for r in find_runs(tmp_path / "demo")}
    assert len(runs) == 2 and all(r.status == "finished" for r in runs.values())
    assert {r.beta for r in runs.values()} == {0.0, 0.9}
    one, abc, summary = error_lines(proc)
    assert one.startswith("error: job #1 digits_lt-if10-small_cnn-softmax-b1-s0-")
    assert one.endswith(": loss.beta=1.0 is not allowed: beta must be a number in [0, 1)")
    assert abc.startswith("error: job #3 digits_lt-if10-small_cnn-softmax-babc-s0-")
    assert abc.endswith(": loss.beta='abc' is not allowed: beta must be a number in [0, 1)")
    assert summary == "error: 2 of 4 jobs failed: #1, #3 (each one's line above names its run and why)"
    # the refused jobs left no folder: the sweep's summary counts the two runs that trained
    listing = subprocess.run([sys.executable, str(ROOT / "scripts" / "sweep_summary.py"), str(tmp_path / "demo")],
                             capture_output=True, text=True)
    assert listing.returncode == 0 and "2 runs: 2 finished, 0 failed, 0 incomplete" in listing.stdout


def test_missing_data_fails_every_job_with_its_path_and_leaves_no_run_folder(tmp_path):
    proc = run_cli(["-m", "seed=0,1", "dataset.download=false", f"dataset.root={tmp_path / 'nowhere'}", "device=cpu",
                    "wandb.mode=disabled", f"output_dir={tmp_path / 'outputs'}"], cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    *jobs, summary = error_lines(proc)
    assert [line.split(" ")[2] for line in jobs] == ["#0", "#1"]
    assert all(str(tmp_path / "nowhere" / "cifar-10-batches-py") in line for line in jobs)
    assert summary.startswith("error: 2 of 2 jobs failed: #0, #1")
    # no job started: no run folder, and Hydra's multirun.yaml and the folders made for it are gone too
    assert not (tmp_path / "outputs").exists()


def test_a_refused_sweep_puts_back_the_multirun_yaml_of_the_sweep_before_it(tmp_path):
    group = tmp_path / "outputs" / "table2"
    group.mkdir(parents=True)
    (group / "multirun.yaml").write_text("the sweep that trained the runs here\n")
    proc = run_cli(["-m", "seed=0,1", "dataset.download=false", f"dataset.root={tmp_path / 'nowhere'}", "device=cpu",
                    "wandb.mode=disabled", f"output_dir={tmp_path / 'outputs'}"], cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2 and len(error_lines(proc)) == 3
    assert [p.name for p in group.iterdir()] == ["multirun.yaml"]
    assert (group / "multirun.yaml").read_text() == "the sweep that trained the runs here\n"


def test_mixed_failures_exit_1_and_a_diverged_job_records_why(tmp_path):
    proc = run_cli(["-m", *FAST, "optim.lr=0.1,1e30", "loss.beta=0.0,1.0", f"output_dir={tmp_path}"], cwd=tmp_path)
    assert proc.returncode == 1  # bad input (exit 2 alone) and divergence (exit 3 alone)
    lines = error_lines(proc)
    assert len(lines) == 4 and lines[-1].startswith("error: 3 of 4 jobs failed: #1, #2, #3")
    assert any("non-finite training loss" in line for line in lines)
    (finished,) = [r for r in find_runs(tmp_path / "demo") if r.status == "finished"]
    (diverged,) = [r for r in find_runs(tmp_path / "demo") if r.status == "failed"]
    assert finished.beta == diverged.beta == 0.0 and "non-finite training loss" in diverged.error


def test_a_sweep_whose_jobs_all_started_and_failed_keeps_its_multirun_yaml(tmp_path):
    """Every job diverged after it started: their folders record why, and the sweep's record stays beside them."""
    proc = run_cli(["-m", *demo_overrides(epochs=1), "optim.lr=1e30", "seed=0,1", f"output_dir={tmp_path}"], cwd=tmp_path)
    assert proc.returncode == 3 and error_lines(proc)[-1].startswith("error: 2 of 2 jobs failed"), proc.stderr
    assert [r.status for r in find_runs(tmp_path / "demo")] == ["failed", "failed"]
    assert (tmp_path / "demo" / "multirun.yaml").is_file()


def test_a_sweep_of_finished_jobs_exits_0_with_no_error_line(tmp_path):
    proc = run_cli(["-m", *demo_overrides(epochs=1), "seed=0,1", f"output_dir={tmp_path}"], cwd=tmp_path)
    assert proc.returncode == 0 and not error_lines(proc), proc.stderr


def test_multirun_and_cfg_together_are_one_line(tmp_path):
    proc = run_cli(["-m", "loss.beta=0.9,0.99", "--cfg", "job"], cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: --multirun (-m) and --cfg cannot be used together: --cfg shows the config of one run")
