"""How `python -m cbl.train` reports a run or a sweep job that failed: one line on stderr, and its exit status.

    single run    error: <reason>                              exit 2: bad input (a value, a key, missing data, a
                                                               folder that holds a run), 3: divergence
                  stopped: <reason>                            exit 143 on SIGTERM, 130 on Ctrl-C: the run is kept
                                                               as interrupted and resume=true continues it
    sweep job     error: job #<n> <run name>: <reason>          the sweep goes on with the other jobs
    sweep end     error: 2 of 4 jobs failed: #1, #3 (each one's line above names its run and why)
                  exit 0 when every job finished; 2 (3) when every failed job failed for bad input (divergence);
                  1 otherwise (mixed reasons, or a job that crashed, whose traceback is printed above its line)

<reason> is the same text in both: a job of a sweep fails with the line its single run would print.  The per-job
lines come from the task (cbl/train.py) as each job fails; the summary and the status from the sweeper
(hydra_plugins/cbl_sweeper), which sees every job's result whichever launcher ran it.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus

from cbl.training.engine import DivergenceError
from cbl.training.run import USER_ERRORS, Preempted

#: set on an exception whose line was printed when its job failed, so that the sweep's end does not print it again
REPORTED = "cbl_reported"
#: the most failed jobs the summary names
NAMED = 20

_last_sweep_status: int | None = None


#: a run stopped from outside: (exit status, as a shell reports a process killed by that signal)
STOPS = ((Preempted, 128 + 15), (KeyboardInterrupt, 128 + 2))


def stop_status(error: BaseException) -> int | None:
    """143 for a run stopped by SIGTERM, 130 for Ctrl-C, None for any other error."""
    return next((status for kind, status in STOPS if isinstance(error, kind)), None)


def exit_status(error: BaseException) -> int:
    """3 for divergence, 2 for other bad input (cbl.training.run.USER_ERRORS), 1 for anything else."""
    if isinstance(error, DivergenceError):
        return 3
    return 2 if isinstance(error, USER_ERRORS) else 1


def reason(error: BaseException) -> str:
    """The error's one line: its message for bad input, with the exception's type for anything else."""
    text = str(error) if isinstance(error, USER_ERRORS) else f"{type(error).__name__}: {error}"
    return (text.strip().splitlines() or [type(error).__name__])[0]


def report_job(num: int, run_name: str, error: BaseException) -> None:
    """The failed job's line (after its traceback, when the failure is not bad input, a crash being a bug to look
    at, or when HYDRA_FULL_ERROR=1 asks for every traceback)."""
    if getattr(error, REPORTED, False):
        return
    if not isinstance(error, USER_ERRORS) or os.environ.get("HYDRA_FULL_ERROR") == "1":
        traceback.print_exception(error, file=sys.stderr)
    print(f"error: job #{num} {run_name}: {reason(error)}", file=sys.stderr, flush=True)
    try:
        setattr(error, REPORTED, True)
    except AttributeError:  # an exception type without a __dict__
        pass


def job_identity(job: JobReturn) -> tuple[int, str]:
    """(job number, run name) of a job's result: the number Hydra logged it with, and its run folder's name."""
    runtime = job.hydra_cfg.hydra
    return int(runtime.job.num), Path(str(runtime.runtime.output_dir)).name


def report_sweep(jobs: Sequence[JobReturn]) -> int:
    """Print the line of each failed job not yet reported and, when any failed, the summary; return (and keep for
    `last_sweep_status`) the sweep's exit status."""
    global _last_sweep_status
    failed = []
    for job in jobs:
        if job.status == JobStatus.FAILED:
            num, name = job_identity(job)
            report_job(num, name, job._return_value)
            failed.append((num, name, job._return_value))
    _last_sweep_status = sweep_status([error for _, _, error in failed])
    if failed:
        named = ", ".join(f"#{num}" for num, _, _ in failed[:NAMED])
        more = f" and {len(failed) - NAMED} more" if len(failed) > NAMED else ""
        print(f"error: {len(failed)} of {len(jobs)} jobs failed: {named}{more} (each one's line above names its run "
              f"and why)", file=sys.stderr, flush=True)
    return _last_sweep_status


def sweep_status(errors: Sequence[BaseException]) -> int:
    """0 without failures; the single-run status every failure shares (2 bad input, 3 divergence); else 1."""
    statuses = {exit_status(e) for e in errors}
    if not statuses:
        return 0
    return statuses.pop() if len(statuses) == 1 else 1


def last_sweep_status() -> int | None:
    """The exit status of the sweep this process ran (None when it ran none): what `cbl-train -m ...` exits with."""
    return _last_sweep_status
