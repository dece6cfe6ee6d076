#!/usr/bin/env python
"""Measure the JPEG settings of a CIFAR copy, or write a JPEG-lossy copy of the official CIFAR.

A thin wrapper, so that `python scripts/lossy_copy.py ...` works in a checkout (the README uses it): the
command is cbl/commands/lossy_copy.py, installed as the console script `cbl-lossy-copy`; `--help` lists the options.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # use this checkout's cbl, installed or not

from cbl.commands import lossy_copy as _command  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return _command.main(argv, prog="lossy_copy.py")


if __name__ == "__main__":
    sys.exit(main())
