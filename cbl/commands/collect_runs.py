"""Copy the summaries of finished runs (config.yaml, metrics.json, metrics.jsonl, .hydra/overrides.yaml; never
checkpoints or wandb files) into a folder meant to be committed, keeping each run's folder name.

    cbl-collect-runs --runs outputs/table2 --to benchmarks/evidence_lossy --recipe all \\
        --where precision=bf16 --where 'data_source=npz:cifar10_jpeg_lossy.npz@*'

The copies are complete run directories for cbl.reporting.runs: tables and figures made from the folder show the same numbers
as from the runs themselves.  A run already collected is overwritten only when its metrics.json differs.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from cbl.cli import ArgumentParser, fail
from cbl.reporting.runs import RunsError, find_runs_in, select_runs

PROG = "cbl-collect-runs"
#: the files that describe a finished run; everything else (checkpoints, wandb/, logs) stays behind
SUMMARY_FILES = ("config.yaml", "metrics.json", "metrics.jsonl", ".hydra/overrides.yaml")


def collect(runs, to: Path) -> list[Path]:
    """Copy each finished run's summary files to to/<run folder name>; the folders written."""
    names = [r.path.name for r in runs]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise RunsError(f"two selected runs share the folder name {clash[0]}; select fewer runs with --where")
    written = []
    for r in runs:
        dest = to / r.path.name
        for name in SUMMARY_FILES:
            src = r.path / name
            if src.is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest / name)
        written.append(dest)
    return written


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    p = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", required=True, nargs="+", help="folder(s) searched recursively for run directories")
    p.add_argument("--to", required=True, help="folder to copy the summaries into")
    p.add_argument("--recipe", default="all", help="paper, all (default) or one recipe, as make_table --recipe")
    p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                   help="only runs whose recorded field KEY has VALUE (repeatable), as make_table --where")
    args = p.parse_args(argv)
    try:
        runs = [r for r in select_runs(find_runs_in(args.runs), args.recipe, args.where) if r.status == "finished"]
        if not runs:
            raise RunsError(f"no finished run under {' '.join(args.runs)} matches the selection")
        for dest in collect(runs, Path(args.to)):
            print(dest)
    except RunsError as e:
        fail(prog, str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
