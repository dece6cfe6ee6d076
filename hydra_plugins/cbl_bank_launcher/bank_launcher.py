"""`hydra/launcher=bank`: a sweep's jobs that differ only in the loss train together, K networks in one bank.

    python -m cbl.train sweep=table2_focal hydra/launcher=bank [hydra.launcher.max_members=15] device=cuda

Every job first goes through Hydra's own `run_job` with a task that only records its config and folder, so
each run folder gets exactly what the basic launcher gives it (the override-named folder, .hydra/config.yaml,
hydra.yaml, overrides.yaml).  The jobs are then grouped by `cbl.training.bank.bank_key` (everything but the loss equal)
into banks of at most `max_members`, in sweep order, and each bank is trained by `cbl.training.bank.train_bank`; a job
that fits no bank (another model, a group of one) runs through the real task function, as the basic launcher
would run it.  A failed member is a failed job, with its one line as the task would print it; a member refused before
it started leaves no folder, as a refused run (cbl.training.refusal).  SIGTERM / Ctrl-C stop the sweep.  The log of a bank goes to
<sweep dir>/bank_<first job number>.log and the console.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, open_dict

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction

log = logging.getLogger(__name__)


class _Job:
    # a plain class: Hydra executes plugin modules outside sys.modules, where @dataclass cannot resolve annotations
    def __init__(self, index: int, overrides: list[str], sweep_config: DictConfig) -> None:
        self.index, self.overrides, self.sweep_config = index, overrides, sweep_config
        self.cfg: DictConfig | None = None  # the task's config, as the task function would receive it
        self.run_dir: Path | None = None
        self.logs: dict[Path, int] = {}  # the job's log files when its folder was made (cbl.training.refusal)
        self.ret: JobReturn | None = None


class BankLauncher(Launcher):
    def __init__(self, max_members: int = 25) -> None:
        super().__init__()
        if isinstance(max_members, bool) or not isinstance(max_members, int) or max_members < 1:
            raise ValueError(f"hydra.launcher.max_members={max_members!r} is not allowed: a positive integer")
        self.max_members = max_members
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from cbl.training.bank import bank_key  # imported late: Hydra imports every plugin at start-up

        setup_globals()
        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        jobs = [self._prepare(initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)]

        groups: dict[str | None, list[list[_Job]]] = {}
        for job in jobs:
            key = bank_key(job.cfg)
            chunks = groups.setdefault(key, [[]])
            if key is None or len(chunks[-1]) == self.max_members:
                chunks.append([])
            chunks[-1].append(job)
        banks = sorted((c for chunks in groups.values() for c in chunks if c), key=lambda c: c[0].index)
        log.info("Launching %d jobs as %d bank(s) of at most %d", len(jobs), len(banks), self.max_members)
        for bank in banks:
            if len(bank) == 1:
                self._run_alone(bank[0])
            else:
                self._run_bank(bank, sweep_dir)
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return [job.ret for job in jobs]

    # ------------------------------------------------------------------ steps
    def _prepare(self, index: int, overrides: list[str]) -> _Job:
        """Hydra's run_job with a task that only records the config and folder (and writes .hydra/)."""
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = index
            sweep_config.hydra.job.num = index
        job = _Job(index, overrides, sweep_config)

        def record(cfg: DictConfig) -> None:
            from cbl.training.refusal import job_logs

            job.cfg, job.run_dir, job.logs = cfg, Path(HydraConfig.get().runtime.output_dir), job_logs()

        job.ret = run_job(hydra_context=self.hydra_context, task_function=record, config=sweep_config,
                          job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")  # fmt: skip
        return job

    def _run_alone(self, job: _Job) -> None:
        log.info("\t#%d : %s", job.index, " ".join(filter_overrides(job.overrides)))
        job.ret = run_job(hydra_context=self.hydra_context, task_function=self.task_function, config=job.sweep_config,
                          job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")  # fmt: skip

    def _run_bank(self, bank: list[_Job], sweep_dir: Path) -> None:
        from cbl.training.bank import train_bank
        from cbl.training.failures import report_job
        from cbl.training.refusal import discard_unstarted

        for job in bank:
            log.info("\t#%d : %s", job.index, " ".join(filter_overrides(job.overrides)))
        handler = logging.FileHandler(sweep_dir / f"bank_{bank[0].index}.log")
        handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
        logging.getLogger().addHandler(handler)
        try:
            results: list = train_bank([j.cfg for j in bank], [j.run_dir for j in bank])
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # the whole bank failed (missing data, say): every member's job failed
            log.error("bank of jobs %s failed: %s", ", ".join(str(j.index) for j in bank), e)
            results = [e] * len(bank)
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()
        for job, result in zip(bank, results):
            failed = isinstance(result, BaseException)
            job.ret.status = JobStatus.FAILED if failed else JobStatus.COMPLETED
            job.ret._return_value = result  # what JobReturn.return_value returns, or raises for a failed job
            if failed:
                discard_unstarted(job.run_dir, job.logs, job.sweep_config.hydra.output_subdir is not None)
                report_job(job.index, job.run_dir.name, result)
