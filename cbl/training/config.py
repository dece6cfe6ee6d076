"""Config checks that run before any work starts, and the Hydra resolvers of configs/.

`check(cfg)` raises `ConfigError` (a ValueError) with one line naming the key, the value and what is allowed:
an interpolation that does not resolve, beta outside [0, 1), gamma < 0, imbalance factor < 1, unknown dataset /
model / loss / sampler / optimizer names, ResNet-32 (the CIFAR network) on a Table 3 dataset, unknown weighting / reduction, a dataset.order other than shuffled / authors_stream (authors_stream
only for CIFAR / digits and sampler=instance), drw_epoch outside 1..epochs-1 or with nothing to defer, LDAM
max_m / s <= 0, logit-adjustment tau < 0, epochs / batch size / lr <= 0, an unsupported input size, your own
dataset (imagefolder, listfile, imagenet_lt, places_lt) without its root / list paths, on multi-label data
(cbl/data/multilabel.py) a loss other than sigmoid / focal or a sampler other than instance, a
loss.multilabel_weighting other than sample / class (class on single-label data), or a key
that no config file defines (a typo added with `+key=value`).

A command-line override that does not compose (a misspelt plain `key=value`, a group option that does not exist)
never reaches `check`: cbl.training.overrides refuses it first, in the same one line.

The keys each config group allows are read from the YAML files of that group under configs/, so the check
and the configs cannot drift apart.  The resolvers: cbl_run_name / cbl_run_group (the run's folder, from
cbl.training.run_identity), cbl_cifar_lr_factors (the authors' CIFAR lr multipliers, cbl.training.recipes),
cbl_by_rank / cbl_rank (what each process of a distributed job writes).  The run-identity helpers
(run_name, comparable, RUNTIME_KEYS, ...) are re-exported here for the code that composes and checks a config.
"""

from __future__ import annotations

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
from cbl.losses.criterion import LOSS_NAMES
from cbl.losses.logit_adjustment import check_max_margin, check_scale, check_tau
from cbl.losses.weighting import WEIGHTINGS
from cbl.models import MODEL_NAMES, MODEL_OPTIONS
from cbl.training import recipes
from cbl.training.distributed import process_rank
from cbl.training.optim import OPTIMIZER_NAMES, check_schedule
from cbl.training.perf import COMPILE_MODES, compile_options
from cbl.training.run_identity import (  # noqa: F401  (re-exported)
    ADDED_KEYS,
    PAPER_TABLE_OF,
    RUNTIME_KEYS,
    comparable,
    first_difference,
    other_recipe,
    recorded_run_name,
    run_group,
    run_identity,
    run_name,
    with_added_keys,
)
from cbl.training.tracking import WANDB_MODES


def _config_dir() -> Path:
    """The Hydra configs: cbl/configs inside the package (a wheel holds them as files; in a checkout it is a link to
    the repository's configs/, the one copy people edit), else the checkout's configs/ (where links are not kept)."""
    package = Path(__file__).resolve().parent.parent  # cbl/
    packaged = package / "configs"
    # resolved: in a checkout, paths in messages then name configs/, the files to edit
    return (packaged if (packaged / "train.yaml").is_file() else package.parent / "configs").resolve()


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
class ConfigError(ValueError):
    """A config value or key that is not allowed; the message is one line a user can act on."""


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
