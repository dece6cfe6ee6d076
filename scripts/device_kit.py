#!/usr/bin/env python
"""The device kit: build it here, run it on a lent GPU machine, ingest what it brings back.

A thin wrapper, so that `python3 scripts/device_kit.py ...` works in a checkout (the Makefile uses it, and the device
machine runs it): the command is cbl/commands/device_kit.py, which imports only the standard library until Hydra is
on the path; `--help` lists the options.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # use this checkout's cbl, installed or not

from cbl.commands import device_kit as _command  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return _command.main(argv, prog="device_kit.py")


if __name__ == "__main__":
    sys.exit(main())
