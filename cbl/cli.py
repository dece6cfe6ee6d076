"""Small helpers shared by the commands (cbl/commands/, the console scripts cbl-*, and their thin wrappers in
scripts/): one-line errors with exit status 2, and the command line a user typed; and what `cbl-train` (cbl/train.py)
adds to Hydra's command line: `--version`, and one line for flags that cannot go together or for an override that
does not compose (a key the config lacks, a group option that does not exist, a malformed value), where Hydra would
print several lines and exit with status 1."""

from __future__ import annotations

import argparse
import re
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
    """The overrides of a `--cfg hydra --resolve` command line (cbl.training.config.resolved_hydra_config prints it:
    Hydra itself cannot resolve its run dir there); None for any other command line, which Hydra handles."""
    from hydra._internal.utils import get_args_parser

    args, unknown = get_args_parser().parse_known_args(argv)
    if args.cfg != "hydra" or not args.resolve or unknown or args.config_name or args.config_path or args.config_dir:
        return None
    return list(args.overrides)


def override_problem(argv: list[str]) -> str | None:
    """Why the command line's overrides do not compose, in one line naming the override; None when they compose.

    Every value of a swept override is tried (with the other overrides at their first value), so a typo in one job
    of a sweep refuses the sweep before any job runs and before Hydra writes anything.  Left to Hydra: command
    lines with their own config (--config-path / --config-name / --config-dir), the help and info commands, and
    sweeps it alone can expand (glob, interval)."""
    import os

    from hydra._internal.utils import get_args_parser
    from hydra.errors import HydraException, OverrideParseException

    args, _ = get_args_parser().parse_known_args(argv)
    if (args.config_path or args.config_name or args.config_dir or args.help or args.hydra_help or args.info
            or args.shell_completion or not args.overrides or os.environ.get("HYDRA_FULL_ERROR") == "1"):
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(args.overrides))
    except OverrideParseException as e:
        return f"cannot parse the overrides: {_one_line(str(e))}"
    choices = []  # per override: the texts to try, its first value first
    for text, override in zip(args.overrides, parsed):
        if not override.is_sweep_override():
            choices.append([text])
            continue
        try:
            values = list(override.sweep_string_iterator())
        except HydraException:  # a glob or interval sweep: Hydra's sweeper expands it
            return None
        key = override.get_key_element()
        choices.append([f"{key}={v}" for v in values])
    trials = [[c[0] for c in choices]]
    for i, c in enumerate(choices):
        trials += [[*trials[0][:i], other, *trials[0][i + 1:]] for other in c[1:]]
    from hydra import compose, initialize_config_dir

    from cbl.training.config import CONFIG_DIR

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        for overrides in trials:
            try:
                compose("train", overrides=overrides, return_hydra_config=True)
            except HydraException as e:
                return _composition_problem(e, overrides)
    return None


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _composition_problem(e: Exception, overrides: list[str]) -> str:
    """Hydra's several-line message about one override, as one line that names the override."""
    text = str(e)
    cause = str(e.__cause__ or "")
    missing_key = re.match(r"Could not override '([^']+)'", text)
    if missing_key and "not in struct" in cause:
        key = missing_key[1]
        given = next((o for o in overrides if o.lstrip("~+").split("=", 1)[0] == key), key)
        return f"{given}: the config has no key {key!r} (check its spelling; to add a new key, write +{given})"
    missing_option = re.search(r"Could not find '([^']+)'", text)
    if missing_option:
        group, _, name = missing_option[1].rpartition("/")
        options = re.search(r"Available options in '[^']+':\n((?:\t.*\n?)+)", text)
        listed = ", ".join(o.strip() for o in options[1].splitlines() if o.strip()) if options else "none"
        return f"{group}={name}: no such {group} option; choose one of {listed}"
    return _one_line(text.split("Config search path")[0] + (" " + cause if cause else ""))
