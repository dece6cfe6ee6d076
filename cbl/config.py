"""Config checks that run before any work starts, and the helpers that name and compare runs.

`check(cfg)` raises `ConfigError` (a ValueError) with one line naming the key, the value and what is allowed:
an interpolation that does not resolve, beta outside [0, 1), gamma < 0, imbalance factor < 1, unknown dataset /
model / loss / sampler / optimizer names, ResNet-32 (the CIFAR network) on a Table 3 dataset, unknown weighting / reduction, a dataset.order other than shuffled / authors_stream (authors_stream
only for CIFAR / digits and sampler=instance), drw_epoch outside 1..epochs-1 or with nothing to defer, LDAM
max_m / s <= 0, logit-adjustment tau < 0, epochs / batch size / lr <= 0, an unsupported input size, your own
dataset (imagefolder, listfile, imagenet_lt, places_lt) without its root / list paths, on multi-label data
(cbl/data/multilabel.py) a loss other than sigmoid / focal or a sampler other than instance, a
loss.multilabel_weighting other than sample / class (class on single-label data), or a key
that no config file defines (a typo added with `+key=value`; Hydra itself rejects typos in plain `key=value`
overrides).

The keys each config group allows are read from the YAML files of that group under configs/, so the check
and the configs cannot drift apart.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from cbl.data import DATASET_NAMES, SAMPLERS
from cbl.data.build import ARRAY_DATASETS
from cbl.data.custom import CUSTOM_DATASETS
from cbl.data.epoch import ORDERS, check_order
from cbl.data.list_file import EVAL_SPLITS, LIST_BENCHMARKS
from cbl.data.mlt_benchmarks import MLT_BENCHMARKS
from cbl.data.multilabel import DIGITS_MLT_SIZE, MULTILABEL_DATASETS
from cbl.data.transforms import EVAL_CROP_PADDING, FILE_INPUT_SIZES
from cbl.losses import MULTILABEL_WEIGHTINGS, REDUCTIONS, check_beta, check_gamma
from cbl.losses.criterion import LOSS_NAMES, method_label
from cbl.losses.logit_adjustment import check_max_margin, check_scale, check_tau
from cbl.losses.weighting import WEIGHTINGS
from cbl.models import MODEL_NAMES, MODEL_OPTIONS
from cbl.training import recipes
from cbl.training.distributed import process_rank
from cbl.training.optim import OPTIMIZER_NAMES, check_schedule
from cbl.training.perf import COMPILE_MODES, compile_options
from cbl.training.tracking import WANDB_MODES


def _config_dir() -> Path:
    """The Hydra configs: cbl/configs inside the package (a wheel holds them as files; in a checkout it is a link to
    the repository's configs/, the one copy people edit), else the checkout's configs/ (where links are not kept)."""
    here = Path(__file__).resolve().parent
    packaged = here / "configs"
    # resolved: in a checkout, paths in messages then name configs/, the files to edit
    return (packaged if (packaged / "train.yaml").is_file() else here.parent / "configs").resolve()


CONFIG_DIR = _config_dir()
GROUPS = ("dataset", "model", "loss", "sampler", "optim")
PRECISIONS = ("fp32", "bf16")
#: input sizes each dataset supports; the large-scale ones are the resolutions the eval transform has a crop
#: padding for (cbl.data.transforms, the two of Table 3), so the check and the transforms cannot disagree
_LARGE_SCALE_SIZES = tuple(EVAL_CROP_PADDING)
INPUT_SIZES = {
    "cifar10_lt": (32,), "cifar100_lt": (32,), "digits_lt": (8,),
    "inat2017": _LARGE_SCALE_SIZES, "inat2018": _LARGE_SCALE_SIZES, "ilsvrc2012": _LARGE_SCALE_SIZES,
    # your own data (and ImageNet-LT / Places-LT): the small-image recipe's sizes as well (cbl.data.transforms)
    **{name: FILE_INPUT_SIZES for name in CUSTOM_DATASETS},
    # multi-label (cbl/data/multilabel.py): the digits demo's 16x16 canvases, image files at the file sizes
    **{name: FILE_INPUT_SIZES for name in MULTILABEL_DATASETS}, "digits_mlt": (DIGITS_MLT_SIZE,),
}
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


class ConfigError(ValueError):
    """A config value or key that is not allowed; the message is one line a user can act on."""


# ----------------------------------------------------------------------------- run directory names
#: the paper's table of each of its datasets: where a run of one of the paper's losses goes by default
PAPER_TABLE_OF = {"cifar10_lt": "table2", "cifar100_lt": "table2", "inat2017": "table3", "inat2018": "table3",
                  "ilsvrc2012": "table3"}  # fmt: skip


def _plain(root: DictConfig, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The resolved config (its `keys`, by default all) without Hydra's own node (which is what is being resolved
    when a run dir is named); a node that does not resolve is taken as written (`check` refuses it with its key, after
    the folder is named)."""
    out, written = {}, None
    for key in root if keys is None else [k for k in keys if k in root]:
        if key == "hydra":
            continue
        try:
            node = root[key]
            out[str(key)] = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        except Exception:  # noqa: BLE001 - OmegaConf raises its own types; naming must not fail (see run_name)
            written = OmegaConf.to_container(root, resolve=False) if written is None else written
            out[str(key)] = written[key]
    return out


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
    of the data: what keeps a run out of the paper's cells, cbl.reporting.runs.recipe_differences), so that a quick
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
    from cbl.reporting.runs import OFFICIAL_DATA, fields_from_config, recipe_differences

    fields = fields_from_config(plain_cfg)
    fields.setdefault("data_source", OFFICIAL_DATA)
    try:
        return recipe_differences(fields)
    except (TypeError, ValueError):  # a value that is not a number: check refuses it, any group will do till then
        return ["a value that is not a number"]


def sweep_runs(overrides: list[str]) -> set[str]:
    """The run name (cbl.config.run_name, the run's folder) of every job that `python -m cbl.train -m <overrides>` runs, e.g. ["sweep=methods",
    "seed=0,1"]: the sweep file's hydra.sweeper.params and the sweep values of `overrides` (which win over the file's)
    expanded as Hydra's basic sweeper does, each job composed and named.  Lets a table show exactly one sweep's runs."""
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


def _run_name_resolver(*, _root_: DictConfig) -> str:
    return run_name(_plain(_root_))


def _run_group_resolver(*, _root_: DictConfig) -> str:
    # only the keys the group depends on: `name` itself resolves through this resolver
    return run_group(_plain(_root_, ("dataset", "model", "loss", "sampler", "optim", "precision")))


def by_rank(main: Any, other: Any) -> Any:
    """`main` in the rank-0 (or only) process, `other` in the others: what each process of a torchrun /
    submitit job writes through Hydra (configs/train.yaml: .hydra/ from rank 0 only, train.log vs train.rank1.log)."""
    return main if process_rank() == 0 else other


def cifar_lr_factors(imbalance_factor: Any) -> ListConfig:
    """The CIFAR lr multipliers from the milestones on, as the authors' scripts set them (cbl.training.recipes): x0.01 / x0.0001
    for the long-tailed sets, x0.1 / x0.01 for the balanced one (IF 1, cifar_trainval.sh)."""
    balanced = _number(imbalance_factor) and float(imbalance_factor) == 1.0
    # a ListConfig, not a list: OmegaConf.resolve (Hydra's `--cfg job --resolve`) can put a config node in place of
    # the interpolation, but refuses a plain list as the value of a leaf
    return OmegaConf.create(list(recipes.TABLE2_BALANCED_FACTORS if balanced else recipes.TABLE2_RECIPE["factors"]))


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("cbl_cifar_lr_factors"):
        OmegaConf.register_new_resolver("cbl_cifar_lr_factors", cifar_lr_factors)
    if not OmegaConf.has_resolver("cbl_run_name"):
        OmegaConf.register_new_resolver("cbl_run_name", _run_name_resolver)
    if not OmegaConf.has_resolver("cbl_run_group"):
        OmegaConf.register_new_resolver("cbl_run_group", _run_group_resolver)
    if not OmegaConf.has_resolver("cbl_by_rank"):
        OmegaConf.register_new_resolver("cbl_by_rank", by_rank)
    if not OmegaConf.has_resolver("cbl_rank"):
        OmegaConf.register_new_resolver("cbl_rank", process_rank)


register_resolvers()


# ----------------------------------------------------------------------------- checks
def _fail(key: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")


def _positive_int(cfg: Mapping, key: str, path: str) -> None:
    value = cfg.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        _fail(path, value, "must be an integer > 0")


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@lru_cache(maxsize=None)
def group_keys(group: str) -> dict[str, frozenset[str]]:
    """{option name: keys its YAML file defines} for a config group."""
    keys = {}
    for path in sorted((CONFIG_DIR / group).glob("*.yaml")):
        node = OmegaConf.load(path)
        keys[path.stem] = frozenset(k for k in node.keys() if k != "defaults")
    return keys


@lru_cache(maxsize=None)
def top_level_keys() -> frozenset[str]:
    node = OmegaConf.load(CONFIG_DIR / "train.yaml")
    return frozenset(k for k in node.keys() if k not in ("defaults", "hydra")) | frozenset(GROUPS)


def _check_keys(cfg: DictConfig) -> None:
    for key in cfg.keys():
        if key not in top_level_keys():
            _fail(str(key), cfg[key], f"no config defines the key {key!r}; known keys: {', '.join(sorted(top_level_keys()))}")
    for group in GROUPS:
        name = cfg[group].get("name")
        options = group_keys(group)
        # the option's own file defines the keys; a renamed option falls back to the union of the group
        allowed = options.get(name) or frozenset().union(*options.values())
        for key in cfg[group].keys():
            if key not in allowed:
                _fail(f"{group}.{key}", cfg[group][key], f"not a {group} key; {group} {name!r} has {', '.join(sorted(allowed))}")


def _check_resolves(cfg: DictConfig) -> None:
    """Every interpolation resolves (`${oc.env:X}` with X unset, say); loss.drw_epoch aside, whose own check says why."""
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except InterpolationResolutionError as e:
        key = str(getattr(e, "full_key", "") or "")
        if key == "loss.drw_epoch":
            return
        written: Any = OmegaConf.to_container(cfg)  # the value as typed, found without resolving anything
        for part in key.split(".") if key else ():
            written = written.get(part) if isinstance(written, dict) else None
        reason = str(getattr(e, "msg", e)).strip().splitlines()[0]
        raise ConfigError(f"{key or 'the config'}={written!r} is not allowed: it does not resolve ({reason})") from None


def check(cfg: DictConfig) -> None:
    """Raise ConfigError on the first value that is not allowed (before any data is read)."""
    _check_resolves(cfg)
    _check_keys(cfg)
    ds, model, loss, optim = cfg.dataset, cfg.model, cfg.loss, cfg.optim

    if ds.name not in DATASET_NAMES:
        _fail("dataset.name", ds.name, f"choose one of {', '.join(DATASET_NAMES)}")
    if "imbalance_factor" in ds and not (ds.imbalance_factor is None and ds.name in CUSTOM_DATASETS):  # null: as it is
        imb = ds.imbalance_factor
        if not _number(imb) or not 1 <= imb < float("inf"):
            _fail("dataset.imbalance_factor", imb, "must be a number >= 1 (1 = the balanced dataset)")
    if ds.get("input_size") not in INPUT_SIZES[ds.name]:
        _fail("dataset.input_size", ds.get("input_size"), f"{ds.name} supports {' or '.join(map(str, INPUT_SIZES[ds.name]))}")
    if "subset_seed" in ds and (isinstance(ds.subset_seed, bool) or not isinstance(ds.subset_seed, int) or ds.subset_seed < 0):
        _fail("dataset.subset_seed", ds.subset_seed, "must be an integer >= 0")
    if ds.name in CUSTOM_DATASETS or ds.name in ("multilabel_listfile", *MLT_BENCHMARKS):
        _check_custom_dataset(ds)

    if model.name not in MODEL_NAMES:
        _fail("model.name", model.name, f"choose one of {', '.join(MODEL_NAMES)}")
    if model.name == "resnet32" and ds.name in recipes.TABLE3_DATASETS:  # the default model: dataset=inat2017 alone
        _fail("model.name", model.name, f"ResNet-32 is the CIFAR network; {ds.name} trains ResNet-50/101/152: "
                                        f"experiment=table3 dataset={ds.name} sets the model and the large-scale schedule")
    for key in model:
        if key != "name" and key not in MODEL_OPTIONS[model.name]:
            _fail(f"model.{key}", model[key], f"model {model.name!r} takes {', '.join(MODEL_OPTIONS[model.name]) or 'no options'}")

    if loss.name not in LOSS_NAMES:
        _fail("loss.name", loss.name, f"choose one of {', '.join(LOSS_NAMES)}")
    for key, checker in (("beta", check_beta), ("gamma", check_gamma), ("max_m", check_max_margin), ("s", check_scale),
                         ("tau", check_tau)):
        if key not in loss:
            continue
        try:
            checker(loss[key])
        except ValueError as e:
            _fail(f"loss.{key}", loss[key], str(e).split(";")[0])
    if loss.gamma != 0 and loss.name != "focal":
        _fail("loss.gamma", loss.gamma, f"gamma applies only to loss=focal (this run uses loss={loss.name}); leave it 0")
    sampler = cfg.sampler.get("name")
    if sampler not in SAMPLERS:
        _fail("sampler.name", sampler, f"choose one of {', '.join(SAMPLERS)}")
    _check_multilabel(ds, loss, sampler)
    _check_order(ds, sampler)

    if optim.name not in OPTIMIZER_NAMES:
        _fail("optim.name", optim.name, f"choose one of {', '.join(OPTIMIZER_NAMES)}")
    for key in ("epochs", "batch_size", "reference_batch"):
        _positive_int(optim, key, f"optim.{key}")
    if not _number(optim.lr) or not 0 < optim.lr < float("inf"):
        _fail("optim.lr", optim.lr, "must be a number > 0")
    if not _number(optim.momentum) or not 0 <= optim.momentum < 1:
        _fail("optim.momentum", optim.momentum, "must be a number in [0, 1)")
    if not _number(optim.weight_decay) or optim.weight_decay < 0:
        _fail("optim.weight_decay", optim.weight_decay, "must be a number >= 0")
    if optim.decay_fc_bias not in (True, False, "auto"):
        _fail("optim.decay_fc_bias", optim.decay_fc_bias, "must be true, false or auto")
    try:
        check_schedule(1, optim.warmup_epochs, list(optim.milestones), list(optim.factors))
    except ValueError as e:
        raise ConfigError(f"optim schedule (warmup_epochs={optim.warmup_epochs}, milestones={list(optim.milestones)}, "
                          f"factors={list(optim.factors)}) is not allowed: {e}") from None
    _check_weighting(loss, optim)  # after optim: drw_epoch is checked against optim.epochs

    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool) or cfg.seed < 0:
        _fail("seed", cfg.seed, "must be an integer >= 0")
    if cfg.precision not in PRECISIONS:
        _fail("precision", cfg.precision, f"choose one of {', '.join(PRECISIONS)}")
    try:
        compile_options(cfg.compile)
    except ValueError:
        _fail("compile", cfg.compile, f"choose true, false or a torch.compile mode ({', '.join(COMPILE_MODES)})")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(cfg.device)):
        _fail("device", cfg.device, "choose auto, cpu, cuda or cuda:<index>")
    for key in ("eval_every", "eval_batch_size", "keep_checkpoints", "loss_check_every"):
        _positive_int(cfg, key, key)
    for flag in ("keep_best", "save_predictions"):
        if cfg.get(flag, False) not in (True, False):
            _fail(flag, cfg[flag], "must be true or false")
    if cfg.wandb.mode not in WANDB_MODES:
        _fail("wandb.mode", cfg.wandb.mode, f"choose one of {', '.join(WANDB_MODES)}")


