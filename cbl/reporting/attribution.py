"""Where the gap to the paper goes: the softmax (beta = 0) error of runs that differ from the paper's setting, split
into what each difference measurably costs, from runs made to isolate it.

For each dataset and data source among the runs (e.g. CIFAR-10 on the JPEG-lossy copy), one row per long-tailed
imbalance factor IF with softmax runs (largest first), against the paper's Table 2 softmax errors P(IF):

    offset      mean over the runs (seeds, and long-tailed subsets where other ones were run) of the softmax error
                at IF in their usual precision, minus P(IF)
    the copy    softmax error at IF 1 (balanced), in that same precision, minus P(1): what the data costs where
                class balance plays no part
    precision   bf16 minus float32 softmax error at IF, paired by seed and subset (the same init, batches and images)
    seeds       the sample std of the softmax error at IF over those runs (one seed's draw of the noise), marked
                "seeds and subsets" when other subsets are among them
    the rest    offset - the copy: what neither explains (the copy's cost may differ at IF > 1 from IF 1, and the
                subset of images, the data order and the seeds move the number too)

The offset and the copy are measured in the same precision, and the paper's runs in float32, so a cost of bf16
is inside both (offset = the copy's cost + bf16's + the rest; the copy = the copy's cost + bf16's at IF 1) and
cancels from the rest as far as it is the same at IF 1 as at IF: subtracting the precision column as well would
count it twice.  That column says how much of the offset bf16 itself explains, not a further share.

The copy is the same balanced run in every row of a dataset, so the rows show how the offset, and the rest, grow
with the imbalance.

A component whose runs are missing is "—", and so is the rest then.  Every number is computed from metrics.json of
the runs given, so the README's attribution paragraph quotes a generated table, never a typed number.

Public API: `build_attribution`, `render_attribution`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cbl.reporting import paper
from cbl.reporting.runs import Run, Stat, summarize
from cbl.reporting.table_parts import CIFAR_NAMES, DASH, MINUS, Notes, finished_runs, fmt, group_by, md_row

@dataclass
class AttributionRow:
    dataset: str
    data: str
    precision: str  # the precision of the offset's runs
    imbalance_factor: int
    ours: Stat | None
    paper_error: float
    offset: float | None
    copy: tuple[float, float] | None  # (our IF 1 error, paper's IF 1 error)
    precision_delta: Stat | None  # bf16 - fp32, paired by seed and subset
    seeds: Stat | None  # the spread of `ours`
    rest: float | None
    subsets: bool = False  # `ours` includes runs on other long-tailed subsets: the spread is over both


def _softmax(runs: list[Run]) -> list[Run]:
    return [r for r in runs if r.method == "softmax" and r.loss == "softmax" and r.beta == 0.0 and not r.settings]


def build_attribution(runs: list[Run], metric: str = "top1_err", all_rows: bool = False
                      ) -> tuple[list[AttributionRow], Notes, list[Run]]:
    notes = Notes()
    done = _softmax(finished_runs(runs, metric, notes))
    rows, used = [], []
    # the same data, each run on the paper's schedule for its IF (the lr factors of IF 1 are the balanced
    # scripts'): only precision and IF may differ within a group
    groups = group_by(done, lambda r: (str(r.dataset), r.data_source or "not recorded",
                                     ", ".join(r.recipe_differences("precision", "data"))))
    for (dataset, data, schedule), rs in groups.items():
        name = dataset.removesuffix("_lt")
        balanced = paper.table2_row(name, 1)
        if balanced is None or schedule:  # only the paper's schedule on CIFAR can be set against Table 2
            continue
        for imbalance_factor in sorted({r.imbalance_factor for r in rs if r.imbalance_factor != 1}, reverse=True):
            reference = paper.table2_row(name, imbalance_factor)
            if reference is None:  # an imbalance factor the paper did not run
                continue
            row, row_runs = _attribution_row(dataset, data, imbalance_factor, reference.softmax, balanced.softmax,
                                             [r for r in rs if r.imbalance_factor in (1, imbalance_factor)], metric)
            rows.append(row)
            used += row_runs
    return rows, notes, list({id(r): r for r in used}.values())


def _attribution_row(dataset: str, data: str, imbalance_factor, paper_error: float, paper_balanced: float,
                     rs: list[Run], metric: str) -> tuple[AttributionRow, list[Run]]:
    """One row: the softmax runs at `imbalance_factor` in their usual precision, the IF 1 runs in it, and the
    bf16 / float32 pairs at `imbalance_factor`."""
    at_if = [r for r in rs if r.imbalance_factor == imbalance_factor]
    by_precision = group_by(at_if, lambda r: (r.precision,))
    usual = max(by_precision, key=lambda k: (len(by_precision[k]), k[0] == "bf16"))
    precision = usual[0]
    ours = summarize(r.value(metric) for r in by_precision[usual])
    offset = ours.mean - paper_error
    ones = [r for r in rs if r.imbalance_factor == 1 and r.precision == precision]
    copy = (summarize(r.value(metric) for r in ones).mean, paper_balanced) if ones else None
    fp32 = {r.draw: r for r in by_precision.get(("fp32",), [])}
    bf16 = {r.draw: r for r in by_precision.get(("bf16",), [])}
    pairs = [(fp32[s], bf16[s]) for s in sorted(set(fp32) & set(bf16), key=str)]
    delta = summarize(b.value(metric) - a.value(metric) for a, b in pairs)
    spread = ours if ours.n > 1 else None
    rest = None if copy is None else offset - (copy[0] - copy[1])  # both in `precision`: its cost cancels
    subsets = len({r.subset_seed or 0 for r in by_precision[usual]}) > 1
    row = AttributionRow(dataset, data, precision, imbalance_factor, ours, paper_error, offset, copy, delta, spread, rest,
                         subsets)
    return row, by_precision[usual] + ones + [r for pair in pairs for r in pair]


def _signed(x: float | None) -> str:
    return DASH if x is None else f"{x:+.2f}".replace("-", MINUS)


def render_attribution(rows: list[AttributionRow], metric: str = "top1_err") -> str:
    head = ["dataset", "data", "softmax error, ours (paper)", "offset", "the copy (IF 1: ours − paper)",
            "bf16 − float32 (paired seeds)", "seed std", "the rest"]
    lines = ["**Where the softmax gap goes.** Softmax (β = 0) top-1 error (%) at each imbalance factor run against "
             "the paper's, and what runs made to isolate each difference measure: the copy's own cost on balanced "
             "data (IF 1), bf16 against float32 for the same seed, and the spread over seeds.",
             "", md_row(head), md_row(["---"] * len(head))]
    for r in rows:
        ours = fmt(r.ours.mean) + ("" if r.ours.n == 1 else f" ± {fmt(r.ours.std)} (n={r.ours.n})")
        copy = DASH if r.copy is None else f"{_signed(r.copy[0] - r.copy[1])} ({fmt(r.copy[0])} vs {fmt(r.copy[1])})"
        delta = DASH if r.precision_delta is None else _signed(r.precision_delta.mean) + (
            "" if r.precision_delta.n == 1 else f" ± {fmt(r.precision_delta.std)}") + f" (n={r.precision_delta.n})"
        lines.append(md_row([
            CIFAR_NAMES.get(r.dataset.removesuffix("_lt"), r.dataset) + f" IF {r.imbalance_factor}", r.data,
            f"{ours} in {r.precision} ({fmt(r.paper_error)})", _signed(r.offset), copy, delta,
            DASH if r.seeds is None else fmt(r.seeds.std) + (" (seeds and subsets)" if r.subsets else ""),
            _signed(r.rest),
        ]))  # fmt: skip
    lines += ["", "the rest = offset − the copy: what these runs do not explain; — where a run it needs is missing. "
              "The copy is measured in the offset's precision, so the cost of bf16 (against the paper's float32) is "
              "inside both and cancels from the rest as far as it is the same on balanced data; in a bf16 row the "
              "bf16 − float32 column is how much of the offset bf16 explains, not a further share. The copy's cost is measured on "
              "balanced data and may differ under imbalance; one seed's value carries a seed std of noise."]
    return "\n".join(lines)
