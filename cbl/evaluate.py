"""Evaluate a trained model again: `cbl-evaluate <run dir | checkpoint> [options] [key=value ...]`
(also `python -m cbl.evaluate`).

    cbl-evaluate outputs/table2/cifar10_lt-if100-resnet32-focal-b0.9999-g1-s0-3fa2c1d0
    cbl-evaluate <run dir> --checkpoint best                  # the best-top-1 epoch's (trained with keep_best=true)
    cbl-evaluate <run dir>/checkpoints/epoch_0150.pt          # one checkpoint file
    cbl-evaluate <run dir> dataset.root=/mnt/cifar device=cpu # the data elsewhere now, on another device

Rebuilds the model and the test data from the run's config.yaml (the `data_source:` record at its end says what
the data was, it is no config key), loads a checkpoint (the newest valid one by default), evaluates the test set
exactly as training does (the same loader, batch size, precision, channels_last and compile settings: cbl.training.engine),
and writes <run>/eval/<checkpoint name>/ (or --out): evaluation.json (top-1 / top-5 error, ECE and NLL, per-class and
many / medium / few-shot accuracy, cbl.evaluation.metrics.shot_accuracy, and what training recorded for that epoch), the
confusion matrix, predictions.npz (logits and labels, cbl/training/predictions.py) and two PNGs (cbl/reporting/eval_report.py).
On the device and precision it was trained with, a run's final checkpoint gives metrics.json's numbers exactly; a
finished run recorded before predictions and calibration were saved is then completed (`complete_run`): its
predictions_last.npz and metrics.json's ece / nll come from that very evaluation.

`key=value` overrides change the run's config as on the `cbl-train` command line (existing keys only: a typo is
an error); runtime keys (dataset.root, device, eval_batch_size, ...) are what they are for.  A checkpoint file
outside a run folder is evaluated with the config stored in it, completed by the defaults of configs/.

Bad input is one line, exit status 2: a path that is neither a run folder nor a checkpoint, a run without
checkpoints, a corrupt checkpoint, a checkpoint of another architecture or class count than the config and data
build (the differing state-dict keys and shapes are named), an unknown key.
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import OverrideType
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from cbl.training import config as cbl_config
from cbl.cli import ArgumentParser, fail
from cbl.evaluation.metrics import shot_accuracy
from cbl.reporting.runs import RunsError, read_history
from cbl.training.checkpoint import (CHECKPOINT_DIR, CorruptCheckpointError, atomic_write, best_epoch,
                                     checkpoint_path, list_checkpoints, load_checkpoint, load_latest_checkpoint)
from cbl.training.run_files import write_json

log = logging.getLogger("cbl.evaluate")

PROG = "cbl-evaluate"
EVAL_DIR = "eval"
#: not metrics.json, which marks a run folder for cbl.reporting.runs.find_runs (tables, sweep summaries)
EVAL_FILE = "evaluation.json"


class EvalError(Exception):
    """Input `cbl-evaluate` cannot use; the message is one line a user can act on."""


@dataclass
class Target:
    """What to evaluate: the run folder (None for a loose checkpoint file) and the checkpoint's loaded state."""

    run_dir: Path | None
    checkpoint: Path
    state: dict[str, Any]


# ----------------------------------------------------------------------------- which checkpoint
def _load(path: Path) -> dict[str, Any]:
    try:
        state = load_checkpoint(path, map_location="cpu")
    except CorruptCheckpointError as e:
        raise EvalError(str(e).splitlines()[0]) from None
    if not isinstance(state.get("model"), dict):
        raise EvalError(f"checkpoint {path} holds no model weights (no 'model' state dict)")
    return state


def _run_dir_of(path: Path) -> Path | None:
    """The run folder of a path: a folder with config.yaml, or the checkpoints/ folder of one."""
    for folder in (path, path.parent) if path.name == CHECKPOINT_DIR else (path,):
        if (folder / "config.yaml").is_file():
            return folder
    return None


def _history(run_dir: Path) -> list[dict[str, Any]]:
    """The run's metrics.jsonl, one record per epoch ([] without one; cbl.reporting.runs.read_history)."""
    path = run_dir / "metrics.jsonl"
    try:
        return read_history(path) if path.is_file() else []
    except RunsError as e:  # a damaged line in the middle: one line for the user, as any other bad input
        raise EvalError(str(e)) from None


