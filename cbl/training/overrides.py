"""What a command line's overrides compose to, found with Hydra's compose API before any run starts.

    sweep_runs(overrides)             the run folder (cbl.training.run_identity.run_name) of every job that
                                      `cbl-train -m <overrides>` runs: a sweep file's hydra.sweeper.params and the
                                      command line's swept values, expanded as Hydra's basic sweeper does
    resolved_hydra_config(overrides)  the YAML `--cfg hydra --resolve` prints (Hydra's node, the run dir resolved)
    override_problem(argv)            why the overrides do not compose, as one line naming the override (a misspelt
                                      plain `key=value`, a group option that does not exist, a malformed value,
                                      several values without -m), for every value of a sweep; None when they compose

cbl-train calls `override_problem` before Hydra writes anything, so a typo in one job of a sweep is the same one
line and exit status 2 as a bad value (cbl.training.config.check).  Run selection (`--sweep` of the table, plot, collect
and summary scripts) and the run queue name a sweep's runs with `sweep_runs`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from omegaconf import DictConfig, OmegaConf, open_dict

from cbl.training.config import CONFIG_DIR
from cbl.training.run_identity import run_name


def sweep_runs(overrides: list[str]) -> set[str]:
    """The run name (the run's folder) of every job that `python -m cbl.train -m <overrides>` runs, e.g.
    ["sweep=methods", "seed=0,1"]: the sweep file's hydra.sweeper.params and the sweep values of `overrides` (which
    win over the file's) expanded as Hydra's basic sweeper does, each job composed and named.  Lets a table show
    exactly one sweep's runs."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    given = parser.parse_overrides(overrides)
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        base = compose("train", overrides=[o.input_line for o in given if not o.is_sweep_override()],
                       return_hydra_config=True)
        params = {str(k): f"{k}={v}" for k, v in (base.hydra.sweeper.params or {}).items()}
        params.update({o.get_key_element(): o.input_line for o in given})  # the command line wins
        (jobs,) = BasicSweeper.split_arguments(parser.parse_overrides(list(params.values())), None)
        out = set()
        for job in jobs:
            out.add(run_name(OmegaConf.to_container(compose("train", overrides=list(job)), resolve=True)))
    return out


def resolved_hydra_config(overrides: list[str]) -> str:
    """The YAML `--cfg hydra --resolve` prints: Hydra's own node, resolved against the whole config.  Hydra resolves
    that node with the job's keys removed, so its run dir (${output_dir}/${name}/...) cannot resolve there; the run
    dir and job name are set as a run sets them (hydra.runtime.output_dir: the run's folder)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.job.name = "train"  # as for `python -m cbl.train` / cbl-train (compose says "app")
        cfg.hydra.runtime.output_dir = cfg.hydra.run.dir
    OmegaConf.resolve(cfg)
    return OmegaConf.to_yaml(OmegaConf.create({"hydra": OmegaConf.to_container(cfg.hydra)}))


def override_problem(argv: list[str]) -> str | None:
    """Why the command line's overrides do not compose, in one line naming the override; None when they compose.
    Several values without -m compose to nothing Hydra runs either: the line says to add -m.

    Every value of a swept override is tried (with the other overrides at their first value), and so is every value
    a sweep file lists (`hydra.sweeper.params`), so a typo in one job of a sweep refuses the sweep before any job
    runs and before Hydra writes anything.  Left to Hydra: command lines with their own config (--config-path /
    --config-name / --config-dir), the help and info commands, and sweeps it alone can expand (glob, interval)."""
    from hydra._internal.utils import get_args_parser
    from hydra.errors import OverrideParseException

    args, _ = get_args_parser().parse_known_args(argv)
    if (args.config_path or args.config_name or args.config_dir or args.help or args.hydra_help or args.info
            or args.shell_completion or not args.overrides or os.environ.get("HYDRA_FULL_ERROR") == "1"):
        return None  # (a sweep file comes from an override: without any, the config is the shipped one)
    try:
        given = _override_choices(list(args.overrides))
    except OverrideParseException as e:
        return f"cannot parse the overrides: {_one_line(str(e))}"
    if given is None:
        return None
    from hydra import initialize_config_dir

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        problem, cfg = _compose_each_value(given)
        if problem is None and cfg is not None and not args.multirun:
            swept = next((i for i, texts in enumerate(given) if len(texts) > 1), None)
            if swept is not None and not str(OmegaConf.select(cfg, "hydra.mode")).endswith("MULTIRUN"):
                return _several_values_problem(args.overrides[swept], given[swept])
        params = OmegaConf.select(cfg, "hydra.sweeper.params") if cfg is not None else None
        if problem or not isinstance(params, Mapping):
            return problem
        # a sweep file's values, except those the command line replaces; the command line's own are tried already
        keys = {_override_key(texts[0]) for texts in given}
        try:
            listed = _override_choices([f"{k}={v}" for k, v in params.items() if k not in keys])
        except OverrideParseException as e:
            return f"cannot parse the sweep file's hydra.sweeper.params: {_one_line(str(e))}"
        return _compose_each_value(given + listed, vary_from=len(given))[0] if listed else None


def _several_values_problem(typed: str, expanded: list[str]) -> str:
    """The line for several values given without -m (Hydra's "Ambiguous value"): add -m, or, for a key that takes a
    list (not a config group, whose option is one name), write the list in brackets."""
    key = _override_key(typed)
    line = f"{typed}: several values run one job each only in a sweep: add -m (cbl-train -m {typed})"
    if (CONFIG_DIR / key).is_dir():
        return line
    return f"{line}; a list is one value in brackets, {key}=[{','.join(t.split('=', 1)[1] for t in expanded)}]"


def _override_key(text: str) -> str:
    """"+loss.beta=0.9" -> "loss.beta": the key an override text sets, without its add / delete prefix."""
    return text.lstrip("~+").split("=", 1)[0]


def _override_choices(texts: list[str]) -> list[list[str]] | None:
    """Per override, the override texts to try (its first value first); None for a sweep only Hydra can expand."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    choices = []
    for text, override in zip(texts, OverridesParser.create().parse_overrides(texts)):
        if not override.is_sweep_override():
            choices.append([text])
            continue
        try:
            values = list(override.sweep_string_iterator())
        except HydraException:  # a glob or interval sweep: Hydra's sweeper expands it
            return None
        choices.append([f"{override.get_key_element()}={v}" for v in values])
    return choices


def _compose_each_value(choices: list[list[str]], vary_from: int = 0) -> tuple[str | None, DictConfig | None]:
    """(the first problem, None) or (None, the config of every override at its first value).  Tried: every override
    at its first value, then each other value of the overrides from `vary_from` on, one at a time."""
    from hydra import compose
    from hydra.errors import HydraException

    first = [c[0] for c in choices]
    trials = [first] + [[*first[:i], other, *first[i + 1:]]
                        for i, c in enumerate(choices) if i >= vary_from for other in c[1:]]
    cfg = None
    for overrides in trials:
        try:
            composed = compose("train", overrides=overrides, return_hydra_config=True)
        except HydraException as e:
            return _composition_problem(e, overrides), None
        except Exception:  # anything else: Hydra's own run reports it, as it did before this check
            return None, None
        cfg = composed if cfg is None else cfg
    return None, cfg


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _composition_problem(e: Exception, overrides: list[str]) -> str:
    """Hydra's several-line message about one override, as one line that names the override."""
    text = str(e)
    cause = str(e.__cause__ or "")
    missing_key = re.match(r"Could not override '([^']+)'", text)
    if missing_key and "not in struct" in cause:
        key = missing_key[1]
        given = next((o for o in overrides if _override_key(o) == key), key)
        return f"{given}: the config has no key {key!r} (check its spelling; to add a new key, write +{given})"
    missing_option = re.search(r"Could not find '([^']+)'", text)
    if missing_option:
        group, _, name = missing_option[1].rpartition("/")
        options = re.search(r"Available options in '[^']+':\n((?:\t.*\n?)+)", text)
        listed = ", ".join(o.strip() for o in options[1].splitlines() if o.strip()) if options else "none"
        return f"{group}={name}: no such {group} option; choose one of {listed}"
    return _one_line(text.split("Config search path")[0] + (" " + cause if cause else ""))
