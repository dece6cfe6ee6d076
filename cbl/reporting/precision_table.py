"""The precision table: bf16 autocast against float32, for runs that differ only in `precision`, paired by seed and
subset seed s: the paired difference d_s = err_bf16(s) - err_fp32(s), mean ± sample std over the s present in both
(and the same for the many / medium / few-shot accuracy).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cbl.reporting.runs import Run, Stat, draw_order, summarize
from cbl.reporting.table_parts import (DASH, METRICS, MINUS, Notes, finished_runs, fmt, fmt_param, fmt_stat, group_by,
                                       md_head, md_row, stat_of, with_schedules)


@dataclass
class PrecisionResult:
    dataset: str
    imbalance_factor: int | float | None
    model: str
    method: str
    beta: float
    gamma: float | None
    settings: str  # Run.deviations() but precision: options beyond the paper and recipe differences
    epochs: int | None
    top1: dict[str, Stat | None]  # "fp32" / "bf16" -> error over that precision's seeds
    delta_top1: Stat | None  # bf16 - fp32, paired by seed and subset seed
    delta_shots: dict[str, Stat | None]  # many / medium / few-shot accuracy, bf16 - fp32, paired by seed
    paired_seeds: list


PRECISIONS = ("fp32", "bf16")
SHOTS = ("many", "medium", "few")


def _by_draw(runs: list[Run]) -> dict:
    """(seed, subset seed) -> run, for those that occur exactly once (a repeated one cannot be paired)."""
    draws = [r.draw for r in runs]
    return {r.draw: r for r in runs if r.seed is not None and draws.count(r.draw) == 1}


def build_precision(
    runs: list[Run], metric: str = "top1_err", all_rows: bool = False
) -> tuple[list[PrecisionResult], Notes, list[Run]]:  # all_rows: no reference rows to add
    """One row per configuration run in both precisions, over the seeds run once in each (the pairs); every
    other finished run is left out and counted in the notes."""
    notes = Notes()
    done = finished_runs(runs, metric, notes)

    def key(r: Run) -> tuple:
        return (str(r.dataset), r.imbalance_factor, str(r.model), str(r.method), r.beta, r.gamma,
                r.deviations("precision"), r.config.get("epochs"), r.schedule())  # fmt: skip

    rows, used = [], []
    groups = group_by(done, key)
    shown = with_schedules(list(groups), settings_at=6, scope=3)  # pairs never cross schedules
    for k, rs in groups.items():
        k = shown[k]
        fp32, bf16 = (_by_draw([r for r in rs if r.precision == p]) for p in PRECISIONS)
        draws = sorted(set(fp32) & set(bf16), key=lambda d: draw_order(fp32[d]))
        if not draws:
            continue
        pairs = [(fp32[d], bf16[d]) for d in draws]
        used += [r for pair in pairs for r in pair]

        def delta(get: Callable[[Run], float | None]) -> Stat | None:
            return summarize(None if get(a) is None or get(b) is None else get(b) - get(a) for a, b in pairs)

        rows.append(PrecisionResult(
            *k, {"fp32": stat_of([a for a, _ in pairs], metric), "bf16": stat_of([b for _, b in pairs], metric)},
            delta(lambda r: r.value(metric)), {g: delta(lambda r, g=g: r.shot(g)) for g in SHOTS}, [fp32[d].draw_label for d in draws],
        ))  # fmt: skip
    rows.sort(key=lambda m: (m.dataset, -(m.imbalance_factor or 0), m.model, m.method, m.beta, m.gamma or 0.0,
                             m.settings, m.epochs or 0))  # fmt: skip
    if len(used) < len(done):
        notes.lines.append(f"{len(done) - len(used)} finished run(s) have no run of the same configuration and seed "
                           "in the other precision; left out")  # fmt: skip
    return rows, notes, used


def render_precision(rows: list[PrecisionResult], metric: str = "top1_err") -> str:
    head = ["dataset", "IF", "model", "method", "β", "γ", "settings", "epochs", "fp32 top-1 err", "bf16 top-1 err",
            "Δ top-1 err (bf16 − fp32)", "Δ many / medium / few acc", "paired seeds"]  # fmt: skip

    def delta(s: Stat | None) -> str:
        if s is None:
            return DASH
        text = f"{s.mean:+.2f}".replace("-", MINUS)
        return text if s.n == 1 else f"{text} ± {fmt(s.std)}"

    lines = md_head(
        f"**bf16 autocast vs float32.** Top-1 error (%) at the {METRICS[metric]}; Δ: bf16 minus float32 for the same "
        "seed (same initialisation, data order and augmentation), mean ± std over the paired seeds.",
        head,
    )
    for m in rows:
        lines.append(md_row([
            m.dataset, str(m.imbalance_factor if m.imbalance_factor is not None else DASH), m.model, m.method,
            fmt_param(m.beta), fmt_param(m.gamma), m.settings or "-", str(m.epochs if m.epochs is not None else DASH),
            fmt_stat(m.top1["fp32"]), fmt_stat(m.top1["bf16"]), delta(m.delta_top1),
            " / ".join(delta(m.delta_shots[g]) for g in SHOTS),
            f"{len(m.paired_seeds)} ({', '.join(map(str, m.paired_seeds))})",
        ]))  # fmt: skip
    lines += ["", "A seed fixes the initial weights and the batches, not the result: bf16 rounding makes the two "
              "runs drift apart, so Δ mixes bf16's own effect with seed-to-seed noise of the same size as the std."]
    return "\n".join(lines)