def _check_order(ds: DictConfig, sampler: str) -> None:
    order = ds.get("order", "shuffled")
    if order not in ORDERS:
        _fail("dataset.order", order, f"choose one of {', '.join(ORDERS)}")
    try:
        check_order(order, sampler)  # the rule the loaders apply: authors_stream needs instance sampling
    except ValueError:
        _fail("dataset.order", order, f"it replays the authors' instance-sampled stream and needs sampler=instance "
                                      f"(this run uses sampler={sampler})")
    if order == "authors_stream" and ds.name not in ARRAY_DATASETS:
        _fail("dataset.order", order, f"it replays the authors' CIFAR pipeline ({', '.join(ARRAY_DATASETS)}); {ds.name} allows only shuffled")


def _check_custom_dataset(ds: DictConfig) -> None:
    """Your own data: the paths it needs are given (the configs leave them null), eval_split is known."""
    required = ["root"] + (["train_list", "val_list"] if ds.name in ("listfile", "multilabel_listfile") else []) + (
        ["lists_dir"] if ds.name in LIST_BENCHMARKS or ds.name in MLT_BENCHMARKS else [])
    docs = "docs/multilabel.md" if ds.name in MULTILABEL_DATASETS else "docs/custom_data.md"
    for key in required:
        if OmegaConf.is_missing(ds, key) or ds.get(key) in (None, ""):
            _fail(f"dataset.{key}", ds.get(key) if not OmegaConf.is_missing(ds, key) else "???",
                  f"dataset={ds.name} needs dataset.{key}=<path> ({docs})")
    if ds.name in LIST_BENCHMARKS and ds.get("eval_split", "test") not in EVAL_SPLITS:
        _fail("dataset.eval_split", ds.get("eval_split"), f"choose one of {', '.join(EVAL_SPLITS)}")


