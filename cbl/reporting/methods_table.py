"""The methods table: any runs grouped by (dataset, IF, model, method, loss, beta, gamma, settings), with top-1 /
top-5 error, many / medium / few-shot accuracy and, where recorded, ECE and NLL; mean ± sample std over seeds.
`settings` lists the options beyond the paper (weighting, DRW, sampler, ...) and how the recipe differs from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cbl.reporting.runs import PAPER_LOSSES, Run, Stat, draw_order, summarize
from cbl.reporting.table_parts import (DASH, METRICS, Notes, finished_runs, fmt, fmt_param, group_by, md_head, md_row,
                                       stat_of, with_schedules)

PAPER_ROWS = {(loss, loss) for loss in PAPER_LOSSES}  # (method, loss) of the paper's own configurations


@dataclass
class MethodsResult:
    dataset: str
    imbalance_factor: int | float | None
    model: str
    method: str
    loss: str
    beta: float
    gamma: float | None
    settings: str  # Run.deviations(): options beyond the paper and recipe differences, "" for the paper's own
    top1: Stat | None
    top5: Stat | None
    shots: dict[str, Stat | None]  # "many" / "medium" / "few" accuracy
    seeds: list
    calibration: dict[str, Stat | None] = field(default_factory=dict)  # "ece" / "nll" of the last epoch


def build_methods(
    runs: list[Run], metric: str = "top1_err", all_rows: bool = False
) -> tuple[list[MethodsResult], Notes, list[Run]]:  # all_rows: every row is a run here, so nothing to add
    notes = Notes()
    done = finished_runs(runs, metric, notes)

    def key(r: Run) -> tuple:  # the schedule last: rows of different schedules never merge (table_parts.with_schedules)
        return (str(r.dataset), r.imbalance_factor, str(r.model), str(r.method), str(r.loss), r.beta, r.gamma,
                r.deviations(), r.schedule())

    rows = []
    groups = group_by(done, key)
    shown = with_schedules(list(groups), settings_at=7, scope=3)
    for k, rs in groups.items():
        k = shown[k]
        shots = {g: summarize(r.shot(g) for r in rs) for g in ("many", "medium", "few")}
        seeds = [r.draw_label for r in sorted(rs, key=draw_order)]
        rows.append(MethodsResult(*k, stat_of(rs, metric), stat_of(rs, "top5_err"), shots, seeds,
                                  {c: stat_of(rs, c) for c in ("ece", "nll")}))
    # the paper's configurations (method = loss) first, then the methods beyond it
    rows.sort(key=lambda m: (m.dataset, -(m.imbalance_factor or 0), m.model, (m.method, m.loss) not in PAPER_ROWS,
                             m.method, m.loss, m.beta, m.gamma or 0.0, m.settings))
    return rows, notes, done


def render_methods(rows: list[MethodsResult], metric: str = "top1_err") -> str:
    head = ["dataset", "IF", "model", "method", "loss", "β", "γ", "settings", "top-1 err", "top-5 err", "many acc",
            "medium acc", "few acc", "seeds"]  # fmt: skip
    # ECE and NLL (of the last epoch) once any run recorded them: tables of older runs keep their columns
    calibrated = any(m.calibration.get("ece") is not None for m in rows)
    if calibrated:
        head[-1:-1] = ["ECE", "NLL"]

    def cell(s: Stat | None, n: int) -> str:
        # n is in the seeds column; repeat it only where a cell has fewer values (an empty shot group)
        if s is None:
            return DASH
        return fmt(s.mean) + ("" if s.n == 1 else f" ± {fmt(s.std)}") + ("" if s.n == n else f" (n={s.n})")

    def cell_nll(s: Stat | None, n: int) -> str:
        if s is None:
            return DASH
        return fmt(s.mean, 3) + ("" if s.n == 1 else f" ± {fmt(s.std, 3)}") + ("" if s.n == n else f" (n={s.n})")

    lines = md_head(
        f"**Comparison.** Top-1 / top-5 error (%), top-1 at the {METRICS[metric]}; accuracy (%) on the many / medium /"
        " few-shot classes.",
        head,
    )
    for m in rows:
        n = len(m.seeds)
        lines.append(md_row([
            m.dataset, str(m.imbalance_factor if m.imbalance_factor is not None else DASH), m.model, method_shown(m), m.loss,
            fmt_param(m.beta), fmt_param(m.gamma), m.settings or "-", cell(m.top1, n), cell(m.top5, n),
            *(cell(m.shots[g], n) for g in ("many", "medium", "few")),
            *((cell(m.calibration.get("ece"), n), cell_nll(m.calibration.get("nll"), n)) if calibrated else ()),
            f"{n} ({', '.join(map(str, m.seeds))})",
        ]))  # fmt: skip
    lines += ["", "mean ± std over seeds (sample std); seeds: number of runs (their seeds). settings: the options "
              "beyond the paper that differ from its defaults (docs/beyond_the_paper.md), then how the recipe differs "
              "from the paper's (epochs, precision, data source, ...); \"-\": the paper's own setting."
              + (" ECE: expected calibration error (%, 15 confidence bins) and NLL: mean negative log-likelihood, of "
                 "the last epoch with the head's own probabilities (softmax; normalised sigmoids for sigmoid and "
                 "focal heads; docs/comparisons.md); — for runs recorded before they were." if calibrated else "")
              + empty_shot_note(rows)]
    return "\n".join(lines)


def method_shown(m: MethodsResult) -> str:
    """The method as the table prints it: a paper loss with effective-number weights (β > 0) is "cb_<loss>", the
    name of its preset (configs/method/), so that it never reads as the plain loss of the row above it."""
    return f"cb_{m.method}" if (m.method, m.loss) in PAPER_ROWS and m.beta > 0 else m.method


def empty_shot_note(rows: list[MethodsResult]) -> str:
    """Why a shot column is all "—": no class of these runs falls in that group (e.g. CIFAR-10-LT, whose rarest
    class has 50 training images, has no few-shot class)."""
    empty = [g for g in ("many", "medium", "few") if all(m.shots[g] is None for m in rows)]
    if not empty:
        return ""
    bounds = {"many": "more than 100", "medium": "20 to 100", "few": "fewer than 20"}
    return " " + " ".join(f"{g} acc is — throughout: no class of these runs has {bounds[g]} training images." for g in empty)
