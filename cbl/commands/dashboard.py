"""Save a W&B workspace that compares the losses of a project's runs (Table 2 view, error per epoch, beta / gamma
sweep, many vs few-shot and per-class accuracy).

    cbl-dashboard --project cbl [--entity ME] [--sweep table2] [--dataset cifar10_lt] [--if 100]
    python scripts/dashboard.py --project cbl --filter 'Config("loss") == "focal"' --json outputs/dashboard.json --dry-run
    make dashboard DASHBOARD_ARGS="--entity me --sweep table2"

The workspace is always built; --json writes its spec, --print prints it, --dry-run stops there.  Saving needs a W&B
API key (`wandb login`) and the network: without them the command says so in one line (exit status 2).  The
panels are described in cbl/reporting/dashboard.py and docs/dashboards.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cbl.cli import ArgumentParser, fail
from cbl.reporting.dashboard import DashboardError, Selection, build_workspace, save_workspace, workspace_spec

PROG = "cbl-dashboard"


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--project", default="cbl", help="W&B project of the runs (wandb.project; default cbl)")
    p.add_argument("--entity", default="", help="W&B user or team (default: the API key's)")
    p.add_argument("--sweep", help="only runs of this sweep (the config's name: table2, table3, methods, ...)")
    p.add_argument("--dataset", help="only runs on this dataset (e.g. cifar10_lt)")
    p.add_argument("--if", dest="imbalance_factor", type=float, help="only runs with this imbalance factor")
    p.add_argument("--filter", help="only runs matching this W&B filter expression, e.g. 'Config(\"loss\") == \"focal\"'")
    p.add_argument("--name", help="the workspace's name (default: cbl: losses compared (<selection>))")
    p.add_argument("--json", help="write the workspace spec (the view W&B stores) to this file")
    p.add_argument("--print", action="store_true", help="print the workspace spec")
    p.add_argument("--dry-run", action="store_true", help="build (and --json / --print) the workspace, do not save it")
    args = p.parse_args(argv)

    selection = Selection(sweep=args.sweep, dataset=args.dataset, imbalance_factor=args.imbalance_factor,
                          filter=args.filter)  # fmt: skip
    try:
        workspace = build_workspace(args.entity, args.project, selection, name=args.name)
        if args.json or args.print:
            text = json.dumps(workspace_spec(workspace), indent=2)
            if args.json:
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(text + "\n", encoding="utf-8")
            if args.print:
                print(text)
        if args.dry_run:  # on stderr: with --print, stdout is the spec alone
            written = f", its spec in {args.json}" if args.json else ""
            print(f"{prog}: dry run: workspace {workspace.name!r} built{written}, not saved; it shows the runs where "
                  f"{selection.expression()}", file=sys.stderr)
            return 0
        url = save_workspace(workspace)
    except DashboardError as e:
        fail(prog, str(e))
    print(f"saved workspace {workspace.name!r}: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
