"""Fault injection for the crash-safety tests: `CBL_KILL_AT=<point>:<n>` makes the process SIGKILL itself
the n-th time it reaches `<point>` ("step": after an optimizer step, "write": inside an atomic file write,
after the bytes are on disk but before the rename, "checkpoint": after a checkpoint is written, "epoch":
after an epoch's metrics are written).  `CBL_KILL_AT=<point>:<n>:TERM` sends SIGTERM instead (a scheduler's
preemption notice, which the run handles).  Unset (always, outside tests) it does nothing.

A real SIGKILL, not an exception: nothing in the process gets to clean up, exactly as with a preempted
machine or the OOM killer.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

_seen: Counter[str] = Counter()


def maybe_kill(point: str) -> None:
    spec = os.environ.get("CBL_KILL_AT")
    if not spec:
        return
    where, _, rest = spec.partition(":")
    if where != point:
        return
    count, _, name = rest.partition(":")
    _seen[point] += 1
    if _seen[point] == int(count or 1):
        os.kill(os.getpid(), getattr(signal, f"SIG{name or 'KILL'}"))
