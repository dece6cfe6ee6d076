"""Draw the paper's figures as PNGs.

    cbl-plot --out outputs/figures                          # Figure 3 (needs no runs)
    cbl-plot --out outputs/figures --runs outputs/table2    # + Figures 4 and 5 from the runs
    cbl-plot --out outputs/figures --runs outputs/table2/<run> --curves   # + per-run training curves
    cbl-plot --out figs --runs benchmarks/x --recipe all --compare   # + error per epoch, per-class accuracy
    python scripts/plot.py --out outputs/figures            # the same, from a checkout

Fig. 3: the class-balanced term against n; Fig. 4: training samples per class; Fig. 5: top-1 error against
beta per loss, one PNG per (dataset, IF); --compare: test error per epoch and per-class accuracy against the
training count, one line per configuration, and from the runs' saved predictions the reliability diagrams (one
panel per configuration) and the class-balanced gain against the imbalance factor with its bootstrap interval
(cbl/reporting/comparison_figures.py); --curves: lr, train loss and top-1 error against epoch for every run
under --runs (finished, failed and incomplete).  Figures use the finished runs of one recipe (--recipe, default
the paper's, as the README tables), never a mix of recipes or data sources.  See cbl/reporting/figures.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cbl.cli import ArgumentParser, fail
from cbl.commands.run_selection import add_selection_arguments, selected_runs
from cbl.reporting.runs import RunsError, find_runs_in, one_vote
from cbl.reporting.table_parts import METRICS, group_by, schedule_labels

PROG = "cbl-plot"


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    p = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for the PNGs")
    # Figures 4, 5, --compare and --curves read runs; by default those of the README tables; all: they must share one
    add_selection_arguments(p, recipe="paper", runs_required=False)
    p.add_argument("--metric", default="top1_err", choices=list(METRICS), help="error plotted in Figure 5")
    p.add_argument("--compare", action="store_true",
                   help="also test error per epoch and per-class accuracy against training count, one line per "
                        "configuration, one PNG each per (dataset, IF); reliability diagrams and the class-balanced "
                        "gain against IF where the runs saved predictions")
    p.add_argument("--curves", action="store_true", help="also plot the training curves of every run under --runs")
    args = p.parse_args(argv)
    if (args.curves or args.compare) and not args.runs:
        fail(prog, "--curves and --compare need --runs")
    if args.runs and not any(Path(r).is_dir() for r in args.runs):  # one missing folder of several is fine
        fail(prog, f"{' '.join(args.runs)} is not a directory" if len(args.runs) == 1 else
             f"none of {' '.join(args.runs)} is a directory")

    from cbl.reporting import figures  # after argument checks: importing matplotlib takes a moment

    out = Path(args.out)
    fig3 = out / "fig3_cb_term.png"  # drawn once the runs are checked: a refused selection leaves nothing behind
    written = [] if args.runs else [figures.plot_cb_term(fig3)]
    if args.runs:
        try:
            # folders that do not exist (yet: outputs/table3 before any Table 3 run) add nothing
            runs = selected_runs(args, missing_ok=True)
            if not runs and not find_runs_in(args.runs, missing_ok=True):  # (runs of another recipe: Figure 3 only)
                fail(prog, f"no run folders under {' '.join(args.runs)}; Figure 3 alone needs no --runs")
            finished, _ = one_vote([r for r in runs if r.status == "finished"])  # as the tables count them
            if any(r.multilabel for r in finished):  # the figures plot errors and accuracies, not mAP
                print(f"{prog}: {sum(r.multilabel for r in finished)} multi-label run(s) left out: the figures are "
                      "single-label (make_table --table multilabel tabulates them)", file=sys.stderr)
                finished = [r for r in finished if not r.multilabel]
            recipes = sorted({", ".join(r.recipe_differences()) for r in finished})
            if len(recipes) > 1:  # one figure never averages runs of different recipes or data
                fail(prog, f"the runs under {' '.join(args.runs)} have {len(recipes)} recipes "
                           f"({'; '.join(r or 'paper' for r in recipes)}): pick one with --recipe")
            for dataset, rs in group_by(finished, lambda r: (str(r.dataset),)).items():
                labels = sorted(schedule_labels(r.schedule() for r in rs).values())
                if len(labels) > 1:  # nor runs of different schedules (datasets without a paper recipe)
                    fail(prog, f"the {dataset[0]} runs under {' '.join(args.runs)} have {len(labels)} schedules "
                               f"({'; '.join(labels)}): pick one with --where, e.g. --where {_where_one_schedule(rs)}")
            note = f"not the paper's setting: {recipes[0]}" if recipes and recipes[0] else ""
            written.append(figures.plot_cb_term(fig3))
            counts = figures.samples_per_class_data(finished)
            panels = figures.error_vs_beta_data(finished, args.metric)
            if counts:
                written.append(figures.plot_samples_per_class(out / "fig4_samples_per_class.png", counts))
            else:
                print(f"{prog}: no finished runs with samples_per_class selected; Figure 4 skipped", file=sys.stderr)
            for (dataset, imb), series in panels.items():
                name = figures.safe_name(f"fig5_{dataset}_if{imb}") + ".png"
                written.append(figures.plot_error_vs_beta(out / name, (dataset, imb), series, args.metric, note))
            if not panels:
                print(f"{prog}: no finished runs with beta > 0 selected; Figure 5 skipped", file=sys.stderr)
            if args.compare:
                for (dataset, imb), series in figures.error_per_epoch_data(finished).items():
                    name = figures.safe_name(f"error_per_epoch_{dataset}_if{imb}") + ".png"
                    written.append(figures.plot_error_per_epoch(out / name, (dataset, imb), series, note))
                for (dataset, imb), series in figures.per_class_accuracy_data(finished).items():
                    name = figures.safe_name(f"per_class_accuracy_{dataset}_if{imb}") + ".png"
                    written.append(figures.plot_per_class_accuracy(out / name, (dataset, imb), series, note))
                written += comparison_figures(out, finished, args.metric, note)
            for run in runs if args.curves else []:
                rel = _relative_name(run, args.runs)
                if run.history():
                    written.append(figures.plot_curves(out / "curves" / (figures.safe_name(rel) + ".png"), run, rel))
        except RunsError as e:
            fail(prog, str(e))
    for path in written:
        print(path)
    return 0


def comparison_figures(out: Path, finished, metric: str, note: str) -> list[Path]:
    """Reliability diagrams and the class-balanced gain against IF, from the runs' saved predictions."""
    from cbl.reporting import comparison_figures as cf
    from cbl.reporting.figures import safe_name

    written = [cf.plot_reliability(out / (safe_name(f"reliability_{dataset}_if{imb}") + ".png"), (dataset, imb), s, note)
               for (dataset, imb), s in cf.reliability_data(finished).items()]
    for dataset, d in cf.gain_vs_if_data(finished, metric).items():
        written.append(cf.plot_gain_vs_if(out / (safe_name(f"gain_vs_if_{dataset}") + ".png"), dataset, d, note))
    return written


def _relative_name(run, roots: list[str]) -> str:
    """The run's path below the --runs folder that holds it (its own name when that folder is the run)."""
    for root in roots:
        try:
            rel = run.path.resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            continue
        return run.path.resolve().name if rel == "." else rel
    return run.path.name


def _where_one_schedule(runs: list) -> str:
    """A --where condition that keeps one of the runs' schedules: a schedule key whose recorded value (what --where
    compares, not the label's lr after the linear scaling rule) differs among them, with the first run's value."""
    from cbl.training.recipes import SCHEDULE_KEYS

    for key in sorted(SCHEDULE_KEYS, key=lambda k: k == "lr"):  # lr last: its recorded value is not the one shown
        values = [r.config.get(key) for r in runs]
        if len({str(v) for v in values}) > 1:
            return f"{key}={str(values[0]).replace(' ', '')}"
    return "epochs=..."  # (runs told apart only by what a schedule label shows)


if __name__ == "__main__":
    sys.exit(main())
