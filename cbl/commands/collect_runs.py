"""Copy the summaries of finished runs (config.yaml, metrics.json, metrics.jsonl, .hydra/overrides.yaml and the saved
test predictions, cbl/training/predictions.py; never checkpoints or wandb files) into a folder meant to be committed, each under its run name (cbl.training.run_identity.run_name of
its config.yaml, the folder `python -m cbl.train` gives that configuration), wherever the run was written.

    cbl-collect-runs --runs outputs/table2 --to benchmarks/evidence_lossy --recipe all \\
        --where precision=bf16 --where 'data_source=npz:cifar10_jpeg_lossy.npz@*'

The copies are complete run directories for cbl.reporting.runs: tables and figures made from the folder show the
same numbers as from the runs themselves.  A configuration has one copy however often and from wherever it is
collected (a run under hydra.run.dir=..., the same configuration from a sweep): collecting again overwrites it with
the run's current files, and two runs of one configuration in one selection are an error.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from cbl.cli import ArgumentParser, fail
from cbl.commands.run_selection import add_selection_arguments, selected_runs
from cbl.training.run_identity import recorded_run_name
from cbl.reporting.runs import RunsError, read_config_yaml

PROG = "cbl-collect-runs"
#: the files that describe a finished run; everything else (checkpoints, wandb/, logs) stays behind
SUMMARY_FILES = ("config.yaml", "metrics.json", "metrics.jsonl", ".hydra/overrides.yaml", "predictions_last.npz",
                 "predictions_best.npz")


def copy_name(run_dir: Path) -> str:
    """The run name of the run in run_dir, read from its config.yaml (cbl.reporting.runs.read_config_yaml)."""
    try:
        return recorded_run_name(read_config_yaml(run_dir))
    except (RunsError, ValueError) as e:
        raise RunsError(f"cannot name the run in {run_dir} from its config.yaml: {e}") from None


def collect(runs, to: Path) -> list[Path]:
    """Copy each finished run's summary files to to/<run name>; the folders written."""
    names = {r.path: copy_name(r.path) for r in runs}
    seen: dict[str, Path] = {}
    for path, name in names.items():
        if name in seen:
            raise RunsError(f"{seen[name]} and {path} are one configuration ({name}); select one with --runs or --where")
        seen[name] = path
    written = []
    for r in runs:
        dest = to / names[r.path]
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
