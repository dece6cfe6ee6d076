#!/usr/bin/env python
"""Training throughput of ResNet-32 on long-tailed CIFAR-10: the standard PyTorch recipe vs this project's path.

A thin wrapper, so that `python scripts/bench.py ...` works in a checkout (the Makefile and README use it): the
command is cbl/commands/bench.py, installed as the console script `cbl-bench`; `--help` lists the options.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # use this checkout's cbl, installed or not

from cbl.commands import bench as _command  # noqa: E402
from cbl.commands.bench import *  # noqa: E402,F403  (`import bench` from scripts/ sees the module's names)


def main(argv: list[str] | None = None) -> int:
    return _command.main(argv, prog="bench.py")


if __name__ == "__main__":
    sys.exit(main())
