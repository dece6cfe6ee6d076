"""Weights & Biases tracking that can never stop training, and that keeps one wandb run per run directory.

Every call into wandb goes through `Tracker`, which turns any failure (no network, a bad API key, a full or
read-only disk under the run's wandb folder, a crash of wandb's service process) into one warning and then
stops calling wandb for the rest of the run.  The run directory's own files (metrics.jsonl, metrics.json)
remain the source of truth; wandb is a view of them.

Default mode is "offline" (no network needed; `wandb sync <run>/wandb/offline-run-*` uploads later),
"disabled" turns wandb off, "online" logs live.

What a run logs (step = epoch, so wandb's x axis is the epoch; `epoch` is logged too):
    every epoch       lr, train_loss, seconds
    every evaluation  top1_err, top5_err, ece, nll (cbl.evaluation.calibration), shot_acc/{many,medium,few} (cbl.evaluation.metrics.shot_accuracy with the training
                      counts), and per-class accuracy as one series per class, `class_acc/<index>_<name>` (index
                      zero-padded so the series sort by class, class 0 the head); with more than MAX_CLASS_SERIES
                      classes (iNaturalist) a histogram `class_acc_hist` instead, which a dashboard can still draw
    at the end        summary: top1_err, top5_err, ece, nll, best_top1_err, best_epoch, shot_acc/*, epochs_completed (what
                      the tables use); a `per_class` table (class, training count, shot group, accuracy) with a
                      bar chart of accuracy per class and a scatter plot of accuracy against the training count
    multi-label runs  (cbl/training/multilabel.py) every evaluation: map, map_head, map_medium, map_tail and per-class
                      AP as `class_ap/<index>_<name>` (or `class_ap_hist`) instead of the errors and accuracies; summary:
                      map, best_map, best_epoch, group_map/{head,medium,tail}, epochs_completed
Config: every field of cbl.training.run_files.run_fields at top level (dataset, imbalance_factor, model, loss, method, beta,
gamma, seed, precision, data_source, the settings beyond the paper, the recipe), plus `group`, `sweep` (the
config's `name`: table2, methods, ...) and `cfg`, the whole resolved config.

Grouping.  Runs that differ only in their seed share a wandb group, so wandb averages seeds: `wandb_group` is a
readable prefix (dataset, IF, model, method, loss, beta, gamma, precision, epochs) followed by a hash of every
run_fields value except the seed (the settings beyond the paper, the recipe, the data source, ...), so two
configurations never share a group even where the prefix cannot tell them apart (a field added to run_fields
changes the hash: runs logged before and after such a change fall into different groups).  The data subset seed
(dataset.subset_seed) is not a run field: like the tables (cbl/reporting/table_parts.py), the group averages over it.
job_type is the method; tags name the dataset, the imbalance factor (`if100`), the model and the loss.

Resume: one wandb run per run directory, each epoch logged once.
    The id.  A tracker that is not disabled always has an id: the checkpoint's (cbl.train saves it in every
    checkpoint), else a new one, chosen here before wandb is called, so that even an attempt whose wandb failed
    hands the same id on to the next one.
    The rows.  `keep(row)` appends each epoch's row (the metrics.jsonl record plus per-class accuracy) to
    <run_dir>/wandb/cbl-rows.jsonl *before* the epoch's checkpoint is written, and `log_epoch(row)` sends it
    to wandb *after*: so wandb never holds an epoch the newest checkpoint lacks, and the rows file holds every
    epoch the checkpoint holds.  On resume the tracker receives the checkpoint's history, takes each epoch's
    row from the rows file (or, for an epoch the file lacks, the history record alone: no per-class accuracy),
    rewrites the file with exactly those epochs (rows of epochs that will be retrained are dropped) and replays
    them into the run before training continues.
    Offline.  wandb cannot resume an offline run: every wandb.init writes a new offline-run-* folder, even with
    the same id.  So the resumed attempt opens a fresh offline run with the saved id, replays every epoch of
    the checkpoint, and then deletes the other offline-run-* folders of this run directory: with a checkpoint
    they hold a subset of the replayed epochs, without one they logged no epoch at all.  `wandb sync` then
    uploads one run with the complete history.  (An offline run that was already synced before the run was
    resumed is on the server: resume such a run with wandb.mode=online, which sends only the missing epochs.)
    Online.  resume="allow" with the saved id.  When the server has the run, wandb reports the next step it
    expects (run.starting_step: the last logged epoch + 1); epochs before it are not sent again, the rest of
    the checkpoint's epochs are replayed (an upload the killed process never finished), then training goes
    on.  When the server lacks the run (the earlier attempts were offline and never synced, or wandb failed),
    the run is created with that id and every epoch is replayed.  Because wandb is always behind the
    checkpoint, the server never holds an epoch that is about to be retrained, except after a fall-back to an
    older checkpoint (the newest one unreadable): the epochs between are then kept as the killed attempt
    logged them, since wandb ignores steps below the last one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cbl.evaluation.metrics import shot_accuracy, shot_group
from cbl.training.multilabel import RECORD_KEYS as MULTILABEL_RECORD_KEYS

log = logging.getLogger(__name__)

WANDB_MODES = ("online", "offline", "disabled")
#: inside <run_dir>/wandb/: one JSON line per epoch, what a resumed run replays (see the module docstring)
ROWS_FILE = "cbl-rows.jsonl"
#: beyond this many classes, per-class accuracy is logged as one histogram per evaluation, not one series per class
MAX_CLASS_SERIES = 100
#: summary fields the tables read (cbl/reporting/table_parts.py: METRICS; the table modules), besides shot_acc/*
SUMMARY_KEYS = ("top1_err", "top5_err", "ece", "nll", "best_top1_err", "best_epoch", "epochs_completed", "map", "best_map")
#: run_fields that runs averaged together may differ in
SEED_KEYS = ("seed",)
#: wandb's limit on a group name
MAX_GROUP_CHARS = 128


@dataclass(frozen=True)
class Classes:
    """The classes of a run's dataset: names and training images per class (for per-class and shot accuracy)."""

    names: Sequence[str]
    counts: Sequence[int]


