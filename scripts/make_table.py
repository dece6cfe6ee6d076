#!/usr/bin/env python
"""Make the paper's tables from run directories, with the published numbers side by side.

A thin wrapper, so that `python scripts/make_table.py ...` works in a checkout (the Makefile and README use it): the
command is cbl/commands/make_table.py, installed as the console script `cbl-make-table`; `--help` lists the options.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # use this checkout's cbl, installed or not

from cbl.commands import make_table as _command  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return _command.main(argv, prog="make_table.py")


if __name__ == "__main__":
    sys.exit(main())
