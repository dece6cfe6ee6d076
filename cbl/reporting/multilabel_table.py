"""The multi-label table (`make_table --table multilabel`): mAP and the mAP of the head / medium / tail classes of
multi-label runs (cbl/training/multilabel.py, cbl/evaluation/multilabel.py), one row per configuration.

Rows group the finished multi-label runs by (dataset, IF, model, loss, beta, gamma, multilabel weighting, the other
settings and recipe differences); each cell is the mean over seeds, "mean ± std" (sample std) when there are several.
`--metric top1_err` (the default) reads the last epoch's mAP, `--metric best_top1_err` the best epoch's (selected on
the test set).  The class groups are those of the DB-loss code (head n >= 100, medium 20 <= n < 100, tail n < 20
training positives); the notes say how many classes each group has.
"""

from __future__ import annotations

from dataclasses import dataclass

from cbl.evaluation.multilabel import GROUPS, class_group
from cbl.reporting.runs import Run, Stat, summarize
from cbl.reporting.table_parts import (DASH, METRICS, Notes, fmt, fmt_param, group_by, md_head, md_row, one_vote,
                                       with_schedules)

#: the mAP a table's --metric stands for: the last epoch's or the best epoch's
MAP_METRICS = {"top1_err": "map", "best_top1_err": "best_map"}
WEIGHTINGS = {"sample": "per image", "class": "per class"}


@dataclass
class MultiLabelResult:
    dataset: str
    imbalance_factor: int | float | None
    model: str
    loss: str
    beta: float
    gamma: float | None
    weighting: str  # loss.multilabel_weighting: sample | class
    settings: str  # the other options beyond the paper and the recipe differences ("" for none)
    map: Stat | None
    groups: dict[str, Stat | None]  # head / medium / tail mAP
    seeds: list


def group_value(run: Run, group: str, key: str) -> float | None:
    """The mAP of a class group at the last epoch (key "map") or at the best epoch (key "best_map")."""
    if key == "map":
        value = (run.metrics.get("group_map") or {}).get(group)
    else:
        best = next((h for h in run.history() if h.get("epoch") == run.metrics.get("best_epoch")), {})
        value = best.get(f"map_{group}")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def group_sizes(run: Run) -> dict[str, int]:
    """How many classes of the run's dataset fall in each group, by its training positives."""
    sizes = {g: 0 for g in GROUPS}
    for n in run.metrics.get("samples_per_class") or []:
        sizes[class_group(int(n))] += 1
    return sizes


def build_multilabel(runs: list[Run], metric: str = "top1_err", all_rows: bool = False
                     ) -> tuple[list[MultiLabelResult], Notes, list[Run]]:  # all_rows: no reference rows to add
    notes = Notes()
    key = MAP_METRICS[metric]
    mine = [r for r in runs if r.multilabel]
    single = sum(r.status == "finished" and not r.multilabel for r in runs)
    if single:
        notes.lines.append(f"{single} finished single-label run(s) are not in this table (see --table methods)")
    done = [r for r in mine if r.status == "finished"]
    notes.missing_metric(key, done)
    done = one_vote([r for r in done if r.value(key) is not None], notes)

    def row_key(r: Run) -> tuple:
        return (str(r.dataset), r.imbalance_factor, str(r.model), str(r.loss), r.beta, r.gamma,
                str(r.config.get("multilabel_weighting", "sample")), r.deviations("multilabel_weighting"), r.schedule())

    rows = []
    groups = group_by(done, row_key)
    shown = with_schedules(list(groups), settings_at=7, scope=3)  # rows of different schedules never merge
    for k, rs in groups.items():
        k = shown[k]
        seeds = sorted((r.seed for r in rs), key=lambda s: (s is None, str(s) if s is None else s))
        rows.append(MultiLabelResult(*k, summarize(r.value(key) for r in rs),
                                     {g: summarize(group_value(r, g, key) for r in rs) for g in GROUPS}, seeds))
    rows.sort(key=lambda m: (m.dataset, -(m.imbalance_factor or 0), m.model, m.settings, m.loss, m.gamma or 0.0,
                             m.beta > 0, m.weighting, m.beta))
    for dataset, rs in group_by(done, lambda r: (str(r.dataset),)).items():
        sizes = {tuple(group_sizes(r).items()) for r in rs}
        if len(sizes) == 1:
            notes.lines.append(f"{dataset[0]}: " + ", ".join(f"{g} {n} classes" for g, n in next(iter(sizes))))
    return rows, notes, done


def render_multilabel(rows: list[MultiLabelResult], metric: str = "top1_err") -> str:
    head = ["dataset", "IF", "model", "loss", "β", "γ", "weighting", "settings", "mAP", "head mAP", "medium mAP",
            "tail mAP", "seeds"]

    def cell(s: Stat | None, n: int) -> str:
        if s is None:
            return DASH
        return fmt(s.mean) + ("" if s.n == 1 else f" ± {fmt(s.std)}") + ("" if s.n == n else f" (n={s.n})")

    lines = md_head(f"**Multi-label.** mAP (%) at the {METRICS[metric]}, over all classes and over the head / medium / "
                  "tail classes.", head)
    for m in rows:
        n = len(m.seeds)
        lines.append(md_row([
            m.dataset, str(m.imbalance_factor if m.imbalance_factor is not None else DASH), m.model, m.loss,
            fmt_param(m.beta), fmt_param(m.gamma), WEIGHTINGS.get(m.weighting, m.weighting) if m.beta > 0 else "-",
            m.settings or "-", cell(m.map, n), *(cell(m.groups[g], n) for g in GROUPS),
            f"{n} ({', '.join(map(str, m.seeds))})",
        ]))
    lines += ["", "mean ± std over seeds (sample std); seeds: number of runs (their seeds). mAP: the mean over classes "
              "of the average precision (cbl/evaluation/multilabel.py); head / medium / tail: classes with >= 100, "
              "20 to 99 and < 20 positive training images (the DB-loss split, Wu et al., ECCV 2020). weighting: how the "
              "class-balanced weights reach an image's binary terms (loss.multilabel_weighting: per image, the mean "
              "weight of its labels; per class, each class its own; \"-\" at β = 0, where both are the plain loss). "
              "settings: options beyond the paper and how the recipe differs from it; \"-\": none."]
    return "\n".join(lines)