# ----------------------------------------------------------------------------- what a run logs
def new_run_id() -> str:
    """An id in wandb's own format (8 lowercase letters and digits)."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


def wandb_group(fields: dict[str, Any]) -> str:
    """The wandb group of a run: equal for runs whose `fields` (cbl.training.run_files.run_fields) differ only in the seed."""
    ident = {k: v for k, v in fields.items() if k not in SEED_KEYS}
    digest = hashlib.sha1(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:8]
    parts = [str(fields.get("dataset"))]
    if fields.get("imbalance_factor") is not None:
        parts.append(f"if{_num(fields['imbalance_factor'])}")
    parts += [str(fields.get("model")), str(fields.get("method"))]
    if fields.get("loss") != fields.get("method"):
        parts.append(str(fields.get("loss")))
    parts.append(f"b{_num(fields.get('beta', 0.0))}")
    if fields.get("gamma"):
        parts.append(f"g{_num(fields['gamma'])}")
    parts += [str(fields.get("precision")), f"e{fields.get('epochs')}"]
    readable = "-".join(parts)[: MAX_GROUP_CHARS - len(digest) - 1]
    return f"{readable}-{digest}"


def run_tags(fields: dict[str, Any], extra: Sequence[str] = ()) -> list[str]:
    """Dataset, imbalance factor (`if100`), model and loss, then `extra` (wandb.tags), without repeats."""
    tags = [str(fields.get("dataset"))]
    if fields.get("imbalance_factor") is not None:
        tags.append(f"if{_num(fields['imbalance_factor'])}")
    tags += [str(fields.get("model")), str(fields.get("loss")), *map(str, extra)]
    return list(dict.fromkeys(tags))


def _num(x: Any) -> str:
    return f"{x:g}" if isinstance(x, (int, float)) and not isinstance(x, bool) else str(x)


def class_key(index: int, name: str, num_classes: int, metric: str = "class_acc") -> str:
    """`class_acc/<index>_<name>` (`class_ap/...` for a multi-label run's AP), the index zero-padded so that a dashboard
    sorts the series by class."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "class"
    return f"{metric}/{index:0{len(str(num_classes - 1))}d}_{safe}"


def epoch_row(record: dict[str, Any], evaluation: dict[str, Any] | None) -> dict[str, Any]:
    """What `Tracker.keep` stores for an epoch: the metrics.jsonl record, plus the per-class accuracy of the
    epoch's evaluation (None: the epoch was not evaluated)."""
    row = dict(record)
    if evaluation is not None:
        per_class = "per_class_ap" if "per_class_ap" in evaluation else "per_class_acc"  # multi-label runs: AP
        row[per_class] = list(evaluation[per_class])
    return row


def epoch_payload(row: dict[str, Any], classes: Classes | None) -> dict[str, Any]:
    """What wandb gets for an epoch row (see the module docstring)."""
    out: dict[str, Any] = {"epoch": row["epoch"]}
    for key in ("lr", "train_loss", "top1_err", "top5_err", "ece", "nll", "seconds", *MULTILABEL_RECORD_KEYS):
        if row.get(key) is not None:
            out[key] = row[key]
    if row.get("per_class_ap") is not None and classes is not None:
        out.update(_class_series(row["per_class_ap"], classes, "class_ap"))
    acc = row.get("per_class_acc")
    if acc is None or classes is None or len(acc) != len(classes.counts):
        return out
    out.update({f"shot_acc/{g}": v for g, v in shot_accuracy(acc, classes.counts).items() if v is not None})
    out.update(_class_series(acc, classes, "class_acc"))
    return out


def _class_series(values: list[float | None], classes: Classes, metric: str) -> dict[str, Any]:
    """One series per class (`<metric>/<index>_<name>`), or beyond MAX_CLASS_SERIES classes a `<metric>_hist`."""
    if len(values) != len(classes.counts):
        return {}
    if len(values) <= MAX_CLASS_SERIES:
        return {class_key(i, classes.names[i], len(values), metric): v for i, v in enumerate(values) if v is not None}
    import wandb

    return {f"{metric}_hist": wandb.Histogram([v for v in values if v is not None])}


def final_summary(final: dict[str, Any]) -> dict[str, Any]:
    """The summary fields of a finished run (metrics.json `final`): what the tables use."""
    out = {k: final[k] for k in SUMMARY_KEYS if k in final}
    out.update({f"shot_acc/{g}": v for g, v in (final.get("shot_acc") or {}).items() if v is not None})
    out.update({f"group_map/{g}": v for g, v in (final.get("group_map") or {}).items() if v is not None})
    return out


def final_payload(final: dict[str, Any], classes: Classes) -> dict[str, Any]:
    """The per-class table of the last evaluation and its two charts (a bar per class, accuracy vs training count)."""
    import wandb

    counts, acc = final["samples_per_class"], final["per_class_acc"]
    table = wandb.Table(
        columns=["class_index", "class", "train_count", "shot", "accuracy"],
        data=[[i, str(classes.names[i]), int(counts[i]), shot_group(counts[i]), float(a)]
              for i, a in enumerate(acc) if a is not None],
    )  # fmt: skip
    return {
        "per_class": table,
        "per_class_acc_bar": wandb.plot.bar(
            table, "class", "accuracy", title="Per-class top-1 accuracy (%), class 0 has the most training images"
        ),
        "per_class_acc_vs_count": wandb.plot.scatter(
            table, "train_count", "accuracy", title="Per-class top-1 accuracy (%) against training images"
        ),
    }


# ----------------------------------------------------------------------------- the rows file
def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a rows file; a torn last line (a process killed mid-write) is skipped."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("epoch"), int):
            rows.append(row)
    return rows


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    # written and renamed here, not with cbl.training.checkpoint's atomic_write: its crash-test hook counts writes
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, path)


