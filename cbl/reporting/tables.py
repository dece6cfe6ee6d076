"""Runs -> a results table in Markdown, beside the published numbers (Cui et al., CVPR 2019): `make_table(kind, runs)`.

    2            ResNet-32 on long-tailed CIFAR: beta = 0 baselines and the CB best (cbl.reporting.table2)
    3            large scale (iNat 2017 / 2018, ILSVRC 2012): top-1 / top-5 per configuration (cbl.reporting.table3)
    methods      any runs grouped by configuration, with many / medium / few-shot accuracy (cbl.reporting.methods_table)
    precision    bf16 autocast against float32, paired by seed (cbl.reporting.precision_table)
    gain         class-balanced runs against beta = 0, with paired-bootstrap intervals (cbl.reporting.comparisons)
    selection    the CB best chosen on one half of the test set and scored on the other (cbl.reporting.comparisons)
    status       what has been reproduced so far, on what data: one line per setting (cbl.reporting.status)
    attribution  where the softmax gap to the paper goes: the copy (IF 1), bf16, seeds (cbl.reporting.attribution)
    multilabel   mAP and head / medium / tail mAP of multi-label runs (cbl.reporting.multilabel_table)

Each cell is the mean over seeds, "mean ± std (n=k)" when k > 1 (sample std), "—" when there is no run; Δ = ours −
paper.  Every table module has a `build_<kind>` returning structured data (tested against hand-computed values) and
a `render_<kind>` turning it into Markdown, made of the parts in cbl.reporting.table_parts.  The table under the
rows names the runs used (`describe_runs`), then the notes, then the failed or incomplete runs left out.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from cbl.reporting.runs import Run
from cbl.reporting.table_parts import METRICS, describe_runs, excluded_section


def _table(module: str, name: str) -> tuple[Callable, Callable]:
    """build / render of a table defined in cbl.reporting.<module>, imported when the table is made: some tables
    import torch (the bootstrap of `gain` and `selection`), which a command that only asks for Table 2 never needs."""

    def build(*args, **kwargs):
        return getattr(importlib.import_module(f"cbl.reporting.{module}"), f"build_{name}")(*args, **kwargs)

    def render(*args, **kwargs):
        return getattr(importlib.import_module(f"cbl.reporting.{module}"), f"render_{name}")(*args, **kwargs)

    return build, render


BUILDERS = {
    "2": _table("table2", "table2"),
    "3": _table("table3", "table3"),
    "methods": _table("methods_table", "methods"),
    "precision": _table("precision_table", "precision"),
    "gain": _table("comparisons", "gain"),
    "selection": _table("comparisons", "selection"),
    "status": _table("status", "status"),
    "attribution": _table("attribution", "attribution"),
    "multilabel": _table("multilabel_table", "multilabel"),
}


class TableError(Exception):
    """A one-line reason why no table can be made (e.g. no finished runs for it)."""


def make_table(kind: str, runs: list[Run], metric: str = "top1_err", all_rows: bool = False) -> tuple[str, list[Run]]:
    """Markdown for table `kind` (a key of BUILDERS): the table, notes, the runs it used, and the failed /
    incomplete runs.  Returns (markdown, finished runs used).  Raises TableError when no finished run fits,
    unless `all_rows` (tables 2 and 3: every row of the paper, "—" where there is no run yet)."""
    if kind not in BUILDERS:
        raise TableError(f"unknown table {kind!r} (choose from {', '.join(BUILDERS)})")
    if metric not in METRICS:
        raise TableError(f"unknown metric {metric!r} (choose from {', '.join(METRICS)})")
    build, render = BUILDERS[kind]
    rows, notes, used = build(runs, metric, all_rows)
    if not rows:
        bad = sum(r.status != "finished" for r in runs)
        what = {"2": "CIFAR-LT paper-method", "3": "iNat / ILSVRC paper-method", "methods": "",
                "precision": "fp32 + bf16 pairs of", "gain": "class-balanced + β = 0 pairs of",
                "selection": "two or more class-balanced configurations (with saved predictions) of",
                "status": "", "attribution": "softmax (β = 0) CIFAR-LT (a Table 2 imbalance factor, the paper's schedule)", "multilabel": "multi-label"}[kind]
        shown = "mAP" if kind == "multilabel" else metric
        raise TableError(f"no finished {what + ' ' if what else ''}runs with a {shown} for table {kind} "
                         f"({len(runs)} run directories, {bad} failed or incomplete)")  # fmt: skip
    parts = [render(rows, metric)] + ([] if kind == "status" else [describe_runs(used)])  # status: the runs are its rows
    if notes.lines:
        parts.append("\n".join(["Notes:", ""] + [f"- {line}" for line in notes.lines]))
    excluded = excluded_section(runs)
    if excluded:
        parts.append(excluded)
    return "\n\n".join(parts), used
