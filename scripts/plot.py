#!/usr/bin/env python
"""Draw the paper's figures as PNGs.

    python scripts/plot.py --out outputs/figures                          # Figure 3 (needs no runs)
    python scripts/plot.py --out outputs/figures --runs outputs/table2    # + Figures 4 and 5 from the runs
    python scripts/plot.py --out outputs/figures --runs outputs/table2/17 --curves   # + per-run training curves

Fig. 3: the class-balanced term against n; Fig. 4: training samples per class; Fig. 5: top-1 error against
beta per loss, one PNG per (dataset, IF); --curves: lr, train loss and top-1 error against epoch for every run
under --runs (finished, failed and incomplete).  See cbl/figures.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # use this checkout's cbl, installed or not

from cbl.cli import ArgumentParser, fail  # noqa: E402
from cbl.runs import RunsError, find_runs  # noqa: E402
from cbl.tables import METRICS  # noqa: E402

PROG = "plot.py"


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for the PNGs")
    p.add_argument("--runs", help="folder searched recursively for run directories (Figures 4, 5 and --curves)")
    p.add_argument("--metric", default="top1_err", choices=list(METRICS), help="error plotted in Figure 5")
    p.add_argument("--curves", action="store_true", help="also plot the training curves of every run under --runs")
    args = p.parse_args(argv)
    if args.curves and not args.runs:
        fail(PROG, "--curves needs --runs")

    from cbl import figures  # after argument checks: importing matplotlib takes a moment

    out = Path(args.out)
    written = [figures.plot_cb_term(out / "fig3_cb_term.png")]
    if args.runs:
        try:
            runs = find_runs(args.runs)
            counts = figures.samples_per_class_data(runs)
            panels = figures.error_vs_beta_data(runs, args.metric)
            # name each curve PNG after the run's path below --runs (its own name when --runs is the run)
            names = [r.path.relative_to(args.runs).as_posix() for r in runs]
            curves = [(r, r.path.resolve().name if n == "." else n) for r, n in zip(runs, names)] if args.curves else []
            if counts:
                written.append(figures.plot_samples_per_class(out / "fig4_samples_per_class.png", counts))
            else:
                print(f"{PROG}: no samples_per_class in the runs under {args.runs}; Figure 4 skipped", file=sys.stderr)
            for (dataset, imb), series in panels.items():
                name = figures.safe_name(f"fig5_{dataset}_if{imb}") + ".png"
                written.append(figures.plot_error_vs_beta(out / name, (dataset, imb), series, args.metric))
            if not panels:
                print(f"{PROG}: no finished runs with beta > 0 under {args.runs}; Figure 5 skipped", file=sys.stderr)
            for run, rel in curves:
                if run.history():
                    written.append(figures.plot_curves(out / "curves" / (figures.safe_name(rel) + ".png"), run, rel))
        except RunsError as e:
            fail(PROG, str(e))
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