def _best(run_dir: Path) -> Path:
    history = _history(run_dir)
    if not history:  # metrics.jsonl missing: the newest checkpoint holds the same history
        newest = load_latest_checkpoint(run_dir)
        history = newest["history"] if newest else []
    epoch = best_epoch(history)
    if epoch is None:
        raise EvalError(f"--checkpoint best: {run_dir} has no evaluated epoch in its history (metrics.jsonl)")
    path = checkpoint_path(run_dir, epoch)
    if not path.is_file():
        kept = sorted(e for e, _ in list_checkpoints(run_dir))
        err = next(r["top1_err"] for r in history if r["epoch"] == epoch)
        raise EvalError(f"--checkpoint best: the best epoch, {epoch} (top-1 error {err:.2f}%), has no checkpoint in "
                        f"{run_dir / CHECKPOINT_DIR} (kept: epochs {kept}); train with keep_best=true to keep it")
    return path


def find_target(path: str, checkpoint: str | None) -> Target:
    """Resolve the command line's path and --checkpoint (newest | best | a file) to a run folder and a checkpoint."""
    p = Path(path)
    if not p.exists():
        raise EvalError(f"{path}: no such file or folder; give a run folder (with config.yaml) or a checkpoint file (.pt)")
    if p.is_file():
        if p.suffix != ".pt":
            raise EvalError(f"{path} is neither a run folder (with config.yaml) nor a checkpoint file (.pt)")
        if checkpoint not in (None, "newest"):
            raise EvalError(f"--checkpoint {checkpoint} is for a run folder; {path} is already a checkpoint file")
        return Target(_run_dir_of(p.parent), p, _load(p))
    run_dir = _run_dir_of(p)
    if run_dir is None:
        raise EvalError(f"{path} is neither a run folder (it has no config.yaml) nor a checkpoint file (.pt)")
    if checkpoint not in (None, "newest", "best"):
        file = Path(checkpoint)
        if not file.is_file():
            raise EvalError(f"--checkpoint {checkpoint}: no such file; choose newest, best or a checkpoint file")
        return Target(run_dir, file, _load(file))
    if checkpoint == "best":
        file = _best(run_dir)
        return Target(run_dir, file, _load(file))
    found = list_checkpoints(run_dir)
    if not found:
        raise EvalError(f"{run_dir} has no checkpoints ({CHECKPOINT_DIR}/epoch_*.pt): was training stopped before "
                        f"its first epoch ended?")
    corrupt = []
    for _, file in found:  # the newest that verifies, as resume=true picks it (cbl.training.checkpoint.load_latest_checkpoint)
        try:
            state = _load(file)
        except EvalError as e:
            corrupt.append(str(e))
            continue
        for reason in corrupt:  # only now: when nothing is valid, the error below is the one line
            log.warning("skipped: %s", reason)
        return Target(run_dir, file, state)
    raise EvalError(f"none of the {len(found)} checkpoint(s) in {run_dir / CHECKPOINT_DIR} is valid; the newest: {corrupt[0]}")


