"""What identifies a run: its folder name, its results group, and which config changes a checkpoint may resume with.

    run_name(cfg)  = <dataset>[-if<IF>]-<model>-<method>-b<beta>[-g<gamma>]-s<seed>-<8 hex of sha256(run_identity(cfg))>
    run_identity   = comparable(cfg) (the config without RUNTIME_KEYS, keys of ADDED_KEYS at their default left out)
                     + the data file's name (+ the absolute root of your own data)
    run_group(cfg) = table2 / table3 (the paper's losses at the paper's recipe on its datasets), methods (the methods
                     beyond the paper there), runs (anything of another recipe: cbl.training.recipes.recipe_differences)

`comparable`, `with_added_keys` and `first_difference` decide whether a checkpoint resumes under a config
(cbl.training.run).  Everything here takes a plain (resolved) config dict; cbl.training.config registers the Hydra
resolvers that call it and checks the config itself.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import re
from pathlib import Path
from typing import Any

from cbl.data.custom import CUSTOM_DATASETS
from cbl.losses.criterion import method_label
from cbl.training.recipes import OFFICIAL_DATA, fields_from_config, recipe_differences

#: keys that change how a run executes or reports, not what it computes (beyond float rounding, as the device
#: itself does): a run may resume with them changed
RUNTIME_KEYS = (
    "resume", "device", "channels_last", "compile", "progress", "wandb", "name", "output_dir", "keep_checkpoints",
    "keep_best", "save_predictions", "loss_check_every", "eval_batch_size", "distributed.backend", "dataset.root", "dataset.download",
    "dataset.npz", "dataset.num_workers", "dataset.pin_memory", "dataset.persistent_workers", "dataset.prefetch_factor",
    "dataset.lists_dir",
)


#: keys added after runs were first recorded, with the values that compute what those runs computed: a
#: checkpoint written before a key existed resumes as if it had been saved with this value
ADDED_KEYS = {
    "loss.weighting": "effective_number",
    "loss.drw_epoch": None,
    "loss.reduction": "batch",
    "sampler.name": "instance",
    "dataset.order": "shuffled",
    "loss.multilabel_weighting": "sample",
}



# ----------------------------------------------------------------------------- run folder names
#: the paper's table of each of its datasets: where a run of one of the paper's losses goes by default
PAPER_TABLE_OF = {"cifar10_lt": "table2", "cifar100_lt": "table2", "inat2017": "table3", "inat2018": "table3",
                  "ilsvrc2012": "table3"}  # fmt: skip


def _number_text(value: Any) -> str:
    """A number as the run name spells it (100.0 -> 100); anything else as typed, for `check` to refuse by its key."""
    return f"{float(value):g}" if _number(value) else str(value)


def _canonical(value: Any) -> Any:
    """A value spelled one way however it was typed: numbers as floats (beta=0 and beta=0.0 are one run)."""
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    return float(value) if isinstance(value, numbers.Real) else str(value)


def run_identity(plain_cfg: dict[str, Any]) -> dict[str, Any]:
    """What names a run: the comparable config (everything that changes what is computed) and the data it reads:
    the .npz file's name (dataset.npz is a runtime key for resuming, but another file is other data: another run;
    the same file elsewhere is the same run) and, for your own datasets, the absolute root (and lists_dir)."""
    ds = plain_cfg.get("dataset") or {}
    npz = ds.get("npz")
    identity = {**comparable(plain_cfg), "data_file": Path(str(npz)).name if npz else None}
    if ds.get("name") in CUSTOM_DATASETS:  # your own data is wherever its root points: another root, another run
        identity["data_root"] = [str(Path(str(ds[k])).expanduser().resolve()) if ds.get(k) else None
                                 for k in ("root", "lists_dir")]
    # a key added later at its default computes what runs before it computed: leaving it out keeps their names
    for dotted, default in ADDED_KEYS.items():
        group, leaf = dotted.split(".")
        if isinstance(identity.get(group), dict) and leaf in identity[group] and identity[group][leaf] == default:
            identity[group] = {k: v for k, v in identity[group].items() if k != leaf}
    return _canonical(identity)


def run_name(plain_cfg: dict[str, Any]) -> str:
    """A run's folder name, from its resolved configuration alone, so the same configuration lands in (and resumes
    from) one folder however it was launched: a single run, a sweep, a launcher, with defaults typed or not.

        <dataset>[-if<IF>]-<model>-<method>-b<beta>[-g<gamma>]-s<seed>-<hash>

    e.g. cifar10_lt-if100-resnet32-focal-b0.9999-g1-s0-3fa2c1d0: the readable part names what tables group by, the
    hash (8 hex digits of sha256 over `run_identity`) tells apart everything else (schedule, options, data file).

    Hydra names the folder before the run starts, so any value gets a name (loss.beta=abc: "babc"); `check` then
    refuses it with one line, and the refused run leaves no folder (cbl.training.refusal)."""
    ds, loss = plain_cfg.get("dataset") or {}, plain_cfg.get("loss") or {}
    parts = [str(ds.get("name"))]
    if ds.get("imbalance_factor") is not None:
        parts.append(f"if{_number_text(ds['imbalance_factor'])}")
    parts += [str((plain_cfg.get("model") or {}).get("name")),
              method_label(loss, (plain_cfg.get("sampler") or {}).get("name", "instance")),
              f"b{_number_text(loss.get('beta', 0.0))}"]  # fmt: skip
    if loss.get("name") == "focal":
        parts.append(f"g{_number_text(loss.get('gamma', 0.0))}")
    parts.append(f"s{plain_cfg.get('seed')}")
    digest = hashlib.sha256(json.dumps(run_identity(plain_cfg), sort_keys=True).encode("utf-8")).hexdigest()[:8]
    return re.sub(r"[^A-Za-z0-9_.+=-]", "_", "-".join(parts)) + "-" + digest


def recorded_run_name(recorded: dict[str, Any]) -> str:
    """The run name of a run folder's config.yaml, whatever folder the run was written to (hydra.run.dir): the
    resolved config as composed, so the `data_source` that training writes beside it (once the data is read,
    after the folder was named) is left out."""
    missing = [k for k in ("dataset", "model", "loss", "seed") if k not in recorded]
    if missing:
        raise ValueError(f"not a cbl.train config: no {', '.join(missing)}")
    return run_name({k: v for k, v in recorded.items() if k != "data_source"})


def run_group(plain_cfg: dict[str, Any]) -> str:
    """The default `name` (the folder under output_dir): the paper's table (table2, table3) for its losses on its
    datasets, "methods" for the methods beyond the paper on those datasets, both at the paper's recipe; "runs" for
    anything else: another dataset, or another recipe (a shortened schedule, bf16, another data order, an .npz copy
    of the data: what keeps a run out of the paper's cells, cbl.training.recipes.recipe_differences), so that a quick
    run never sits among the paper's.  A sweep that means to file such runs elsewhere sets `name` (sweep/precision)."""
    ds, loss = plain_cfg.get("dataset") or {}, plain_cfg.get("loss") or {}
    table = PAPER_TABLE_OF.get(str(ds.get("name")))
    if table is None or other_recipe(plain_cfg):
        return "runs"
    label = method_label(loss, (plain_cfg.get("sampler") or {}).get("name", "instance"))
    return table if label == loss.get("name") and label in ("softmax", "sigmoid", "focal") else "methods"


def other_recipe(plain_cfg: dict[str, Any]) -> list[str]:
    """How a config's recipe differs from the paper's for its dataset, as the tables would say once it ran (e.g.
    ["epochs=2", "precision=bf16"]); [] for the paper's.  The data source is what the config says: an .npz file is
    not the official release, a dataset root is taken to hold it (the run records what it read)."""
    fields = fields_from_config(plain_cfg)
    fields.setdefault("data_source", OFFICIAL_DATA)
    try:
        return recipe_differences(fields)
    except (TypeError, ValueError):  # a value that is not a number: check refuses it, any group will do till then
        return ["a value that is not a number"]



# ----------------------------------------------------------------------------- resume compatibility
def with_added_keys(plain_cfg: dict[str, Any]) -> dict[str, Any]:
    """A (comparable) config saved before the keys of ADDED_KEYS existed, with those keys at the values that
    reproduce what it computed; keys it has are kept.  Lets runs started before an upgrade resume."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in plain_cfg.items()}
    for dotted, value in ADDED_KEYS.items():
        group, leaf = dotted.split(".")
        node = out.setdefault(group, {})
        if isinstance(node, dict):
            node.setdefault(leaf, value)
    return out

def comparable(plain_cfg: dict[str, Any]) -> dict[str, Any]:
    """The config without RUNTIME_KEYS: what must match for a checkpoint to be resumed."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in plain_cfg.items()}
    for dotted in RUNTIME_KEYS:
        *parents, leaf = dotted.split(".")
        node = out
        for p in parents:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    return out


def first_difference(old: Any, new: Any, prefix: str = "") -> tuple[str, Any, Any] | None:
    """(dotted key, old value, new value) of the first difference between two plain configs, or None."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            found = first_difference(old.get(key), new.get(key), f"{prefix}{key}.")
            if found:
                return found
        return None
    return None if old == new else (prefix.rstrip("."), old, new)


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
