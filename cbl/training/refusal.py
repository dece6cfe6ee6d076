"""A run refused before it started leaves nothing in the results tree.

A run starts when it writes its first file of its own (config.yaml, cbl.training.run).  Anything that stops it
before then refuses it: a value `cbl.training.config.check` does not allow, a folder that already holds a run, missing data, no
network.  Its reason goes to stderr (cbl/train.py); no metrics.json is written (cbl.training.run.record_failure).

Hydra, though, makes the run folder before the task runs (hydra.core.utils.run_job): the folder, `.hydra/` with the
composed config, and the job's log file (train.log; train.rank<N>.log under torchrun).  `discard_unstarted` takes
these away again, the folder and its group folder when nothing else is left in them, and the folders above that
Hydra made for this run (a new output_dir: `RunFoldersMade`, a Hydra callback, notes them before Hydra makes the
folder).  A folder that holds anything more (a previous run's checkpoints, metrics or config.yaml, a log with lines it had before this job) is
left as it is: it belongs to another run.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

#: the folder Hydra writes the composed config into (hydra.output_subdir)
HYDRA_SUBDIR = ".hydra"

#: the folders that did not exist when this process's single run began (RunFoldersMade), deepest first
_made: list[Path] = []


class RunFoldersMade(Callback):
    """Notes, before Hydra makes a single run's folder with its parents, which of them do not exist yet (configs/
    train.yaml: hydra.callbacks), so that a refused run takes away a new output_dir too.  A sweep's folders are
    the sweeper's to take away (hydra_plugins/cbl_sweeper)."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        _made[:] = folders_to_make(Path(str(config.hydra.run.dir)))

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        _made.clear()  # an earlier single run's notes (in the same process) are not this sweep's


def folders_to_make(folder: Path) -> list[Path]:
    """The folders `folder.mkdir(parents=True)` would make, deepest first; absolute and normalised, as Hydra's
    hydra.runtime.output_dir (os.path.abspath), so that `discard_unstarted` compares like with like."""
    folder, made = Path(os.path.abspath(folder)), []
    while not folder.exists() and folder != folder.parent:
        made.append(folder)
        folder = folder.parent
    return made


def job_logs() -> dict[Path, int]:
    """The files the root logger writes to (Hydra's job log) and their sizes now: call it when the task begins,
    so that `discard_unstarted` can tell a log this job opened (empty then) from one a previous run wrote in."""
    sizes = {}
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            path = Path(handler.baseFilename)
            sizes[path] = path.stat().st_size if path.is_file() else 0
    return sizes


def discard_unstarted(run_dir: Path, logs_at_start: dict[Path, int], wrote_hydra_subdir: bool) -> bool:
    """Remove what Hydra wrote for a run that never started: this process's logs that were empty when the task began
    and, when it wrote `.hydra/` (rank 0 only, configs/train.yaml), that folder; then `run_dir` and its parent when
    they are left empty, and the folders above them that Hydra made for this single run (`RunFoldersMade`) when
    left empty.  Nothing is removed when `run_dir` holds anything besides `.hydra/` and log files, or when
    one of this process's logs held lines before the task began.  Returns whether `run_dir` is gone."""
    run_dir = Path(os.path.abspath(run_dir))  # as Hydra's output_dir and the log handlers' file names
    if not run_dir.is_dir():
        return True
    mine = {p for p in logs_at_start if p.parent == run_dir}
    if any(logs_at_start[p] > 0 for p in mine):
        return False  # a previous attempt of this run logged here: its folder, not this job's
    if any(not (e.name == HYDRA_SUBDIR and e.is_dir()) and not (e.suffix == ".log" and e.is_file())
           for e in run_dir.iterdir()):
        return False
    _close_handlers(mine)
    for path in mine:
        path.unlink(missing_ok=True)
    if wrote_hydra_subdir:
        shutil.rmtree(run_dir / HYDRA_SUBDIR, ignore_errors=True)
    made_above = [f for f in _made if f not in (run_dir, run_dir.parent)]
    remove_empty([run_dir, run_dir.parent, *made_above])  # other ranks' logs, or other runs, keep them
    return not run_dir.exists()


def remove_empty(folders: list[Path]) -> None:
    """Remove the folders in order, deepest first, up to the first that is not empty (it, and those above, stay)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            break


def _close_handlers(paths: set[Path]) -> None:
    """Stop logging into files about to be deleted: a handler left open would keep writing to a deleted file."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) in paths:
            root.removeHandler(handler)
            handler.close()