# ----------------------------------------------------------------------------- the config
def config_of(target: Target) -> tuple[dict[str, Any], dict | str | None]:
    """(the plain config to build from, the recorded data source): the run's config.yaml, or for a loose checkpoint
    the config it stores (without runtime keys), completed by the defaults of configs/train.yaml and its dataset."""
    if target.run_dir is not None:
        plain = OmegaConf.to_container(OmegaConf.load(target.run_dir / "config.yaml"), resolve=False)
        source = plain.pop("data_source", None)  # the provenance record run_files.write_config appends
        return cbl_config.with_added_keys(plain), source
    stored = target.state.get("config")
    if not isinstance(stored, dict) or not isinstance(stored.get("dataset"), dict) or not isinstance(stored.get("model"), dict):
        raise EvalError(f"{target.checkpoint} holds no config; evaluate it from its run folder (with config.yaml)")
    saved = cbl_config.with_added_keys(dict(stored))
    source = saved.pop("data_source", None)
    defaults = OmegaConf.to_container(OmegaConf.load(cbl_config.CONFIG_DIR / "train.yaml"), resolve=False)
    for key in ("defaults", "hydra", "name"):  # Hydra's own, and the folder name (an interpolation of the groups)
        defaults.pop(key, None)
    dataset_file = cbl_config.CONFIG_DIR / "dataset" / f"{saved['dataset'].get('name')}.yaml"
    dataset = OmegaConf.to_container(OmegaConf.load(dataset_file)) if dataset_file.is_file() else {}
    plain = OmegaConf.to_container(OmegaConf.merge(defaults, saved, {"dataset": {**dataset, **saved["dataset"]}}))
    return plain, source


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> None:
    """Hydra-style `key=value` (values parsed as Hydra parses them) on keys the config has."""
    parsed = []
    for override in overrides:  # one at a time, to name the bad one
        try:
            parsed += OverridesParser.create().parse_overrides([override])
        except HydraException as e:
            raise EvalError(f"{override}: {str(e).splitlines()[0]} (Hydra's override syntax: key=value)") from None
    for o in parsed:
        if o.type != OverrideType.CHANGE or o.is_sweep_override():
            raise EvalError(f"{o.input_line}: only key=value of the run's existing keys is allowed here (no +, ~ or sweeps)")
        key = o.key_or_group
        parent_key, _, leaf = key.rpartition(".")
        parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
        if not isinstance(parent, DictConfig) or leaf not in parent:
            where = f"{parent_key} has" if isinstance(parent, DictConfig) and parent_key else "known keys:"
            known = ", ".join(sorted(map(str, parent))) if isinstance(parent, DictConfig) else ""
            raise EvalError(f"{o.input_line}: the run's config has no key {key!r}" + (f"; {where} {known}" if known else ""))
        if isinstance(parent[leaf], DictConfig):
            raise EvalError(f"{o.input_line}: {key} is a config group; a checkpoint is evaluated with the config it was "
                            f"trained with, so change single keys, e.g. {key}.{'root' if 'root' in parent[leaf] else 'name'}=...")
        OmegaConf.update(cfg, key, o.value(), merge=False)


# ----------------------------------------------------------------------------- the checkpoint against the model
def state_dict_mismatch(model: dict[str, torch.Tensor], checkpoint: dict[str, torch.Tensor]) -> str | None:
    """What differs between the state dict a model has and the one a checkpoint holds (keys and shapes), or None."""
    shapes = [f"{k} is {tuple(checkpoint[k].shape)} in the checkpoint, {tuple(v.shape)} in the model"
              for k, v in model.items() if k in checkpoint and tuple(checkpoint[k].shape) != tuple(v.shape)]
    missing = [k for k in model if k not in checkpoint]
    extra = [k for k in checkpoint if k not in model]
    parts = []
    if shapes:
        parts.append("; ".join(shapes[:3]) + (f" (and {len(shapes) - 3} more shapes)" if len(shapes) > 3 else ""))
    if missing:
        parts.append(f"{len(missing)} key(s) of the model not in the checkpoint ({', '.join(missing[:3])}"
                     + (", ..." if len(missing) > 3 else "") + ")")
    if extra:
        parts.append(f"{len(extra)} key(s) of the checkpoint not in the model ({', '.join(extra[:3])}"
                     + (", ..." if len(extra) > 3 else "") + ")")
    return "; ".join(parts) or None


def _trained_as(state: dict[str, Any]) -> str:
    """What the checkpoint says it was trained as (model and dataset), for the mismatch message."""
    saved = state.get("config") or {}
    model, dataset = saved.get("model") or {}, saved.get("dataset") or {}
    fc = state["model"].get("fc.weight")
    classes = f", {fc.shape[0]} classes" if isinstance(fc, torch.Tensor) and fc.dim() == 2 else ""
    return f" (the checkpoint was trained as model.name={model.get('name')}, dataset.name={dataset.get('name')}{classes})" \
        if model or dataset else ""


