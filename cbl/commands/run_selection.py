"""Which runs a command reads: the options cbl-make-table, cbl-plot and cbl-collect-runs share.

    --runs DIR [DIR ...]   folders searched recursively for run directories
    --recipe R             paper, all, or one recipe as the tables spell it (cbl.reporting.runs.select_runs)
    --where KEY=VALUE      recorded run fields (repeatable)
    --sweep "OVERRIDES"    only the runs of that multirun, e.g. "sweep=methods seed=0,1" (cbl.training.overrides.sweep_runs)
"""

from __future__ import annotations

import argparse
import shlex

from cbl.reporting.runs import Run, RunsError, find_runs_in, select_runs


def add_selection_arguments(p: argparse.ArgumentParser, recipe: str, runs_required: bool = True) -> None:
    p.add_argument("--runs", required=runs_required, nargs="+", help="folder(s) searched recursively for run directories")
    p.add_argument("--recipe", default=recipe,
                   help=f"which finished runs: paper (the paper's recipe and data), all, or one recipe as the tables "
                        f"spell it, e.g. 'precision=bf16' (default {recipe})")
    p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                   help="only runs whose recorded field KEY has VALUE, e.g. --where dataset=cifar10_lt (repeatable; "
                        "text values are shell patterns: --where 'data_source=npz:*')")
    p.add_argument("--sweep", metavar="OVERRIDES",
                   help="only the runs of this multirun, as its command line gives it: \"sweep=methods seed=0,1\"")


def selected_runs(args: argparse.Namespace, missing_ok: bool = False) -> list[Run]:
    """The runs under args.runs that args.recipe, args.where and args.sweep select (raises RunsError).  With --sweep,
    folders of several that hold none of its runs are fine: a sweep's runs land in the group their recipe names
    (table2, methods, runs: cbl.training.run_identity.run_group)."""
    missing_ok = missing_ok or bool(args.sweep and len(args.runs) > 1)
    runs = select_runs(find_runs_in(args.runs, missing_ok=missing_ok), args.recipe, args.where)
    return of_sweep(runs, args.sweep) if args.sweep else runs


def of_sweep(runs: list[Run], sweep: str) -> list[Run]:
    """The runs of the multirun `sweep` ("sweep=methods seed=0,1"), by the run names its jobs get."""
    names = sweep_names(sweep)
    return [r for r in runs if r.path.name in names]


def sweep_names(sweep: str) -> set[str]:
    """The run names of the multirun `sweep`'s jobs (one-line RunsError for a bad override or an unknown sweep)."""
    from cbl.training.overrides import sweep_runs  # Hydra: only when asked for

    try:
        return sweep_runs(shlex.split(sweep))
    except Exception as e:  # a bad override, an unknown sweep: one line
        raise RunsError(f"--sweep {sweep!r}: {str(e).splitlines()[0]}") from None
