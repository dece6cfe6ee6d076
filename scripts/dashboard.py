#!/usr/bin/env python
"""Save a W&B workspace that compares the losses of a project's runs.

A thin wrapper, so that `python scripts/dashboard.py ...` works in a checkout (the Makefile and README use it): the
command is cbl/commands/dashboard.py, installed as the console script `cbl-dashboard`; `--help` lists the options.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # use this checkout's cbl, installed or not

from cbl.commands import dashboard as _command  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return _command.main(argv, prog="dashboard.py")


if __name__ == "__main__":
    sys.exit(main())