# ----------------------------------------------------------------------------- the evaluation
def evaluate_run(target: Target, overrides: list[str], out: Path | None = None) -> tuple[dict[str, Any], Path]:
    """Evaluate `target` and write its files; returns (evaluation.json's content, the output folder)."""
    from cbl.reporting.eval_report import evaluate_with_predictions, plot_per_class_accuracy, write_confusion
    from cbl.training.distributed import DistEnv, resolve_device
    from cbl.training.perf import compile_options
    from cbl.training.reproducibility import seed_everything
    from cbl.evaluation.calibration import probability_of
    from cbl.training.run import AMP_DTYPES, build_on, build_run_data, logit_scale
    from cbl.data.multilabel import MULTILABEL_DATASETS
    from cbl.training.multilabel import refuse_multilabel

    plain, recorded_source = config_of(target)
    cfg = OmegaConf.create(plain)
    OmegaConf.set_struct(cfg, True)
    apply_overrides(cfg, overrides)
    try:
        cbl_config.check(cfg)
        refuse_multilabel("cbl-evaluate", cfg.dataset.name, cfg.dataset.name in MULTILABEL_DATASETS)
        device = resolve_device(str(cfg.device))
    except ValueError as e:  # ConfigError, a multi-label run, and a device that is not there
        raise EvalError(str(e).splitlines()[0]) from None
    env = DistEnv(rank=0, world_size=1, local_rank=0, device=device)
    seed_everything(int(cfg.seed), bool(cfg.deterministic))  # deterministic kernels as in training
    try:
        data = build_run_data(cfg, env)
        model = build_on(cfg, env, data).model  # as training builds it (head init, channels_last, ...)
    except (ValueError, FileNotFoundError) as e:
        raise EvalError(str(e).splitlines()[0]) from None

    differs = state_dict_mismatch(model.state_dict(), target.state["model"])
    if differs:
        raise EvalError(f"{target.checkpoint} does not fit the model the config builds (model.name={cfg.model.name}, "
                        f"{data.num_classes} classes in the data): {differs}{_trained_as(target.state)}")
    model.load_state_dict(target.state["model"])
    saved = dict(target.state.get("config") or {})
    saved.pop("data_source", None)
    trained = cbl_config.first_difference(cbl_config.with_added_keys(saved),
                                          cbl_config.comparable(OmegaConf.to_container(cfg, resolve=True)))
    if saved and trained:
        log.warning("note: the checkpoint was trained with %s=%r, the config used here says %r", *trained)

    eval_model = torch.compile(model, **compile_options(cfg.compile)) if cfg.compile else model  # as training ran it
    epoch = int(target.state["epoch"])
    result = evaluate_with_predictions(eval_model, data.test, data.num_classes, device=device,
                                       amp_dtype=AMP_DTYPES[cfg.precision], probability=probability_of(cfg.loss.name),
                                       logit_scale=logit_scale(cfg), epoch=epoch)
    m = result.metrics
    shot = shot_accuracy(m["per_class_acc"], data.samples_per_class)
    recorded = next((r for r in target.state.get("history", []) if r.get("epoch") == epoch), None)
    recorded = {k: recorded.get(k) for k in ("top1_err", "top5_err")} if recorded and recorded.get("top1_err") is not None else None

    if out is None:
        base = target.run_dir if target.run_dir is not None else target.checkpoint.parent
        out = base / EVAL_DIR / target.checkpoint.stem
    out.mkdir(parents=True, exist_ok=True)
    files = write_confusion(out, result, data.class_names)
    files["per_class_accuracy_png"] = plot_per_class_accuracy(out / "per_class_accuracy.png", m["per_class_acc"],
                                                              data.samples_per_class, shot).name
    source_id = recorded_source.get("id") if isinstance(recorded_source, dict) else recorded_source
    metrics = {
        "top1_err": m["top1_err"],
        "top5_err": m["top5_err"],
        "ece": m["ece"],
        "nll": m["nll"],
        "probability": result.probability,
        "n": m["n"],
        "per_class_acc": m["per_class_acc"],
        "shot_acc": shot,
        "samples_per_class": list(data.samples_per_class),
        "class_names": list(data.class_names),
        "epoch": epoch,
        "checkpoint": str(target.checkpoint),
        "run_dir": str(target.run_dir) if target.run_dir is not None else None,
        "recorded": recorded,  # what training logged for this epoch (metrics.jsonl / the checkpoint's history)
        "matches_recorded": None if recorded is None else recorded == {"top1_err": m["top1_err"], "top5_err": m["top5_err"]},
        "overrides": list(overrides),
        "device": str(device),
        "precision": str(cfg.precision),
        "data_source": data.source.record() if data.source else None,
        "trained_on_data_source": recorded_source,
        "same_data_as_training": None if source_id is None or data.source is None else source_id == data.source.id,
        "files": files,
    }
    write_json(out / EVAL_FILE, metrics)
    metrics["completed"] = complete_run(target, cfg, metrics, out)
    if metrics["same_data_as_training"] is False:
        log.warning("note: the test data read now (%s) is not what the run trained on (%s)", data.source.id, source_id)
    return metrics, out


