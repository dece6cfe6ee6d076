#!/usr/bin/env python
"""How far has a sweep got? Finished / failed / incomplete runs under a folder.

A thin wrapper, so that `python scripts/sweep_summary.py ...` works in a checkout (the Makefile and README use it): the
command is cbl/commands/sweep_summary.py, installed as the console script `cbl-sweep-summary`; `--help` lists the options.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # use this checkout's cbl, installed or not

from cbl.commands import sweep_summary as _command  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return _command.main(argv, prog="sweep_summary.py")


if __name__ == "__main__":
    sys.exit(main())
