"""Checkpoints that survive SIGKILL and disk corruption.

One checkpoint per epoch, `<run>/checkpoints/epoch_0007.pt`, holding a single dict (model, optimizer,
scheduler, epoch, RNG states, metric history); the newest `keep_checkpoints` are kept, and with `keep_best=true`
the best-top-1 epoch's too.  Writing is atomic: the bytes go to a temporary file in the
same folder, are fsync'ed, and the file is renamed into place (a rename within a filesystem is atomic), then
the folder is fsync'ed so the rename itself survives a power cut.  A reader therefore sees either the old set
of checkpoints or the new one, never a half-written file under a final name.

Corruption after the fact (a truncated copy, a flipped bit) is caught on load: `torch.save` writes a zip
archive with a CRC-32 per record, and `zipfile.testzip` re-reads every record and checks it (`torch.load`
itself does not check CRCs and would return silently wrong tensors).  The newest checkpoint that verifies
is used; the corrupt ones are reported.
"""

from __future__ import annotations

import logging
import os
import re
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch

from cbl.training.faults import maybe_kill

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^epoch_(\d+)\.pt$")


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file that cannot be trusted (truncated, bad CRC, unreadable)."""


def checkpoint_path(run_dir: str | os.PathLike, epoch: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"epoch_{epoch:04d}.pt"


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """(epoch, path) of every checkpoint under a final name, newest first (temporary files are ignored)."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found, reverse=True)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some filesystems (and Windows) do not allow opening a directory
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call `write(file)` on a temporary file beside `path`, fsync it and rename it to `path`, so that
    `path` holds either its old content or the complete new content, even after SIGKILL or a power cut."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            maybe_kill("write")  # crash tests: die with the bytes written but not yet renamed
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only left when write() failed (disk full, ...)
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


def save_checkpoint(state: dict[str, Any], run_dir: str | os.PathLike, epoch: int, keep: int = 2,
                    keep_epoch: int | None = None) -> Path:
    """Atomically write the checkpoint of `epoch`, then delete all but the newest `keep` checkpoints and the one of
    `keep_epoch` (the best epoch, with `keep_best=true`), which stays whatever its age."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1; got {keep}")
    path = atomic_write(checkpoint_path(run_dir, epoch), lambda f: torch.save(state, f))
    for old_epoch, old in list_checkpoints(run_dir)[keep:]:
        if old_epoch != keep_epoch:
            old.unlink(missing_ok=True)
    for stale in path.parent.glob(".epoch_*.pt.tmp-*"):  # left behind by a killed writer
        stale.unlink(missing_ok=True)
    return path


def best_epoch(history: list[dict[str, Any]]) -> int | None:
    """The evaluated epoch with the lowest top-1 error, for a multi-label run the highest mAP (the first of ties, as
    metrics.json's best_epoch), or None."""
    evaluated = [r for r in history if r.get("top1_err") is not None]
    if evaluated:
        return min(evaluated, key=lambda r: r["top1_err"])["epoch"]
    scored = [r for r in history if r.get("map") is not None]
    return max(scored, key=lambda r: r["map"])["epoch"] if scored else None


def verify_checkpoint(path: str | os.PathLike) -> None:
    """Raise CorruptCheckpointError unless every record of the archive is present with a matching CRC."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise CorruptCheckpointError(f"checkpoint {path} is unreadable ({type(e).__name__}: {e})") from e
    if bad is not None:
        raise CorruptCheckpointError(f"checkpoint {path} is corrupt (CRC mismatch in record {bad})")


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Verify, then load.  weights_only=True: a checkpoint holds tensors and plain Python values only."""
    verify_checkpoint(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a structurally valid archive with content torch cannot read
        raise CorruptCheckpointError(f"checkpoint {path} cannot be loaded ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or "epoch" not in state:
        raise CorruptCheckpointError(f"checkpoint {path} is not a cbl checkpoint (no 'epoch' entry)")
    return state


def load_latest_checkpoint(run_dir: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any] | None:
    """The newest checkpoint that verifies, or None when there is none.  Corrupt ones are logged and skipped."""
    for _, path in list_checkpoints(run_dir):
        try:
            state = load_checkpoint(path, map_location)
        except CorruptCheckpointError as e:
            log.warning("%s; falling back to the previous checkpoint", e)
            continue
        state["path"] = str(path)
        return state
    return None