def _check_multilabel(ds: DictConfig, loss: DictConfig, sampler: str) -> None:
    """loss.multilabel_weighting, and what multi-label data needs: a sigmoid-based loss, instance sampling."""
    weighting = loss.get("multilabel_weighting", "sample")
    if weighting not in MULTILABEL_WEIGHTINGS:
        _fail("loss.multilabel_weighting", weighting, f"choose one of {', '.join(MULTILABEL_WEIGHTINGS)}")
    if ds.name not in MULTILABEL_DATASETS:
        if weighting != "sample":
            _fail("loss.multilabel_weighting", weighting, f"it weighs the labels of multi-label images; dataset={ds.name} "
                                                          "has one label per image, weighted w[y] as in the paper: leave it sample")
        return
    if loss.name not in ("sigmoid", "focal"):
        _fail("loss.name", loss.name, f"dataset={ds.name} is multi-label and {loss.name} takes one label per image; "
                                      "use loss=sigmoid or loss=focal (docs/multilabel.md)")
    if sampler != "instance":
        _fail("sampler.name", sampler, f"dataset={ds.name} is multi-label and class-aware sampling draws one image per "
                                       "class, while a multi-label image has several; use sampler=instance")
    if weighting == "class" and loss.get("reduction", "batch") != "batch":
        _fail("loss.reduction", loss.reduction, "multilabel_weighting=class weights classes, not images: there is no "
                                                "sum of image weights to divide by; use reduction=batch")


