"""Small helpers shared by the commands (cbl/commands/, the console scripts cbl-*, and their thin wrappers in
scripts/): one-line errors with exit status 2, and the command line a user typed; and what `cbl-train` (cbl/train.py)
adds to Hydra's command line: `--version`, and one line for flags that cannot go together."""

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


def version() -> str:
    """`cbl-train --version`: "cbl 0.1.0 (torch 2.x, hydra 1.3.x, python 3.11.x)"."""
    import platform

    import hydra
    import torch

    import cbl

    return f"cbl {cbl.__version__} (torch {torch.__version__}, hydra {hydra.__version__}, python {platform.python_version()})"


#: Hydra's commands: one at a time (hydra/_internal/utils.py raises a bare ValueError, a traceback, otherwise)
_HYDRA_COMMANDS = {"run": "--run", "multirun": "--multirun (-m)", "cfg": "--cfg", "shell_completion": "--shell-completion",
                   "info": "--info"}  # fmt: skip


def train_flag_problem(argv: list[str]) -> str | None:
    """Why Hydra would refuse these `cbl-train` flags together, in one line; None when it would not."""
    from hydra._internal.utils import get_args_parser

    args, _ = get_args_parser().parse_known_args(argv)
    given = [flag for key, flag in _HYDRA_COMMANDS.items()
             if (getattr(args, key) not in (None, False))]  # fmt: skip
    if "--multirun (-m)" in given and "--cfg" in given:
        return ("--multirun (-m) and --cfg cannot be used together: --cfg shows the config of one run; drop -m and give "
                "each swept key one value (or pass the sweep file alone: sweep=<name> --cfg job)")
    if len(given) > 1:
        return f"{' and '.join(given)} cannot be used together: choose one"
    if args.resolve and args.cfg is None and not args.help:
        return "--resolve goes with --cfg (e.g. --cfg job --resolve) or --help"
    return None


def resolved_hydra_node_request(argv: list[str]) -> list[str] | None:
    """The overrides of a `--cfg hydra --resolve` command line (cbl.training.overrides.resolved_hydra_config prints it:
    Hydra itself cannot resolve its run dir there); None for any other command line, which Hydra handles."""
    from hydra._internal.utils import get_args_parser

    args, unknown = get_args_parser().parse_known_args(argv)
    if args.cfg != "hydra" or not args.resolve or unknown or args.config_name or args.config_path or args.config_dir:
        return None
    return list(args.overrides)