def complete_run(target: Target, cfg: DictConfig, metrics: dict[str, Any], out: Path) -> list[str]:
    """A finished run trained before predictions and calibration were recorded gets them from its final checkpoint:
    when the checkpoint is the last epoch's and its evaluation here reproduces the recorded top-1 / top-5 errors
    exactly (the same device and precision), predictions_last.npz is copied into the run folder and metrics.json gains
    ece, nll and probability.  Anything the run already has is left alone.  Returns the files completed."""
    from cbl.training.predictions import LAST
    from cbl.training.run_files import is_finished

    run_dir = target.run_dir
    finished = is_finished(run_dir) if run_dir is not None else None
    if not finished or metrics["epoch"] != int(cfg.optim.epochs) or not metrics["matches_recorded"]:
        return []
    done = []
    if not (run_dir / LAST).is_file():
        atomic_write(run_dir / LAST, lambda f: f.write((out / "predictions.npz").read_bytes()))
        done.append(LAST)
    if any(k not in finished for k in ("ece", "nll", "probability")):
        write_json(run_dir / "metrics.json", {**finished, **{k: finished.get(k, metrics[k]) for k in
                                                             ("ece", "nll", "probability")}})
        done.append("metrics.json")
    for name in done:
        log.info("completed %s", run_dir / name)
    return done


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


@contextmanager
def _console_logging():
    """cbl's information (the data summary of cbl.data) to stdout, its notes and warnings to stderr, so that on bad
    input stderr holds the one error line; removed again on return (main() may run inside another program)."""
    logger = logging.getLogger("cbl")
    info, warn = logging.StreamHandler(sys.stdout), logging.StreamHandler(sys.stderr)
    info.addFilter(lambda record: record.levelno < logging.WARNING)
    warn.setLevel(logging.WARNING)
    level, propagate = logger.level, logger.propagate
    for handler in (info, warn):
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # a handler the host program set on the root logger would print each line twice
    try:
        yield
    finally:
        for handler in (info, warn):
            logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    # optional to argparse, required here: argparse would name `key=value` as missing too (its `*` list follows)
    p.add_argument("path", nargs="?", help="a run folder (with config.yaml and checkpoints/) or a checkpoint file (.pt)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="change the run's config, e.g. dataset.root=/data device=cpu eval_batch_size=500")
    p.add_argument("--checkpoint", metavar="newest|best|FILE",
                   help="newest valid (default), best (the best-top-1 epoch, kept by keep_best=true) or a file")
    p.add_argument("--out", help="output folder (default <run>/eval/<checkpoint name>)")
    args = p.parse_intermixed_args(argv)
    if args.path is None:
        p.error("a run folder or a checkpoint file (.pt) is required, e.g. cbl-evaluate outputs/table2/<run name>")
    with _console_logging():
        try:
            target = find_target(args.path, args.checkpoint)
            metrics, out = evaluate_run(target, args.overrides, Path(args.out) if args.out else None)
        except EvalError as e:
            fail(prog, str(e))
    shot = metrics["shot_acc"]
    print(f"epoch {metrics['epoch']} ({target.checkpoint}): top-1 error {_pct(metrics['top1_err'])}%, top-5 error "
          f"{_pct(metrics['top5_err'])}%, many / medium / few-shot accuracy {_pct(shot['many'])} / "
          f"{_pct(shot['medium'])} / {_pct(shot['few'])}% over {metrics['n']} test images -> {out}")
    if metrics["matches_recorded"] is False:
        rec = metrics["recorded"]
        print(f"note: training recorded top-1 error {_pct(rec['top1_err'])}%, top-5 {_pct(rec['top5_err'])}% for this "
              f"epoch; another device, precision, batch size or data gives other float rounding", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
