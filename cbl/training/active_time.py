"""Training time without the pauses: wall-clock seconds minus the time the process was stopped.

A run stopped with SIGSTOP / SIGTSTP (`kill -STOP`, Ctrl-Z, a queue making room for other work) and continued later
would count the pause as training time in metrics.jsonl's `seconds` and metrics.json's `wall_time_s`, which the tables
quote as the time per run.  A stopped process cannot note when it stopped, so a daemon thread notes the monotonic
clock (which keeps running while a process is stopped) every TICK seconds; two notes further apart than
TICK + SLACK mean the process was stopped for the gap less one TICK:

    active(t) = t - sum over gaps g_k > TICK + SLACK of (g_k - TICK)

A pause longer than TICK + SLACK is subtracted to within about TICK; a shorter one counts as running, and so does a
watcher merely starved of the CPU for less than SLACK (a busy machine).  A C call holding the GIL for longer than
TICK + SLACK would read as a pause; torch's kernels and torch.save release it.  A forked child starts a clock of
its own (the parent's watcher thread does not survive the fork).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

TICK = 0.25  # seconds between the watcher's notes
SLACK = 2.0  # a late note by less than this is scheduling noise, not a pause


class ActiveClock:
    """`now()`: seconds on the monotonic clock less the pauses seen so far (differences of it are active time)."""

    def __init__(self, tick: float = TICK, slack: float = SLACK, clock: Callable[[], float] = time.monotonic,
                 watch: bool = True) -> None:
        self.tick, self.slack, self._clock = tick, slack, clock
        self._paused = 0.0
        self._last = clock()
        self._lock = threading.Lock()
        if watch:
            threading.Thread(target=self._watch, name="cbl-active-clock", daemon=True).start()

    def note(self, now: float) -> None:
        """One note of the watcher at monotonic time `now` (called by its thread; a test may call it directly)."""
        with self._lock:
            self._note(now)

    def _note(self, now: float) -> None:  # with the lock held
        gap = now - self._last
        if gap > self.tick + self.slack:
            self._paused += gap - self.tick
        self._last = max(self._last, now)

    def _watch(self) -> None:
        while True:  # a daemon thread: it ends with the process
            time.sleep(self.tick)
            self.note(self._clock())

    def paused(self) -> float:
        """Seconds the process has been seen stopped since the clock started."""
        return self._read()[1]

    def now(self) -> float:
        now, paused = self._read()
        return now - paused

    def _read(self) -> tuple[float, float]:
        """The clock and the pauses up to it, from one reading: a pause that ended just now, before the watcher's
        next note, is counted, and a stop between two readings cannot be counted in one and not the other."""
        with self._lock:
            now = self._clock()
            self._note(now)
            return now, self._paused


_CLOCK: ActiveClock | None = None
_CLOCK_LOCK = threading.Lock()


def _forget_in_child() -> None:
    """After fork: the parent's clock has no watcher here (and its locks may be held by threads that are gone)."""
    global _CLOCK, _CLOCK_LOCK
    _CLOCK, _CLOCK_LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)


def active_now() -> float:
    """The process's active clock (started at the first call): use differences, like time.perf_counter()."""
    global _CLOCK
    with _CLOCK_LOCK:
        if _CLOCK is None:
            _CLOCK = ActiveClock()
    return _CLOCK.now()
