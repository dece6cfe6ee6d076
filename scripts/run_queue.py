#!/usr/bin/env python
"""Train a queue of configurations one after another (resumable), collecting each finished run's summary.

A thin wrapper, so that `python scripts/run_queue.py ...` works in a checkout (the Makefile uses it): the command is
cbl/commands/run_queue.py, installed as the console script `cbl-run-queue`; `--help` lists the options.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # use this checkout's cbl, installed or not

from cbl.commands import run_queue as _command  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return _command.main(argv, prog="run_queue.py")


if __name__ == "__main__":
    sys.exit(main())
