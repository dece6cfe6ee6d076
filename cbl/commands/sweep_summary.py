"""How far has a sweep got?  Counts finished / failed / incomplete runs under a folder and lists the ones
that need attention.

    cbl-sweep-summary outputs/table2        # or, from a checkout: python scripts/sweep_summary.py outputs/table2
    cbl-sweep-summary outputs/table2 outputs/methods outputs/runs --sweep "sweep=methods optim.epochs=20"
                                            # one multirun's runs, in whichever group folder each landed

Failed runs are listed with their one-line error, incomplete ones (metrics.jsonl but no metrics.json:
preempted, killed, or still running) with the last epoch reached, how long ago they last wrote a file and how
they stopped where metrics.json says (SIGTERM, Ctrl-C), and both with their Hydra overrides when
.hydra/overrides.yaml is there (what to relaunch).  With --sweep, the jobs of the sweep that have no folder at all
(refused before they started, or not launched yet) are listed by run name too.
Exit status: 0 when every run finished (and, with --sweep, every job has one), 1 otherwise, 2 on an error (no runs,
unreadable JSON).
"""

from __future__ import annotations

import sys
import time

from cbl.cli import ArgumentParser, fail
from cbl.commands.run_selection import sweep_names
from cbl.reporting.runs import Run, RunsError, find_runs

PROG = "cbl-sweep-summary"


def _age(run: Run, now: float) -> str:
    """How long ago the run last wrote its log: tells a preempted run (hours) from a running one (minutes)."""
    files = [p for p in (run.path / "metrics.jsonl", run.path / "config.yaml") if p.is_file()]
    if not files:
        return ""
    seconds = max(0.0, now - max(p.stat().st_mtime for p in files))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f", last written {seconds / size:.0f} {unit} ago"
    return f", last written {seconds:.0f} s ago"


def summary(root: str, runs: list[Run], now: float | None = None) -> str:
    now = time.time() if now is None else now
    by = {s: [r for r in runs if r.status == s] for s in ("finished", "failed", "incomplete")}
    lines = [
        f"{root}: {len(runs)} run{'' if len(runs) == 1 else 's'}: {len(by['finished'])} finished, {len(by['failed'])} failed, "
        f"{len(by['incomplete'])} incomplete"
    ]

    def rel(r: Run) -> str:
        name = r.path.relative_to(root).as_posix()
        return str(r.path) if name == "." else name

    def extra(r: Run) -> list[str]:
        out = [f"      {r.describe()}"] if r.describe() else []
        if r.overrides is not None:
            out.append(f"      overrides: {' '.join(r.overrides)}")
        return out

    if by["failed"]:
        lines += ["", f"failed ({len(by['failed'])}):"]
        for r in by["failed"]:
            epoch = "" if r.last_epoch is None else f" (after epoch {r.last_epoch})"
            lines += [f"  {rel(r)}: {r.error or 'no reason recorded'}{epoch}", *extra(r)]
    if by["incomplete"]:
        lines += ["", f"incomplete ({len(by['incomplete'])}):"]
        for r in by["incomplete"]:
            reached = "no epoch logged" if r.last_epoch is None else f"last epoch {r.last_epoch}"
            why = f"; {r.error}" if r.error else ""  # an interrupted run's metrics.json says how it stopped
            lines += [f"  {rel(r)}: {reached}{_age(r, now)}{why}", *extra(r)]
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    p = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("roots", nargs="+", metavar="root", help="sweep folder(s), searched recursively for run directories")
    p.add_argument("--sweep", metavar="OVERRIDES",
                   help="only the runs of this multirun, as its command line gives it: \"sweep=methods seed=0,1\"; "
                        "folders holding none of them are then fine")
    args = p.parse_args(argv)
    found: dict[str, list[Run]] = {}
    try:
        names = sweep_names(args.sweep) if args.sweep else None  # the sweep's jobs, composed once
        for root in args.roots:
            try:
                found[root] = find_runs(root)
            except RunsError:
                if not args.sweep or len(args.roots) == 1:
                    raise
            if names is not None and root in found:
                found[root] = [r for r in found[root] if r.path.name in names]
        if not any(found.values()):
            raise RunsError(f"no run of --sweep {args.sweep!r} under {' '.join(args.roots)}: none of its "
                            f"{len(names)} job(s) has a run folder (refused before it started, or not launched yet)"
                            if args.sweep else f"no runs under {' '.join(args.roots)}")
    except RunsError as e:
        fail(prog, str(e))
    text = "\n\n".join(summary(root, runs) for root, runs in found.items() if runs or len(args.roots) == 1)
    have = {r.path.name for runs in found.values() for r in runs}
    missing = sorted(names - have) if names is not None else []
    if missing:
        text += (f"\n\nnot started ({len(missing)}): jobs of the sweep without a run folder (refused before they "
                 "started, or not launched yet):\n" + "\n".join(f"  {name}" for name in missing))
    print(text)
    return 0 if not missing and all(r.status == "finished" for runs in found.values() for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
