"""Read an offline wandb run back: what `wandb sync` would upload (id, config, history rows, summary).

wandb (0.19 and later: the Go `wandb-core` service) writes an offline run to `offline-run-*/run-<id>.wandb`, a
record log in the LevelDB log format: a 7-byte file header (":W&B", the magic 0xBEE1 little-endian, version 0),
then 32 KiB blocks of chunks, each a 7-byte header (CRC-32, length as uint16 little-endian, type: 1 full,
2 first, 3 middle, 4 last) and its bytes; a block's last < 7 bytes are padding.  Each reassembled record is a
`wandb.proto.wandb_internal_pb2.Record`.  wandb ships no Python reader for it, and the run's files/ folder holds
no history in offline mode, so tests and tools that check what a run logged read the log here.

A torn tail (a process killed mid-write) ends the scan; the records before it are returned.  wandb's service
writes the log asynchronously: `run.finish()` returns before the last records reach the file (about 0.1 s later),
so a reader in the same process passes `wait_s` to wait for the exit record.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
BLOCK = 32 * 1024
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: str | Path) -> Iterator[Any]:
    """The protobuf records of a .wandb file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if data[: len(HEADER)] != HEADER:
        raise ValueError(f"{path} is not a wandb transaction log (header {data[:7]!r}, expected {HEADER!r})")
    pos, parts = len(HEADER), []
    while pos + CHUNK_HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < CHUNK_HEADER:  # block trailer
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + CHUNK_HEADER])
        if kind == 0 and length == 0:  # zero padding up to the block end
            pos += left
            continue
        chunk = data[pos + CHUNK_HEADER : pos + CHUNK_HEADER + length]
        if len(chunk) < length:
            return  # torn tail
        pos += CHUNK_HEADER + length
        parts = [chunk] if kind in (FULL, FIRST) else parts + [chunk]
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(parts))
            yield record


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


@dataclass
class OfflineRun:
    """What one offline run holds."""

    path: Path
    run_id: str = ""
    project: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # one dict per logged step, "_step" included
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None

    @property
    def steps(self) -> list[int]:
        return [row["_step"] for row in self.history]


def read_offline_run(run_folder: str | Path, wait_s: float = 0.0) -> OfflineRun:
    """Read `offline-run-*/run-<id>.wandb` (the folder or the file); with `wait_s`, read again until the run's
    exit record is there or `wait_s` seconds have passed."""
    deadline = time.monotonic() + wait_s
    while True:
        run = _read(Path(run_folder))
        if run.exit_code is not None or time.monotonic() >= deadline:
            return run
        time.sleep(0.05)


def _read(run_folder: Path) -> OfflineRun:
    files = [run_folder] if run_folder.is_file() else sorted(run_folder.glob("run-*.wandb"))
    if len(files) != 1:
        raise ValueError(f"{run_folder} holds {len(files)} run-*.wandb files; expected 1")
    out = OfflineRun(path=files[0])
    for record in records(files[0]):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            out.run_id, out.project, out.group, out.job_type = r.run_id, r.project, r.run_group, r.job_type
            out.tags = list(r.tags)
            out.config.update({_key(i): json.loads(i.value_json) for i in r.config.update})
        elif kind == "config":
            out.config.update({_key(i): json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            row = {_key(i): json.loads(i.value_json) for i in record.history.item}
            row.setdefault("_step", record.history.step.num)
            out.history.append(row)
        elif kind == "summary":
            out.summary.update({_key(i): json.loads(i.value_json) for i in record.summary.update})
        elif kind == "exit":
            out.exit_code = record.exit.exit_code
    out.config.pop("_wandb", None)
    return out


def offline_runs(wandb_dir: str | Path, wait_s: float = 0.0) -> list[OfflineRun]:
    """Every offline run under a `wandb/` folder, oldest first (`wait_s`: see read_offline_run)."""
    return [read_offline_run(d, wait_s) for d in sorted(Path(wandb_dir).glob("offline-run-*")) if d.is_dir()]
