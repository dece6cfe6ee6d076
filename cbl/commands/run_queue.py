"""Train a list of configurations one after another, each resumable, and keep each finished run's summary: the queue
behind `make evidence-queue` (long CPU runs that outlive a working session).

    cbl-run-queue benchmarks/evidence_queue.txt --base "sweep=evidence_lossy" --to benchmarks/evidence_lossy

The queue file holds one configuration per line, as `cbl-train` overrides added to --base (`#` starts a comment):

    loss=softmax loss.beta=0.0 precision=fp32
    dataset.imbalance_factor=1 loss=softmax loss.beta=0.0

In file order, each line's runs (cbl.training.overrides.sweep_runs names them) are
  * skipped when --to already holds a finished summary of every one of them (committed evidence is never retrained),
  * else trained by `python -m cbl.train <base> resume=true <line>`, which continues a stopped run from its newest
    checkpoint and returns at once for a finished one, and then
  * collected: the finished runs' summaries are copied into --to (cbl.commands.collect_runs, predictions included).
A failed line is reported and the queue goes on; the exit status is 1 when any line failed, 0 otherwise.  A line
stopped from outside (SIGTERM or Ctrl-C: `cbl-train` exits 143 or 130, or dies by the signal) stops the queue too,
with that status, since whoever stopped it wants the machine back.  Run it again after an interruption: it picks
up where it stopped.  --dry-run prints what it would do.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cbl.cli import ArgumentParser, fail
from cbl.commands.collect_runs import collect
from cbl.reporting.runs import RunsError, find_runs

PROG = "cbl-run-queue"


@dataclass
class Entry:
    """One line of a queue file: its number, its overrides and the runs it names."""

    line: int
    overrides: list[str]
    names: set[str]


def read_queue(path: Path, base: list[str]) -> list[Entry]:
    """The queue file's configurations, each named (one-line RunsError on a line Hydra cannot compose)."""
    from cbl.training.overrides import sweep_runs  # Hydra: only once there is a queue to read

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RunsError(f"cannot read the queue file {path}: {e.strerror}") from None
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        overrides = shlex.split(raw, comments=True)
        if not overrides:
            continue
        try:
            names = sweep_runs(base + overrides)
        except Exception as e:  # an unknown key or group, a value Hydra cannot parse: name the line
            raise RunsError(f"{path}:{number}: {' '.join(overrides)}: {str(e).splitlines()[0]}") from None
        entries.append(Entry(number, overrides, names))
    if not entries:
        raise RunsError(f"{path} holds no configuration (one line of cbl-train overrides per run)")
    return entries


def finished_in(folder: Path, name: str) -> bool:
    """Whether folder/name holds a finished run's metrics.json."""
    try:
        return json.loads((folder / name / "metrics.json").read_text(encoding="utf-8")).get("status") == "finished"
    except (OSError, ValueError, AttributeError):
        return False


#: the exit statuses of a `cbl-train` stopped from outside (cbl.training.failures.STOPS), and of a process killed
#: by SIGTERM / SIGINT as subprocess reports it (minus the signal number)
STOPPED = {143: 143, 130: 130, -15: 143, -2: 130}


class Stopped(Exception):
    """A line was stopped from outside: the queue stops with its exit status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def run_entry(entry: Entry, base: list[str], runs: Path, to: Path) -> bool:
    """Train one line's runs (resumable) and collect the finished ones; True when all of them finished.  Raises
    Stopped, after collecting, when the line was stopped from outside."""
    command = [sys.executable, "-m", "cbl.train", *base, "resume=true", *entry.overrides]
    print(f"[queue] line {entry.line}: {shlex.join(command[1:])}", flush=True)
    start = time.perf_counter()
    code = subprocess.call(command)
    done = [r for r in find_runs(runs) if r.path.name in entry.names and r.status == "finished"] if runs.is_dir() else []
    if done:
        collect(done, to)
    ok = code == 0 and len(done) == len(entry.names)
    hours = (time.perf_counter() - start) / 3600
    state = "finished" if ok else "stopped" if code in STOPPED else f"FAILED (exit status {code})"
    print(f"[queue] line {entry.line}: {state} after {hours:.2f} h; {len(done)}/{len(entry.names)} run(s) collected "
          f"into {to}", flush=True)
    if code in STOPPED:
        raise Stopped(STOPPED[code])
    return ok


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    p = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("queue", help="a file with one line of cbl-train overrides per configuration")
    p.add_argument("--base", default="", help="overrides every line starts from, e.g. \"sweep=evidence_lossy\"")
    p.add_argument("--runs", default="outputs/table2", help="where the runs are written (default outputs/table2)")
    p.add_argument("--to", required=True, help="folder the finished runs' summaries are copied into")
    p.add_argument("--dry-run", action="store_true", help="print each line's runs and whether they are done")
    args = p.parse_args(argv)
    base, runs, to = shlex.split(args.base), Path(args.runs), Path(args.to)
    try:
        entries = read_queue(Path(args.queue), base)
    except RunsError as e:
        fail(prog, str(e))
    failed = []
    for entry in entries:
        if all(finished_in(to, name) for name in entry.names):
            print(f"[queue] line {entry.line}: done ({', '.join(sorted(entry.names))} in {to})", flush=True)
            continue
        if args.dry_run:
            print(f"[queue] line {entry.line}: to train: {' '.join(entry.overrides)} -> {', '.join(sorted(entry.names))}")
            continue
        try:
            if not run_entry(entry, base, runs, to):
                failed.append(entry.line)
        except RunsError as e:  # a summary that cannot be collected: the next line still trains
            print(f"[queue] line {entry.line}: FAILED: {e}", flush=True)
            failed.append(entry.line)
        except Stopped as e:
            print(f"{prog}: stopped at line {entry.line} (exit status {e.status}); run the queue again to continue "
                  f"where it stopped", file=sys.stderr)
            return e.status
    if failed:
        print(f"{prog}: {len(failed)} of {len(entries)} line(s) failed: {', '.join(map(str, failed))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
