"""`hydra/sweeper=cbl`, what `python -m cbl.train -m ...` sweeps with (configs/train.yaml): Hydra's basic sweeper (the
same grid of jobs from the command line and `hydra.sweeper.params`, the same batches, any launcher), except at a
failed job.  The basic sweeper ends the sweep with the first failed job's traceback and exit status 1; this one runs
every job, then prints one line per failed job not reported yet and a summary, and leaves the sweep's exit status
for `cbl.train.cli` (cbl/training/failures.py says which).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class _KeepGoing:
    """The sweep's launcher, keeping every job's result; the sweeper gets a failed job as completed (its value the
    exception), since BasicSweeper raises the first failure after each batch and so would end the sweep there."""

    def __init__(self, launcher) -> None:
        self.launcher = launcher
        self.results: list[JobReturn] = []

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        results = self.launcher.launch(job_overrides, initial_job_idx=initial_job_idx)
        self.results.extend(results)
        handed = []
        for result in results:
            if result.status == JobStatus.FAILED:
                result = copy.copy(result)
                result.status = JobStatus.COMPLETED
            handed.append(result)
        return handed


class CblSweeper(BasicSweeper):
    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.launcher = _KeepGoing(self.launcher)

    def sweep(self, arguments: list[str]):
        from cbl.training.failures import report_sweep  # imported late: Hydra imports every plugin at start-up

        returns = super().sweep(arguments)
        report_sweep(self.launcher.results)
        return returns