def replay_rows(rows_file: Path, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per epoch of the checkpoint's `history`: the rows file's row of that epoch when it agrees with the
    history record (same train_loss), else the history record alone."""
    kept = {r["epoch"]: r for r in read_rows(rows_file)}
    rows = []
    for record in history:
        row = kept.get(record["epoch"])
        rows.append({**row, **record} if row is not None and row.get("train_loss") == record.get("train_loss")
                    else dict(record))  # fmt: skip
    return rows


# ----------------------------------------------------------------------------- the tracker
class Tracker:
    """A wandb run that never raises (see the module docstring); mode "disabled" does nothing at all.

    `history` (the checkpoint's, on resume) is replayed into the run right after it opens; `classes` turns
    per-class accuracy into per-class series, shot accuracy and the final per-class charts.
    """

    def __init__(
        self,
        *,
        mode: str,
        project: str,
        run_dir: str | os.PathLike,
        name: str,
        group: str | None = None,
        job_type: str | None = None,
        tags: list[str] | None = None,
        config: dict[str, Any] | None = None,
        entity: str | None = None,
        run_id: str | None = None,
        init_timeout: float = 60.0,
        history: list[dict[str, Any]] | None = None,
        classes: Classes | None = None,
    ) -> None:
        if mode not in WANDB_MODES:
            raise ValueError(f"wandb.mode must be one of {', '.join(WANDB_MODES)}; got {mode!r}")
        self.run = None
        self.mode = mode
        self.classes = classes
        self.error: str | None = None  # the failure that switched wandb off, one line
        self._id = run_id
        self._rows_file: Path | None = None
        self._first_new_step = 0  # online resume: the server holds every step below this one
        if mode == "disabled":
            return
        self._id = run_id or new_run_id()
        wandb_dir = Path(run_dir) / "wandb"
        try:
            rows = replay_rows(wandb_dir / ROWS_FILE, history or [])
            wandb_dir.mkdir(parents=True, exist_ok=True)
            _write_rows(wandb_dir / ROWS_FILE, rows)  # drops rows of epochs about to be retrained
            self._rows_file = wandb_dir / ROWS_FILE
            if mode == "offline":
                # wandb's own telemetry follows the process's settings, not init's mode: without this, an offline
                # run still looks up wandb's server when the process exits
                os.environ.setdefault("WANDB_MODE", "offline")
            import wandb  # imported here: it is slow to import and unused when disabled

            os.environ.setdefault("WANDB_SILENT", "true")
            self.run = wandb.init(
                project=project,
                entity=entity,
                name=name,
                group=group,
                job_type=job_type,
                tags=tags,
                config=config,
                dir=str(Path(run_dir)),
                mode=mode,
                id=self._id,
                # offline runs cannot be resumed (a new folder each time): the history is replayed instead
                resume="allow" if mode == "online" else None,
                # create_new (wandb's default outside notebooks, spelt out): a model bank (cbl/training/bank.py) keeps one run
                # per member open side by side in one process
                settings=wandb.Settings(init_timeout=init_timeout, silent=True, console="off", reinit="create_new"),
            )
        except BaseException as e:  # wandb raises its own errors, OSError, even SystemExit from its service
            if not isinstance(e, (Exception, SystemExit)):  # a stop (Ctrl-C, SIGTERM's Preempted): not wandb's
                raise
            self._disable("init", e)
            return
        if mode == "online" and getattr(self.run, "resumed", False):
            self._first_new_step = int(getattr(self.run, "starting_step", 0) or 0)
        for row in rows:
            self.log_epoch(row)
        if self.run is not None:
            self._remove_superseded(wandb_dir)

    @property
    def active(self) -> bool:
        return self.run is not None

    @property
    def run_id(self) -> str | None:
        """The run's id, also after a wandb failure (the checkpoint keeps it for the next attempt); None for a disabled
        tracker opened without one."""
        return self._id

    def _disable(self, what: str, error: BaseException) -> None:
        self.error = f"wandb {what} failed ({type(error).__name__}: {error})".splitlines()[0]
        log.warning("%s; going on without wandb", self.error)
        self.run = None

    def _call(self, what: str, fn, *args, **kwargs) -> None:
        if self.run is None:
            return
        try:
            fn(*args, **kwargs)
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                raise
            self._disable(what, e)

    def _remove_superseded(self, wandb_dir: Path) -> None:
        """Delete the other offline-run-* folders of this run directory: this run holds their epochs."""
        try:
            current = Path(self.run.dir).resolve().parent  # run.dir is <sync dir>/files
            stale = [d for d in wandb_dir.glob("offline-run-*") if d.is_dir() and d.resolve() != current]
            for d in stale:
                shutil.rmtree(d)
            if stale:
                log.info("removed %d superseded wandb offline run(s) under %s: run %s holds their epochs",
                         len(stale), wandb_dir, self._id)  # fmt: skip
        except Exception as e:  # never worth stopping for; a later `wandb sync` would show the duplicates
            log.warning("could not remove superseded wandb runs under %s (%s: %s)", wandb_dir, type(e).__name__, e)

    # -- logging
    def log(self, data: dict[str, Any], step: int | None = None) -> None:
        self._call("log", lambda: self.run.log(data, step=step))

    def keep(self, row: dict[str, Any]) -> None:
        """Store an epoch's row for a later replay: call it before the epoch's checkpoint is written."""
        if self._rows_file is None:
            return
        try:
            with self._rows_file.open("a") as f:
                f.write(json.dumps(row) + "\n")
        except OSError as e:
            log.warning("could not write %s (%s); a resumed run will replay the epochs without per-class accuracy",
                        self._rows_file, e)  # fmt: skip
            self._rows_file = None

    def log_epoch(self, row: dict[str, Any]) -> None:
        """Send an epoch's row (`epoch_row`) at step = epoch: call it after the epoch's checkpoint is written."""
        if self.run is None or row["epoch"] < self._first_new_step:
            return  # the server has this epoch already (online resume)
        self._call("log", lambda: self.run.log(epoch_payload(row, self.classes), step=row["epoch"]))

    def summary(self, data: dict[str, Any]) -> None:
        self._call("summary", lambda: self.run.summary.update(data))

    def log_final(self, final: dict[str, Any]) -> None:
        """The summary fields of a finished run (its metrics.json) and its per-class table and charts."""
        self.summary(final_summary(final))
        if self.classes is not None and final.get("per_class_acc"):
            # no step: wandb adds them to the last epoch's row, whatever step an online server expects next
            self._call("log", lambda: self.run.log(final_payload(final, self.classes), step=None))

    def finish(self, exit_code: int = 0) -> None:
        """Always mark the run finished (failed runs with a non-zero exit code)."""
        run, self.run = self.run, None
        if run is None:
            return
        try:
            run.finish(exit_code=exit_code)
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                raise
            log.warning("wandb finish failed (%s: %s)", type(e).__name__, e)
