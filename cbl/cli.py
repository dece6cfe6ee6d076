"""Small helpers shared by the commands (cbl/commands/, the console scripts cbl-*, and their thin wrappers in
scripts/): one-line errors with exit status 2, and the command line a user typed."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block): `prog: error: message`, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def fail(prog: str, message: str) -> NoReturn:
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def invocation(prog: str) -> list[str]:
    """The command a user typed, for the records a command writes (a table's footnote, a benchmark report):
    `python scripts/<prog>` for a repository script (prog ending in .py), else the console script itself."""
    return ["python", f"scripts/{prog}"] if prog.endswith(".py") else [prog]
