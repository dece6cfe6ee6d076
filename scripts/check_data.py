#!/usr/bin/env python
"""Decode every image a run of a dataset would read and list the damaged ones.

A thin wrapper, so that `python scripts/check_data.py ...` works in a checkout (the Makefile uses it): the
command is cbl/commands/check_data.py, installed as the console script `cbl-check-data`; `--help` lists the options.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # use this checkout's cbl, installed or not

from cbl.commands import check_data as _command  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return _command.main(argv, prog="check_data.py")


if __name__ == "__main__":
    sys.exit(main())
