"""Find and read run directories: the one place that knows the on-disk format of a training run.

A run directory holds `metrics.json` (written by `cbl.train` at the end of a run or when it fails) and
`metrics.jsonl` (one JSON object per finished epoch).  Status of a run:

    finished    metrics.json with status "finished"
    failed      metrics.json with status "failed" (its `error` is the one-line reason), or any other status
    incomplete  metrics.json with status "interrupted" (SIGTERM / Ctrl-C: resume=true continues it), or
                metrics.jsonl or config.yaml but no metrics.json: preempted, killed, or still running

Used by scripts/make_table.py, scripts/plot.py and scripts/sweep_summary.py.

Public API: `find_runs(root) -> list[Run]`, `find_runs_in(roots)`, `one_vote(runs)`, `select_runs(runs, recipe, where)`, `Run`, `RunsError`, `Stat`, `summarize(values)`,
`is_paper_method(run)`, `PAPER_LOSSES`, `SETTINGS_DEFAULTS`, `REFERENCE_RUNTIME`.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from cbl.training.recipes import (  # noqa: F401  (re-exported: the run fields of a config and how they differ)
    OFFICIAL_DATA,
    REFERENCE_RUNTIME,
    fields_from_config,
    recipe_differences,
    schedule,
)
from cbl.training.recipes import recipe as paper_recipe

#: The loss families of the paper; `run.method` equal to one of these (or absent) marks a paper run.
PAPER_LOSSES = ("softmax", "sigmoid", "focal")
#: run fields of the options beyond the paper and their paper defaults (absent = default); loss-specific
#: parameters (tau, max_m, s) have no default and are shown whenever recorded
SETTINGS_DEFAULTS: dict[str, Any] = {
    "weighting": "effective_number", "drw_epoch": None, "reduction": "batch", "sampler": "instance",
    "tau": None, "s": None, "max_m": None, "multilabel_weighting": "sample",
}
class RunsError(Exception):
    """A one-line, user-facing problem with the run directories (missing root, unreadable JSON, ...)."""


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation (n - 1 denominator; 0 when n = 1) of one cell's values."""

    mean: float
    std: float
    n: int


