#!/usr/bin/env python
"""Copy the summaries of finished runs (never checkpoints) into a folder meant to be committed.

A thin wrapper, so that `python scripts/collect_runs.py ...` works in a checkout (the Makefile and README use it): the
command is cbl/commands/collect_runs.py, installed as the console script `cbl-collect-runs`; `--help` lists the options.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # use this checkout's cbl, installed or not

from cbl.commands import collect_runs as _command  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return _command.main(argv, prog="collect_runs.py")


if __name__ == "__main__":
    sys.exit(main())
