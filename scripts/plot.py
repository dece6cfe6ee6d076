#!/usr/bin/env python
"""Draw the paper's figures as PNGs.

A thin wrapper, so that `python scripts/plot.py ...` works in a checkout (the Makefile and README use it): the
command is cbl/commands/plot.py, installed as the console script `cbl-plot`; `--help` lists the options.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # use this checkout's cbl, installed or not

from cbl.commands import plot as _command  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return _command.main(argv, prog="plot.py")


if __name__ == "__main__":
    sys.exit(main())