def summarize(values: Iterable[float | None]) -> Stat | None:
    """Stat of the non-None values; None when there are none."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return None
    mean = sum(xs) / len(xs)
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return Stat(mean, std, len(xs))


def _natural_key(path: Path) -> list:
    # Hydra numbers sweep jobs 0, 1, ..., 299: sort "10" after "9", not after "1"
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.as_posix())]


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunsError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise RunsError(f"cannot read {path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_history(path: Path) -> list[dict]:
    """The per-epoch records of a metrics.jsonl, one per epoch, sorted by epoch.

    A last line without its newline is a write cut short by preemption and is dropped; any other bad line is
    an error.  A resumed run may log an epoch twice; the later line wins.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RunsError(f"cannot read {path}: {e}") from None
    lines = text.split("\n")
    by_epoch: dict[int, dict] = {}
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            epoch = int(rec["epoch"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            if i == len(lines) - 1:  # unterminated last line: the writer was killed mid-line
                break
            raise RunsError(f"cannot read {path} line {i + 1}: {e}") from None
        by_epoch[epoch] = rec
    return [by_epoch[e] for e in sorted(by_epoch)]


@dataclass(frozen=True)
class Run:
    """One run directory.  `metrics` is the parsed metrics.json ({} for an incomplete run)."""

    path: Path
    status: str  # "finished", "failed" or "incomplete"
    metrics: dict[str, Any] = field(repr=False)
    error: str | None  # the failure reason of a failed run, else None
    last_epoch: int | None  # the last epoch that finished, None when none is known

    # ------------------------------------------------------------------ the run's configuration
    @cached_property
    def config(self) -> dict[str, Any]:
        """`metrics.json["run"]`: dataset, imbalance_factor, model, input_size, loss, beta, gamma, ...  What it lacks
        (a run stopped before metrics.json, or recorded before the recipe and data source were) is read from the
        run's config.yaml, so such runs can still be described and selected."""
        run = self.metrics.get("run")
        run = run if isinstance(run, dict) else {}
        if all(k in run for k in ("optimizer", "data_source")):  # complete: no YAML to parse
            return run
        return {**_fields_from_config_yaml(self.path), **run}

    @property
    def dataset(self) -> str | None:
        return self.config.get("dataset")

    @property
    def imbalance_factor(self) -> int | float | None:
        v = self.config.get("imbalance_factor")
        # 100.0 and 100 are the same dataset; keep ints so tables print "100"
        return int(v) if isinstance(v, float) and v.is_integer() else v

    @property
    def model(self) -> str | None:
        return self.config.get("model")

    @property
    def input_size(self) -> int | None:
        return self.config.get("input_size")

    @property
    def loss(self) -> str | None:
        return self.config.get("loss")

    @property
    def beta(self) -> float:
        """Class-balancing beta; 0 (also when absent) means no class balancing."""
        return float(self.config.get("beta") or 0.0)

    @property
    def gamma(self) -> float | None:
        """Focal gamma; None for losses other than focal, where a recorded gamma has no effect."""
        if self.loss != "focal":
            return None
        return float(self.config.get("gamma") or 0.0)

    @property
    def method(self) -> str | None:
        """The method label for rows beyond the paper; defaults to the loss name."""
        return self.config.get("method") or self.loss

    @property
    def settings(self) -> str:
        """The options beyond the paper that differ from the paper's defaults, e.g. "weighting=inverse" or
        "drw_epoch=160, reduction=weighted_mean, s=30, max_m=0.5"; "" for a paper configuration (and for runs
        recorded before these options existed, which had the defaults)."""
        return self.settings_without()

    def settings_without(self, *keys: str) -> str:
        """`settings` leaving out `keys`."""
        cfg = self.config
        parts = []
        for key, default in SETTINGS_DEFAULTS.items():
            if key in keys:
                continue
            value = cfg.get(key, default)
            if value != default:
                parts.append(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}")
        return ", ".join(parts)

    @property
    def multilabel(self) -> bool:
        """A run on multi-label data (cbl/data/multilabel.py): it reports mAP, not top-1 error."""
        return self.metrics.get("task") == "multilabel" or "multilabel_weighting" in self.config

    @property
    def precision(self) -> str:
        """"fp32" or "bf16" (autocast); runs recorded before the option existed trained in fp32."""
        return str(self.config.get("precision") or "fp32")

    @property
    def data_source(self) -> str | None:
        """"official", "npz:<file>@sha256:<hash>", ... (cbl/data/provenance.py); None when not recorded."""
        return self.config.get("data_source")

    def recipe_differences(self, *without: str) -> list[str]:
        """How this run's recipe differs from the one behind its paper table (cbl.training.recipes.recipe), precision, data
        order and data source included, e.g. ["epochs=20", "precision=bf16", "data=npz:x.npz@sha256:..."]; [] for
        a run that may fill a paper cell.  Keys in `without` are not compared."""
        return recipe_differences(self.config, *without)

    def schedule(self) -> tuple[tuple[str, str], ...]:
        """The recorded training schedule (cbl.training.recipes.schedule): runs of one row or pair share it."""
        return schedule(self.config)

    def deviations(self, *without: str) -> str:
        """`settings` and `recipe_differences`, one string: what keeps the run out of the paper's own cells."""
        return ", ".join(p for p in [self.settings_without(*without), *self.recipe_differences(*without)] if p)

    @property
    def seed(self) -> int | None:
        seed = self.metrics.get("seed")
        return self.config.get("seed") if seed is None else seed

    @property
    def subset_seed(self) -> int | None:
        """The seed that drew the long-tailed subset (0: the default one); None for runs recorded before it was."""
        return self.metrics.get("subset_seed")

    @property
    def draw(self) -> tuple:
        """(seed, subset seed): what pairs two runs of one comparison (the same initialisation and batches, on the
        same long-tailed images); runs of different subsets never pair, even at one seed."""
        return (self.seed, self.subset_seed)

    @property
    def draw_label(self) -> str:
        """The seed, and the long-tailed subset where it is not the default (0): "1", or "0 on subset 2"."""
        return f"{self.seed}" + ("" if self.subset_seed in (None, 0) else f" on subset {self.subset_seed}")

    @property
    def identity(self) -> str:
        """Everything recorded about the configuration but the seed, as one string: two finished runs with the same
        identity, seed and subset seed are the same run twice (the tables count the newest once, cbl.reporting.table_parts.one_vote)."""
        cfg = {k: v for k, v in self.config.items() if k != "seed"}
        return json.dumps([cfg, self.subset_seed], sort_keys=True, default=str)

    @property
    def finished_at(self) -> float:
        """When metrics.json was written (its "finished_at", else the file's modification time), for picking the
        newest of duplicate runs."""
        stamp = self.metrics.get("finished_at")
        if isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
            return float(stamp)
        try:
            return (self.path / "metrics.json").stat().st_mtime
        except OSError:
            return 0.0

    # ------------------------------------------------------------------ results
    def value(self, name: str) -> float | None:
        """A numeric top-level metric (e.g. "top1_err", "best_top1_err"), None when absent or not finite."""
        v = self.metrics.get(name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return None
        return float(v)

    def shot(self, group: str) -> float | None:
        """Accuracy on the "many" / "medium" / "few" shot classes (None when the group is empty)."""
        shots = self.metrics.get("shot_acc") or {}
        v = shots.get(group) if isinstance(shots, dict) else None
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    def history(self) -> list[dict]:
        """Per-epoch records from metrics.jsonl ([] when there is none)."""
        path = self.path / "metrics.jsonl"
        return read_history(path) if path.is_file() else []

    @property
    def reason(self) -> str:
        """One line saying why the run is not in a table ("" for a finished run)."""
        if self.status == "finished":
            return ""
        if self.status == "failed":
            return f"failed: {self.error or 'no reason recorded'}"
        if self.last_epoch is None:
            return "incomplete: no metrics.json, no epoch logged"
        return f"incomplete: no metrics.json, last epoch {self.last_epoch}"

    @property
    def overrides(self) -> list[str] | None:
        """Hydra's command-line overrides (.hydra/overrides.yaml) when present: what to relaunch."""
        path = self.path / ".hydra" / "overrides.yaml"
        if not path.is_file():
            return None
        import yaml  # only needed here; keeps `import cbl.reporting.runs` light

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return None  # informational only; a damaged file must not stop a summary
        return [str(x) for x in data] if isinstance(data, list) else None

    def describe(self) -> str:
        """A short label of the configuration, e.g. "cifar10_lt IF 100 resnet32 focal beta=0.9999 gamma=1 seed 0"."""
        if not self.config:
            return ""
        parts = [str(self.dataset)]
        if self.imbalance_factor is not None:
            parts.append(f"IF {self.imbalance_factor}")
        parts += [str(self.model), str(self.method)]
        if self.method != self.loss:
            parts.append(f"({self.loss})")
        parts.append(f"beta={self.beta:g}")
        if self.gamma is not None:
            parts.append(f"gamma={self.gamma:g}")
        if self.deviations():
            parts.append(f"[{self.deviations()}]")
        if self.seed is not None:
            parts.append(f"seed {self.seed}")
        return " ".join(parts)


def read_config_yaml(run_dir: Path) -> dict[str, Any]:
    """A run folder's config.yaml as written by training (the resolved config, then `data_source:`), parsed: the one
    reader of it for tables, figures, summaries and cbl-collect-runs.  RunsError for a file that is missing or not a
    YAML mapping."""
    file = Path(run_dir) / "config.yaml"
    import yaml  # only needed here; keeps `import cbl.reporting.runs` light

    try:
        cfg = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise RunsError(f"cannot read {file}: {' '.join(str(e).split())}") from None
    if not isinstance(cfg, dict):
        raise RunsError(f"{file} is not a mapping of config keys")
    return cfg


def _fields_from_config_yaml(path: Path) -> dict[str, Any]:
    """The run fields a run's config.yaml holds ({} without a readable one): `fields_from_config`."""
    try:
        return fields_from_config(read_config_yaml(path))
    except RunsError:
        return {}  # a run without a readable config.yaml is still listed (as incomplete or failed)


def read_run(path: str | os.PathLike) -> Run:
    """Read one run directory (it must hold metrics.json, metrics.jsonl or config.yaml)."""
    path = Path(path)
    metrics_file, history_file = path / "metrics.json", path / "metrics.jsonl"
    if not metrics_file.is_file():
        last = read_history(history_file)[-1:] if history_file.is_file() else []
        return Run(path, "incomplete", {}, None, int(last[0]["epoch"]) if last else None)
    metrics = _read_json(metrics_file)
    status, error = metrics.get("status"), metrics.get("error")
    if status == "interrupted":
        status = "incomplete"
    elif status not in ("finished", "failed"):
        status, error = "failed", f"unexpected status {status!r} in metrics.json"
    last_epoch = metrics.get("epochs_completed")
    if not isinstance(last_epoch, int) or isinstance(last_epoch, bool):
        last = read_history(history_file)[-1:] if history_file.is_file() else []
        last_epoch = int(last[0]["epoch"]) if last else None
    return Run(path, status, metrics, str(error) if error is not None else None, last_epoch)


def find_runs(root: str | os.PathLike) -> list[Run]:
    """Every run directory under `root` (root itself included), sorted by path with numbers in numeric order.

    A directory is a run when it holds metrics.json or metrics.jsonl.  A directory that holds only config.yaml
    (a run killed before its first epoch) counts as an incomplete run unless a run lies below it.  Hidden
    directories (Hydra's .hydra/) are not searched.  Raises RunsError when root is missing or holds no runs.
    """
    root = Path(root)
    if not root.is_dir():
        raise RunsError(f"{root} is not a directory")
    runs: list[Path] = []
    config_only: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        names = set(filenames)
        if "metrics.json" in names or "metrics.jsonl" in names:
            runs.append(Path(dirpath))
        elif "config.yaml" in names:
            config_only.append(Path(dirpath))
    runs += [c for c in config_only if not any(c in r.parents for r in runs)]
    if not runs:
        raise RunsError(f"no run directories with metrics.json under {root}")
    return [read_run(p) for p in sorted(runs, key=_natural_key)]


class SelectionError(RunsError):
    """A --recipe / --where selection that is malformed or would mix recipes where it must not."""


def select_runs(runs: list[Run], recipe: str = "all", where: Iterable[str] = ()) -> list[Run]:
    """The runs a table or figure shows.  Finished runs are kept when their recipe matches `recipe` ("paper": no
    recipe difference on a dataset of the paper, the runs that may fill the paper's cells; "all"; or a recipe spelled as
    `", ".join(run.recipe_differences())`, e.g. "precision=bf16, data=npz:x.npz@sha256:...") and every
    `where` condition "key=value" holds for their recorded fields (`Run.config`; numbers compare as numbers, a list
    as itself, spaces aside, e.g. milestones=[160,180], other text as a shell-style pattern, e.g. data_source='npz:*';
    a run that does not record precision or order ran at float32, in the shuffled order: REFERENCE_RUNTIME).
    Failed and incomplete runs are kept when they meet the `where` conditions they record, so tables can list them."""
    conditions = [_condition(w) for w in where]
    recorded = [r.config for r in runs if r.config]
    for key, value in conditions:  # a misspelt key would select nothing, silently
        if recorded and key not in REFERENCE_RUNTIME and not any(key in fields for fields in recorded):
            known = sorted({k for fields in recorded for k in fields})
            raise SelectionError(f"--where {key}={value}: no run records a field {key!r}; the fields are "
                                 f"{', '.join(known)}")
    out = []
    for r in runs:
        if not all(_holds(r, key, value) for key, value in conditions):
            continue
        if r.status == "finished" and recipe != "all" and ", ".join(r.recipe_differences()) != (
                "" if recipe == "paper" else recipe):
            continue
        if r.status == "finished" and recipe == "paper" and paper_recipe(r.dataset, r.imbalance_factor) is None:
            continue  # data the paper has no recipe for (digits, your own) never fills a paper cell
        out.append(r)
    return out


def _condition(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise SelectionError(f"--where {text!r} is not allowed: write key=value, e.g. dataset=cifar10_lt")
    return key.strip(), value.strip()


def _holds(run: Run, key: str, value: str) -> bool:
    if not run.config:  # nothing recorded (an incomplete run): it cannot be told apart, keep it
        return True
    # a run recorded before precision / order were fields ran at their reference value, as recipe_differences reads it
    have = run.config.get(key, REFERENCE_RUNTIME.get(key))
    if isinstance(have, bool):  # true / false as YAML and JSON spell them
        return str(have).lower() == value.lower()
    try:
        return have is not None and not isinstance(have, bool) and float(have) == float(value)
    except (TypeError, ValueError):
        if _spaceless(str(have)) == _spaceless(value):  # a list, e.g. milestones=[160,180]: its brackets are not a pattern
            return True
        # text compares as a shell-style pattern: data_source='npz:cifar10_jpeg_lossy.npz@*'
        return fnmatch.fnmatchcase(str(have).lower(), value.lower())


def _spaceless(text: str) -> str:
    return "".join(text.split()).lower()


def one_vote(runs: list[Run]) -> tuple[list[Run], list[tuple[Run, list[Run]]]]:
    """Each run once: of the runs with the same recorded configuration (data source included), seed and subset seed
    (the same run trained twice, e.g. in two folders), the newest (`finished_at`) counts, so a duplicate never
    changes a mean or an n.  Returns the runs kept, in their order, and (kept, the others) per duplicated run."""
    groups: dict[tuple, list[Run]] = {}
    for r in runs:
        groups.setdefault((r.identity, r.seed), []).append(r)
    newest = {key: max(rs, key=lambda r: (r.finished_at, str(r.path))) for key, rs in groups.items()}
    duplicates = [(newest[key], [r for r in rs if r is not newest[key]]) for key, rs in groups.items() if len(rs) > 1]
    keep = {id(r) for r in newest.values()}
    return [r for r in runs if id(r) in keep], duplicates


def find_runs_in(roots: Iterable[str | os.PathLike], missing_ok: bool = False) -> list[Run]:
    """`find_runs` over several folders, each run once (folders may nest); with `missing_ok` an absent folder or one
    without runs adds nothing instead of raising."""
    seen, out = set(), []
    for root in roots:
        try:
            found = find_runs(root)
        except RunsError:
            if missing_ok:
                continue
            raise
        for r in found:
            if r.path.resolve() not in seen:
                seen.add(r.path.resolve())
                out.append(r)
    return out


def draw_order(run: Run) -> tuple:
    """Runs by seed, then subset seed (the default subset first); a run without a recorded seed last."""
    return (run.seed is None, 0 if run.seed is None else run.seed, run.subset_seed or 0)


def is_paper_method(run: Run) -> bool:
    """A run of one of the paper's losses (softmax / sigmoid / focal, class-balanced by beta) without the options
    beyond the paper; it fills a paper cell only if its `recipe_differences()` are [] as well."""
    method = run.config.get("method")
    return run.loss in PAPER_LOSSES and (method is None or method == run.loss) and not run.settings
