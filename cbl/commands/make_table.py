"""Make the paper's tables from run directories, with the published numbers side by side.

    cbl-make-table --runs outputs/table2 --table 2 [--out outputs/tables/table2.md] [--readme README.md]
    cbl-make-table --runs outputs/table3 --table 3 --all-rows   # every paper row, "—" until run
    python scripts/make_table.py --runs outputs/demo --table methods [--marker demo]   # the same, from a checkout

--runs takes several folders; --recipe paper keeps the runs that may fill the paper's cells (its recipe, float32,
the official data), --where KEY=VALUE filters on the recorded run fields (cbl.reporting.runs.select_runs).
--table 2: Table 2 (ResNet-32, long-tailed CIFAR); 3: Table 3 (iNat 2017/2018, ILSVRC 2012); methods: any runs
grouped by (dataset, IF, model, method, loss, beta, gamma, settings beyond the paper), e.g. `make compare-methods`;
precision: bf16 against float32 runs of the same configuration, paired by seed (`make precision-check`); gain: each
class-balanced configuration against softmax and its own loss at beta 0, paired by seed, with 95 % paired-bootstrap
intervals over the test images; selection: the CB best chosen on the whole test set against the one chosen on one half
and scored on the other (both from the runs' saved predictions, cbl/reporting/comparisons.py); status: what has been
reproduced so far, on what data (cbl/reporting/status.py); attribution: where the softmax gap to the paper goes (the
copy at IF 1, bf16 against float32, the seed spread; cbl/reporting/attribution.py); multilabel: mAP and the mAP of
the head / medium / tail classes of multi-label runs, --metric picking the last or the best epoch's (docs/multilabel.md).
The table is always printed; --out also writes it, --readme replaces the text between <!-- cbl:NAME:start -->
and <!-- cbl:NAME:end --> (NAME: table2, table3, or the --table name, or --marker).  Failed and incomplete runs
are left out and listed by folder and status, never with their error text (it would land in the README); `make
sweep-status` (cbl-sweep-summary) says why each stopped.  See cbl/reporting/tables.py (the tables, one module each).

--wandb-project also logs the table to W&B as a run of job type "table" (a wandb.Table, rows as printed, and the
--figure images), so the dashboard (`make dashboard`) shows the README's numbers; offline by default (`wandb sync
<wandb-dir>/table-NAME/wandb/offline-run-*` uploads it), --wandb-mode online logs it live.  See cbl/reporting/table_run.py.
"""

from __future__ import annotations

import datetime
import shlex
import sys
from pathlib import Path

from cbl.cli import ArgumentParser, fail, invocation
from cbl.commands.run_selection import add_selection_arguments, selected_runs
from cbl.reporting.readme import MarkerError, update_file
from cbl.reporting.runs import RunsError
from cbl.reporting.table_parts import METRICS
from cbl.reporting.table_run import TableRunError, log_table
from cbl.reporting.tables import BUILDERS, TableError, make_table

PROG = "cbl-make-table"


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--table", required=True, choices=list(BUILDERS), help="which table")
    # --recipe all: tables 2 and 3 give each recipe a table of its own
    add_selection_arguments(p, recipe="all")
    p.add_argument("--metric", default="top1_err", choices=list(METRICS),
                   help="the top-1 number: top1_err (last epoch, as in the paper; default) or best_top1_err")  # fmt: skip
    p.add_argument("--out", help="also write the Markdown table to this file")
    p.add_argument("--readme", help="replace the marked section of this Markdown file")
    p.add_argument("--marker", help="section name in the --readme markers (default: table2, table3, or the --table name)")
    p.add_argument("--all-rows", action="store_true",
                   help="tables 2 and 3: every row of the paper, with — where there is no run yet (no runs is fine)")
    p.add_argument("--wandb-project", help="also log the table (and --figure images) to this W&B project")
    p.add_argument("--wandb-mode", default="offline", choices=["offline", "online"],
                   help="offline (default; `wandb sync` uploads later) or online")
    p.add_argument("--wandb-entity", help="W&B entity (user or team); default: yours")
    p.add_argument("--wandb-dir", default="outputs/tables", help="folder for the offline run (default outputs/tables)")
    p.add_argument("--figure", action="append", default=[], help="an image to log with the table (repeatable)")
    args = p.parse_args(argv)
    if args.figure and not args.wandb_project:
        p.error("--figure is logged to W&B: pass --wandb-project too")
    for figure in args.figure:  # before anything is written
        if not Path(figure).is_file():
            fail(prog, f"--figure {figure} does not exist")

    try:
        runs = selected_runs(args, missing_ok=args.all_rows)
        markdown, used = make_table(args.table, runs, args.metric, all_rows=args.all_rows)
    except (RunsError, TableError) as e:
        fail(prog, str(e))
    command = shlex.join([*invocation(prog), *argv])
    markdown += (
        f"\n\n_Generated by `{command}` from {len(runs)} run directories ({len(used)} finished runs in the table) "
        f"on {datetime.date.today().isoformat()}._"
    )
    name = args.marker or (f"table{args.table}" if args.table.isdigit() else args.table)
    if args.readme:  # first, so that missing markers fail before anything is written
        try:
            update_file(args.readme, name, markdown)
        except MarkerError as e:
            fail(prog, str(e))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(markdown + "\n", encoding="utf-8")
    print(markdown)
    if args.wandb_project:  # last: the table is written whatever wandb does
        try:
            run_id = log_table(
                markdown, name=name, project=args.wandb_project, mode=args.wandb_mode, entity=args.wandb_entity,
                wandb_dir=args.wandb_dir, figures=args.figure,
                config={"runs": [str(r) for r in args.runs], "metric": args.metric, "command": command},
            )
        except TableRunError as e:
            fail(prog, f"the table was written but not logged to W&B: {e}")
        print(f"\nlogged to W&B project {args.wandb_project} ({args.wandb_mode}) as run {run_id}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
