"""Copy the summaries of finished runs (config.yaml, metrics.json, metrics.jsonl, .hydra/overrides.yaml; never
checkpoints or wandb files) into a folder meant to be committed, keeping each run's folder name.

    cbl-collect-runs --runs outputs/table2 --to benchmarks/evidence_lossy --recipe all \\
        --where precision=bf16 --where 'data_source=npz:cifar10_jpeg_lossy.npz@*'

The copies are complete run directories for cbl.reporting.runs: tables and figures made from the folder show the
same numbers as from the runs themselves.  Collecting again overwrites the copies with the runs' current files.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from cbl.cli import ArgumentParser, fail
from cbl.commands.run_selection import add_selection_arguments, selected_runs
from cbl.reporting.runs import RunsError

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
    p.add_argument("--to", required=True, help="folder to copy the summaries into")
    add_selection_arguments(p, recipe="all")
    args = p.parse_args(argv)
    try:
        runs = [r for r in selected_runs(args) if r.status == "finished"]
        if not runs:
            raise RunsError(f"no finished run under {' '.join(args.runs)} matches the selection")
        for dest in collect(runs, Path(args.to)):
            print(dest)
    except RunsError as e:
        fail(prog, str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
