"""Weights & Biases tracking that can never stop training.

Every call into wandb goes through `Tracker`, which turns any failure (no network, a bad API key, a full or
read-only disk under the run's wandb folder, a crash of wandb's service process) into one warning and then
stops calling wandb for the rest of the run.  The run directory's own files (metrics.jsonl, metrics.json)
remain the source of truth; wandb is a view of them.

Default mode is "offline" (no network needed; `wandb sync <run>/wandb/offline-run-*` uploads later),
"disabled" turns wandb off, "online" logs live.  Runs are grouped by dataset and imbalance factor and carry
loss/beta/gamma/model/seed as top-level config keys, so a dashboard can group and compare them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

WANDB_MODES = ("online", "offline", "disabled")


class Tracker:
    def __init__(
        self,
        *,
        mode: str,
        project: str,
        run_dir: str | os.PathLike,
        name: str,
        group: str | None = None,
        job_type: str | None = None,
        tags: list[str] | None = None,
        config: dict[str, Any] | None = None,
        entity: str | None = None,
        run_id: str | None = None,
        init_timeout: float = 60.0,
    ) -> None:
        if mode not in WANDB_MODES:
            raise ValueError(f"wandb.mode must be one of {', '.join(WANDB_MODES)}; got {mode!r}")
        self.run = None
        self.mode = mode
        if mode == "disabled":
            return
        try:
            import wandb  # imported here: it is slow to import and unused when disabled

            os.environ.setdefault("WANDB_SILENT", "true")
            self.run = wandb.init(
                project=project,
                entity=entity,
                name=name,
                group=group,
                job_type=job_type,
                tags=tags,
                config=config,
                dir=str(Path(run_dir)),
                mode=mode,
                id=run_id,
                resume="allow" if run_id else None,
                # create_new (wandb's default outside notebooks, spelt out): a model bank (cbl/bank.py) keeps one run
                # per member open side by side in one process
                settings=wandb.Settings(init_timeout=init_timeout, silent=True, console="off", reinit="create_new"),
            )
        except BaseException as e:  # wandb raises its own errors, OSError, even SystemExit from its service
            if isinstance(e, KeyboardInterrupt):
                raise
            self._disable("init", e)

    @property
    def active(self) -> bool:
        return self.run is not None

    @property
    def run_id(self) -> str | None:
        return self.run.id if self.run is not None else None

    def _disable(self, what: str, error: BaseException) -> None:
        log.warning("wandb %s failed (%s: %s); training goes on without wandb", what, type(error).__name__, error)
        self.run = None

    def _call(self, what: str, fn, *args, **kwargs) -> None:
        if self.run is None:
            return
        try:
            fn(*args, **kwargs)
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                raise
            self._disable(what, e)

    def log(self, data: dict[str, Any], step: int) -> None:
        self._call("log", lambda: self.run.log(data, step=step))

    def summary(self, data: dict[str, Any]) -> None:
        self._call("summary", lambda: self.run.summary.update(data))

    def finish(self, exit_code: int = 0) -> None:
        """Always mark the run finished (failed runs with a non-zero exit code)."""
        run, self.run = self.run, None
        if run is None:
            return
        try:
            run.finish(exit_code=exit_code)
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                raise
            log.warning("wandb finish failed (%s: %s)", type(e).__name__, e)
