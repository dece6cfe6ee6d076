"""Sweeps through Hydra launcher plugins: joblib and submitit_local run the jobs of a multirun in other
processes into the same configuration-named folders as the basic launcher; a submitit job with two tasks trains
with DDP (what hydra/launcher=slurm_ddp does on a cluster); a sweep under torchrun runs its jobs one after the
other on all processes; the SLURM launcher configs render the sbatch script they promise."""

from __future__ import annotations

import os
import stat

import pytest
import submitit
from hydra.utils import instantiate
from omegaconf import OmegaConf

from cbl.training.config import run_name
from cbl.reporting.runs import find_runs
from tests.train_utils import compose_cfg, demo_overrides, read_metrics, run_cli, run_torchrun

SWEEP = [*demo_overrides(epochs=2), "device=cpu", "loss.beta=0.0,0.999"]
# the folders the basic launcher gives these two jobs: named by their configuration (tests/test_run_names.py)
FOLDERS = {run_name(OmegaConf.to_container(compose_cfg(*demo_overrides(epochs=2), "device=cpu", f"loss.beta={b}"),
                                           resolve=True)) for b in ("0.0", "0.999")}  # fmt: skip


def finished_runs(sweep_dir):
    runs = {r.path.name: r for r in find_runs(sweep_dir)}
    assert set(runs) == FOLDERS
    assert all(r.status == "finished" for r in runs.values()), {n: r.error for n, r in runs.items()}
    return {name: read_metrics(sweep_dir / name) for name in runs}


@pytest.mark.slow
def test_joblib_launcher_runs_the_jobs_in_parallel_processes(tmp_path):
    proc = run_cli(["-m", *SWEEP, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"output_dir={tmp_path}"],
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout
    metrics = finished_runs(tmp_path / "demo")
    assert {m["world_size"] for m in metrics.values()} == {1}
    assert (tmp_path / "demo" / "multirun.yaml").is_file()


@pytest.mark.slow
def test_a_failed_job_in_another_process_is_one_line_and_the_sweep_goes_on(tmp_path):
    """The job's error comes back from the joblib worker (pickled with the task's result): one line, a summary, exit 2."""
    proc = run_cli(["-m", *demo_overrides(epochs=1), "device=cpu", "loss.beta=0.0,1.0", "hydra/launcher=joblib",
                    "hydra.launcher.n_jobs=2", f"output_dir={tmp_path}"], cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 2 and lines[0].startswith("error: job #1 ") and "loss.beta=1.0 is not allowed" in lines[0]
    assert lines[1].startswith("error: 1 of 2 jobs failed: #1")
    (run,) = find_runs(tmp_path / "demo")
    assert run.status == "finished"


@pytest.mark.slow
def test_submitit_local_launcher_runs_jobs_and_two_task_jobs_train_with_ddp(tmp_path):
    """Two jobs of two tasks each: submitit starts the tasks, cbl.training.distributed maps them to RANK / WORLD_SIZE."""
    proc = run_cli(["-m", *SWEEP, "hydra/launcher=submitit_local", "hydra.launcher.tasks_per_node=2",
                    "hydra.launcher.timeout_min=10", f"output_dir={tmp_path}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep_dir = tmp_path / "demo"
    metrics = finished_runs(sweep_dir)
    assert {m["world_size"] for m in metrics.values()} == {2}
    for name in FOLDERS:
        assert (sweep_dir / name / "train.rank1.log").is_file() and (sweep_dir / name / ".hydra").is_dir()
    logs = list((sweep_dir / ".submitit").glob("*/*_1_log.out"))  # task 1 of each job
    assert len(logs) == 2 and all("global_rank=1(2)" in p.read_text() for p in logs)


def test_sweep_under_torchrun_runs_each_job_on_every_process(tmp_path):
    """The Table 3 sweep on one node: torchrun --nproc_per_node=8 -m cbl.train sweep=table3_... (here 2 CPU processes)."""
    proc = run_torchrun(["-m", *SWEEP, f"output_dir={tmp_path}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = finished_runs(tmp_path / "demo")
    assert {m["world_size"] for m in metrics.values()} == {2}
    assert proc.stdout.count("Launching 2 jobs locally") == 1  # rank 1's Hydra prints warnings only


@pytest.fixture
def fake_srun(tmp_path, monkeypatch):
    """submitit's SLURM executor only checks that `srun` exists before it writes an sbatch script."""
    srun = tmp_path / "bin" / "srun"
    srun.parent.mkdir()
    srun.write_text("#!/bin/sh\nexit 1\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{srun.parent}{os.pathsep}{os.environ['PATH']}")


def sbatch_script(tmp_path, *overrides: str) -> str:
    """The sbatch script hydra-submitit-launcher would submit for this config (its launch() parameter mapping)."""
    cfg = compose_cfg(*overrides, f"output_dir={tmp_path}", return_hydra_config=True)
    launcher = instantiate(cfg.hydra.launcher)
    params = dict(launcher.params)
    executor = submitit.AutoExecutor(folder=params.pop("submitit_folder"), cluster="slurm",
                                     slurm_max_num_timeout=params.pop("max_num_timeout"))
    base = set(OmegaConf.structured(submitit_base_conf()).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    return executor._executor._make_submission_file_text("python -u -m submitit.core._submit x", "uid")


def submitit_base_conf():
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    return BaseQueueConf


def test_slurm_launcher_configs_render_the_documented_sbatch_script(tmp_path, fake_srun):
    table2 = sbatch_script(tmp_path, "sweep=table2_focal", "hydra/launcher=slurm", "hydra.launcher.partition=gpu")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --ntasks-per-node=1",
                 "#SBATCH --cpus-per-task=4", "#SBATCH --mem=16GB", "#SBATCH --time=240",
                 "#SBATCH --signal=USR2@120", "#SBATCH --job-name=cbl-table2", "export SUBMITIT_EXECUTOR=slurm"):
        assert line in table2, line
    assert str(tmp_path / "table2" / ".submitit") in table2

    table3 = sbatch_script(tmp_path, "sweep=table3_cb_focal", "hydra/launcher=slurm_ddp")
    for line in ("#SBATCH --gpus-per-node=8", "#SBATCH --ntasks-per-node=8", "#SBATCH --nodes=1",
                 "#SBATCH --cpus-per-task=10", "#SBATCH --time=2880", "#SBATCH --job-name=cbl-table3"):
        assert line in table3, line
