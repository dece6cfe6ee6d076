"""Training time leaves out the time the process was stopped (cbl/training/active_time.py): a run paused with
`kill -STOP` and continued reports the seconds it trained, not the seconds the clock on the wall moved."""

import os
import signal
import subprocess
import sys
import time

from cbl.training.active_time import ActiveClock
from tests.train_utils import ROOT


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_gap_between_notes_longer_than_tick_plus_slack_is_a_pause_less_one_tick():
    clock = FakeClock()
    active = ActiveClock(tick=0.25, slack=2.0, clock=clock, watch=False)
    for _ in range(8):  # a running process: a note every tick, some late by less than the slack
        clock.t += 0.25
        active.note(clock.t)
    clock.t += 1.9  # late, but within the slack: scheduling noise, not a pause
    active.note(clock.t)
    assert active.paused() == 0.0 and active.now() == clock.t
    clock.t += 60.25  # stopped for a minute
    active.note(clock.t)
    assert active.paused() == 60.0 and active.now() == clock.t - 60.0
    active.note(clock.t)  # the same moment noted twice (watcher and reader) is not a second pause
    assert active.paused() == 60.0


def test_a_pause_is_seen_by_the_reader_before_the_watcher_notes_it():
    clock = FakeClock()
    active = ActiveClock(tick=0.25, slack=2.0, clock=clock, watch=False)
    clock.t += 30.25
    assert active.now() == clock.t - 30.0


def test_a_process_stopped_with_sigstop_does_not_count_the_pause():
    """A real process, its real watcher thread: 1 s of sleep around a 4 s SIGSTOP reads about 1 s."""
    code = ("import sys, time\n"
            "from cbl.training.active_time import active_now\n"
            "start, wall = active_now(), time.monotonic()\n"
            "print('ready', flush=True)\n"
            "sys.stdin.readline()\n"
            "print(round(active_now() - start, 2), round(time.monotonic() - wall, 2), flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        proc.send_signal(signal.SIGSTOP)
        time.sleep(4.0)
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.5)
        out, _ = proc.communicate("go\n", timeout=60)
    finally:
        proc.kill()
    active, wall = map(float, out.split())
    assert wall >= 5.0 and active < wall - 3.0, (active, wall)


def test_a_forked_child_keeps_its_own_clock():
    """The parent's watcher thread does not survive a fork: the child's sleep must not read as a pause."""
    from cbl.training.active_time import active_now

    active_now()  # the parent's clock and watcher exist before the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: 3 s of sleep are 3 s of active time
        start = active_now()
        time.sleep(3.0)
        os.write(write, f"{active_now() - start:.2f}".encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert 2.9 <= float(os.read(read, 64)) <= 3.5
