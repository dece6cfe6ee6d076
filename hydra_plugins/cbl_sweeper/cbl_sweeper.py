"""`hydra/sweeper=cbl`, what `python -m cbl.train -m ...` sweeps with (configs/train.yaml): Hydra's basic sweeper (the
same grid of jobs from the command line and `hydra.sweeper.params`, the same batches, any launcher), except at a
failed job.  The basic sweeper ends the sweep with the first failed job's traceback and exit status 1; this one runs
every job, then prints one line per failed job not reported yet and a summary, and leaves the sweep's exit status
for `cbl.train.cli` (cbl/training/failures.py says which).  A sweep none of whose jobs started (every one refused:
cbl/training/refusal.py) leaves nothing either: the basic sweeper's multirun.yaml is taken away again, or the one a
previous sweep left in that folder put back, and the folders it made for it are removed.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from pathlib import Path

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

        kept = _SweepFolder(Path(self.config.hydra.sweep.dir))
        returns = super().sweep(arguments)
        report_sweep(self.launcher.results)
        if not any(_started(r, kept.since) for r in self.launcher.results):
            kept.restore()
        return returns


def _started(result: JobReturn, since: float) -> bool:
    """Whether the job's run started: it wrote its config.yaml, its first file (cbl.training.run), during the sweep."""
    config = _run_folder(result) / "config.yaml"
    return result.status == JobStatus.COMPLETED or (config.is_file() and config.stat().st_mtime >= since)


def _run_folder(result: JobReturn) -> Path:
    """The job's run folder: hydra.runtime.output_dir (the basic and bank launchers set it).  Not `working_dir`: with
    hydra.job.chdir false (configs/train.yaml) that is the folder the command was launched from."""
    try:
        return Path(str(result.hydra_cfg.hydra.runtime.output_dir))
    except AttributeError:  # a launcher that returns no Hydra config with its result
        return Path(result.working_dir or "")


class _SweepFolder:
    """The sweep folder as it was before the basic sweeper wrote its multirun.yaml there, to put back."""

    MULTIRUN = "multirun.yaml"

    def __init__(self, folder: Path) -> None:
        from cbl.training.refusal import folders_to_make  # imported late: Hydra imports every plugin at start-up

        self.folder, self.since = folder, time.time() - 1.0  # a second early: coarse file-system clocks
        file = folder / self.MULTIRUN
        self.previous = file.read_bytes() if file.is_file() else None
        self.made = folders_to_make(folder)  # what the basic sweeper's mkdir(parents=True) will make, deepest first

    def restore(self) -> None:
        file = self.folder / self.MULTIRUN
        if self.previous is not None:
            file.write_bytes(self.previous)
            return
        from cbl.training.refusal import remove_empty

        file.unlink(missing_ok=True)
        remove_empty(self.made)  # only when empty: a refused job's folder is gone already (cbl.training.refusal)