def _check_weighting(loss: DictConfig, optim: DictConfig) -> None:
    weighting = loss.get("weighting", "effective_number")
    if weighting not in WEIGHTINGS:
        _fail("loss.weighting", weighting, f"choose one of {', '.join(WEIGHTINGS)}")
    if weighting != "effective_number" and loss.beta != 0:
        _fail("loss.beta", loss.beta, f"beta applies only to loss.weighting=effective_number (this run uses {weighting}); leave it 0")
    reduction = loss.get("reduction", "batch")
    if reduction not in REDUCTIONS:
        _fail("loss.reduction", reduction, f"choose one of {', '.join(REDUCTIONS)}")
    try:
        drw_epoch = loss.get("drw_epoch")
    except InterpolationResolutionError:
        raise ConfigError(
            f"loss.drw_epoch={OmegaConf.to_container(loss)['drw_epoch']} is not allowed: it follows the first lr "
            f"milestone, and optim.milestones={list(optim.milestones)} has none; set loss.drw_epoch=<epoch>"
        ) from None
    if drw_epoch is None:
        return
    epochs = optim.epochs
    if isinstance(drw_epoch, bool) or not isinstance(drw_epoch, int) or not 1 <= drw_epoch < epochs:
        _fail("loss.drw_epoch", drw_epoch, f"must be null or an integer in 1..{epochs - 1} (epochs trained before the "
                                           f"re-weighting starts; optim.epochs={epochs})")
    if weighting == "effective_number" and loss.beta == 0:
        _fail("loss.drw_epoch", drw_epoch, "deferred re-weighting needs weights to defer: set loss.beta > 0 "
                                           "or loss.weighting=inverse / inverse_sqrt")


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
