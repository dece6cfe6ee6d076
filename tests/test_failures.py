"""The lines and exit statuses of failed runs and sweep jobs (cbl/training/failures.py); through the CLI in
tests/test_cli.py and tests/test_cli_sweeps.py."""

import pytest

from cbl.training.config import ConfigError
from cbl.training.engine import DivergenceError
from cbl.training.failures import exit_status, report_job, sweep_status


@pytest.mark.parametrize("errors,status", [
    ([], 0), ([ConfigError("x")], 2), ([FileNotFoundError("x"), ValueError("y")], 2), ([DivergenceError("x")], 3),
    ([DivergenceError("x"), ConfigError("y")], 1), ([RuntimeError("x")], 1),
])  # fmt: skip
def test_a_sweep_exits_as_its_runs_would_when_its_failures_agree(errors, status):
    assert sweep_status(errors) == status
    assert all(exit_status(e) in (1, 2, 3) for e in errors)


def raised(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as e:  # noqa: BLE001 - the test wants the exception with its traceback
        return e


def test_a_job_is_reported_once_with_a_traceback_only_for_a_crash(capsys):
    bad_input, crash = raised(ConfigError("loss.beta=1.0 is not allowed: beta must be a number in [0, 1)")), raised(
        RuntimeError("CUDA error: out of memory\nmore detail"))
    for error in (bad_input, crash, bad_input, crash):
        report_job(3, "run-name", error)
    err = capsys.readouterr().err
    assert err.count("error: job #3 run-name: loss.beta=1.0 is not allowed: beta must be a number in [0, 1)\n") == 1
    assert err.count("error: job #3 run-name: RuntimeError: CUDA error: out of memory\n") == 1
    assert err.count("Traceback (most recent call last)") == 1 and "more detail" in err


def test_a_single_run_stopped_by_sigterm_says_so_in_one_line_and_resumes(tmp_path):
    """A preemption notice (SIGTERM after the first epoch) ends a single run with one line and exit 143, the run
    kept as interrupted; resume=true then finishes it."""
    from tests.train_utils import demo_overrides, read_metrics, run_cli

    args = [*demo_overrides(epochs=2), f"output_dir={tmp_path / 'out'}"]
    stopped = run_cli(args, cwd=tmp_path, env={"CBL_KILL_AT": "epoch:1:TERM"})
    assert stopped.returncode == 143, stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert stopped.stderr.splitlines()[-1] == ("stopped: stopped by SIGTERM; resume=true goes on from its "
                                               "newest checkpoint (from the start if none was written)")
    (run_dir,) = (tmp_path / "out").glob("*/*")
    assert read_metrics(run_dir)["status"] == "interrupted"
    resumed = run_cli([*args, "resume=true"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert read_metrics(run_dir)["status"] == "finished" and read_metrics(run_dir)["epochs_completed"] == 2


def test_a_sweep_stopped_by_sigterm_ends_there_with_one_line(tmp_path):
    """SIGTERM in a sweep's first job stops the sweep (exit 143), not only that job: the job is kept as interrupted,
    the next one never starts, and resume=true runs both."""
    from tests.train_utils import demo_overrides, read_metrics, run_cli

    args = ["-m", *demo_overrides(epochs=2), "seed=0,1", f"output_dir={tmp_path / 'out'}"]
    stopped = run_cli(args, cwd=tmp_path, env={"CBL_KILL_AT": "epoch:1:TERM"})
    assert stopped.returncode == 143, stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert stopped.stderr.splitlines()[-1] == ("stopped: stopped by SIGTERM; resume=true goes on from its newest "
                                               "checkpoint (from the start if none was written); the sweep's other jobs "
                                               "did not run (resume=true runs them)")
    runs = [d for d in (tmp_path / "out").glob("*/*") if (d / "metrics.json").is_file()]
    assert len(runs) == 1 and read_metrics(runs[0])["status"] == "interrupted"
    resumed = run_cli([*args, "resume=true"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    runs = [d for d in (tmp_path / "out").glob("*/*") if (d / "metrics.json").is_file()]
    assert len(runs) == 2 and all(read_metrics(d)["status"] == "finished" for d in runs)
