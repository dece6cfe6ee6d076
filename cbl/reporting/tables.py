"""Runs -> the paper's tables, side by side with the published numbers (Cui et al., CVPR 2019).

    Table 2   ResNet-32 on long-tailed CIFAR: top-1 error of softmax / sigmoid / focal (gamma 0.5, 1, 2) without
              class balancing (beta = 0), and "CB best", the lowest mean error over the class-balanced runs
              (beta > 0, any loss and gamma) -- at IF 1, where the class-balanced term is 1, over all runs.
    Table 3   large scale (iNat 2017 / 2018, ILSVRC 2012): top-1 / top-5 per (network, loss, beta, gamma, input).
    methods   any runs grouped by (dataset, IF, model, method, loss, beta, gamma, settings): top-1, top-5,
              many/medium/few; settings lists the options beyond the paper (weighting, DRW, sampler, ...).
    precision bf16 autocast against float32: runs that differ only in `precision`, paired by seed and subset seed
              s; the paired difference d_s = err_bf16(s) - err_fp32(s), mean ± sample std over the s present in both.
    gain      class-balanced runs against beta = 0, with paired-bootstrap intervals (cbl.reporting.comparisons)
    selection the CB best chosen on one half of the test set and scored on the other (cbl.reporting.comparisons)
    status    what has been reproduced so far, on what data: one line per setting (cbl.reporting.status)
    attribution  where the softmax gap to the paper goes: the copy (IF 1), bf16, seeds (cbl.reporting.attribution)
    multilabel   mAP and head / medium / tail mAP of multi-label runs (cbl.reporting.multilabel_table)

Each cell is the mean over seeds, "mean ± std (n=k)" when k > 1 (sample std), "—" when there is no run.
The paper's numbers come from `cbl.reporting.paper`; Δ = ours − paper.  Every builder returns structured data (tested
against hand-computed values) and a `render_*` turns it into Markdown.

Public API: `build_table2`, `build_table3`, `build_methods`, `build_precision`, `render_table2`, `render_table3`,
`render_methods`, `render_precision`, `excluded_section`, `METRICS`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cbl.reporting import paper
from cbl.reporting.runs import PAPER_LOSSES, Run, Stat, draw_order, is_paper_method, summarize
from cbl.reporting.runs import one_vote as runs_one_vote

#: Error metrics a table can report as its top-1 number: the last epoch (what the paper reports) or the best.
METRICS = {"top1_err": "last epoch", "best_top1_err": "best epoch"}
DASH = "—"
MINUS = "−"

_CIFAR = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
LossKey = tuple[str, float | None]  # (loss, focal gamma or None)
PAPER_ROWS = {(loss, loss) for loss in PAPER_LOSSES}  # (method, loss) of the paper's own configurations
#: Table 2's beta = 0 columns, in the paper's order
TABLE2_COLUMNS: list[tuple[LossKey, str]] = [
    (("softmax", None), "Softmax"),
    (("sigmoid", None), "Sigmoid"),
    *((("focal", g), f"Focal γ={g:g}") for g in paper.FOCAL_GAMMAS),
]


# ----------------------------------------------------------------------------- formatting
def fmt(x: float | None, digits: int = 2) -> str:
    if x is None:
        return DASH
    return f"{x:.{digits}f}".replace("-", MINUS)


def fmt_stat(s: Stat | None) -> str:
    """"29.10" for one seed, "29.10 ± 0.31 (n=3)" for several, "—" for none."""
    if s is None:
        return DASH
    return fmt(s.mean) if s.n == 1 else f"{fmt(s.mean)} ± {fmt(s.std)} (n={s.n})"


def fmt_delta(s: Stat | None, ref: float | None) -> str:
    if s is None or ref is None:
        return ""
    return f", Δ {s.mean - ref:+.2f}".replace("-", MINUS)


def fmt_param(x: float | None) -> str:
    """beta / gamma as the paper prints them: "-" when it does not apply (None, or beta = 0)."""
    return "-" if not x else f"{x:g}"


def _cifar_name(dataset: str | None) -> str | None:
    return _CIFAR.get((dataset or "").removesuffix("_lt"))


def loss_key(run: Run) -> LossKey:
    # focal with gamma = 0 is exactly the sigmoid loss, so it belongs in the sigmoid column
    if run.loss == "focal" and run.gamma == 0.0:
        return ("sigmoid", None)
    return (str(run.loss), run.gamma)


def fmt_config(loss: str, beta: float | None, gamma: float | None) -> str:
    return f"{loss}, β={fmt_param(beta)}, γ={fmt_param(gamma)}"


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _head(caption: str, head: list[str]) -> list[str]:
    """A table's first lines: its caption, a blank line, the header row and the alignment row."""
    return [caption, "", _row(head), _row(["---"] * len(head))]


# ----------------------------------------------------------------------------- notes shared by all tables
@dataclass
class Notes:
    """Things a reader of the table should know: runs left out, duplicate seeds, what the runs were."""

    lines: list[str] = field(default_factory=list)

    def left_out(self, runs: list[Run], mine: list[Run], table: str) -> None:
        kept = {id(r) for r in mine}
        other = [r for r in runs if id(r) not in kept and r.status == "finished"]
        if other:
            self.lines.append(
                f"{len(other)} finished run(s) of other datasets or methods are not in {table} (see --table methods)"
            )

    def missing_metric(self, metric: str, runs: Iterable[Run]) -> None:
        for r in runs:
            if r.value(metric) is None:
                self.lines.append(f"`{r.path}` finished without a finite {metric}; left out")


def _describe_runs(runs: list[Run]) -> str:
    def values(get: Callable[[Run], object]) -> str:
        return ", ".join(sorted({str(get(r)) for r in runs if get(r) is not None})) or "?"

    # mixed models / epochs / commits in one table show up here instead of being averaged unnoticed
    models, epochs = values(lambda r: r.model), values(lambda r: r.config.get("epochs"))
    commits, data = values(lambda r: r.metrics.get("git_commit")), values(lambda r: r.data_source or "not recorded")
    return (f"{len(runs)} finished runs: model {models}, epochs {epochs}, data {data}, commit {commits}"
            + _wall_times([r.value("wall_time_s") for r in runs]) + _machines(runs) + ".")


def _machines(runs: list[Run]) -> str:
    """Where the training times were measured: one machine named, several counted, or "not recorded"."""
    if not any(r.value("wall_time_s") is not None for r in runs):
        return ""
    seen = {(m.get("name"), m.get("threads")) for r in runs if isinstance(m := r.metrics.get("machine"), dict)}
    missing = sum(not isinstance(r.metrics.get("machine"), dict) for r in runs)
    if len(seen) == 1 and not missing:
        name, threads = next(iter(seen))
        return f", measured on {name}, {threads} torch thread{'s' if threads != 1 else ''}"
    parts = [f"measured on {len(seen)} machines"] if len(seen) > 1 else [f"measured on {next(iter(seen))[0]}"] if seen else []
    if missing:
        parts.append(f"machine not recorded for {missing} run{'s' if missing != 1 else ''}")
    return f" ({'; '.join(parts)}: times differ by 2x and more between machines of one kind)"


def _wall_times(seconds: list[float | None]) -> str:
    """", training time per run 1.2 h (median; 0.9 to 1.5 h)": the runs' own wall_time_s, on whatever ran them."""
    xs = sorted(s for s in seconds if s is not None)
    if not xs:
        return ""
    median = xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2
    unit, scale = ("h", 3600.0) if median >= 3600 else ("min", 60.0) if median >= 60 else ("s", 1.0)
    spread = "" if len(xs) == 1 else f"; {xs[0] / scale:.1f} to {xs[-1] / scale:.1f} {unit}"
    return f", training time per run {median / scale:.1f} {unit} ({'median' if len(xs) > 1 else 'one run'}{spread})"


def _group(runs: Iterable[Run], key: Callable[[Run], tuple]) -> dict[tuple, list[Run]]:
    out: dict[tuple, list[Run]] = defaultdict(list)
    for r in runs:
        out[key(r)].append(r)
    return out


def _finished(runs: Iterable[Run], metric: str, notes: Notes) -> list[Run]:
    """The finished single-label runs with a finite `metric`, one per (configuration, seed, subset seed, data source)."""
    done = [r for r in runs if r.status == "finished"]
    multilabel = [r for r in done if r.multilabel]
    if multilabel:  # they report mAP (cbl/reporting/multilabel_table.py), not the errors these tables compare
        notes.lines.append(f"{len(multilabel)} multi-label run(s) are not in this table: they report mAP, not top-1 "
                           "error (see --table multilabel)")
        done = [r for r in done if not r.multilabel]
    notes.missing_metric(metric, done)
    return one_vote([r for r in done if r.value(metric) is not None], notes)


def one_vote(runs: list[Run], notes: Notes) -> list[Run]:
    """`cbl.reporting.runs.one_vote`, its duplicates named in the notes."""
    kept, duplicates = runs_one_vote(runs)
    for newest, others in duplicates:
        notes.lines.append(f"{newest.describe()}: {len(others) + 1} runs of the same configuration and seed; the "
                           f"newest, `{newest.path}`, counts once, not {', '.join(f'`{r.path}`' for r in others)}")
    return kept


def _stat(runs: list[Run], metric: str) -> Stat | None:
    return summarize(r.value(metric) for r in runs)


# ----------------------------------------------------------------------------- Table 2
@dataclass
class CBBest:
    stat: Stat
    loss: str
    beta: float
    gamma: float | None
    seed_counts: tuple[int, ...] = ()  # the candidates' numbers of seeds, when they differ (their means differ in noise)


@dataclass
class Table2Result:
    dataset: str  # "cifar10" / "cifar100"
    imbalance_factor: int
    baselines: dict[LossKey, Stat | None]  # beta = 0, one per TABLE2_COLUMNS entry
    cb_best: CBBest | None
    paper: paper.Table2Row | None
    recipe: str = ""  # how the runs' recipe differs from the paper's (Run.recipe_differences); "" = the paper's


def build_table2(
    runs: list[Run], metric: str = "top1_err", all_rows: bool = False
) -> tuple[list[Table2Result], Notes, list[Run]]:
    """Table 2 rows for the (dataset, IF, recipe) triples present in `runs` (every pair of the paper with `all_rows`,
    "—" where there is no run yet), the paper's recipe first, in the paper's order; also the notes and the
    finished runs the table uses.  Runs of another recipe (epochs, precision, data source, ...) never share a cell
    with the paper's: they get rows of their own, labelled with what differs."""
    notes = Notes()
    mine = [r for r in runs if _cifar_name(r.dataset) and is_paper_method(r)]
    notes.left_out(runs, mine, "Table 2")
    done = _finished(mine, metric, notes)
    order = [paper_row.dataset for paper_row in paper.table2()]
    rows = []
    by_cell = _group(done, lambda r: (", ".join(r.recipe_differences()), r.dataset.removesuffix("_lt"), r.imbalance_factor))
    if all_rows:
        for paper_row in paper.table2():
            by_cell.setdefault(("", paper_row.dataset, paper_row.imbalance_factor), [])
    for recipe, dataset, imb in sorted(by_cell, key=lambda k: (k[0], order.index(k[1]), -(k[2] or 0))):
        cell_runs = by_cell[recipe, dataset, imb]
        label = f"{_CIFAR[dataset]} IF {imb}" + (f" [{recipe}]" if recipe else "")
        plain = _group([r for r in cell_runs if r.beta == 0.0], loss_key)
        baselines = {key: _stat(plain.get(key, []), metric) for key, _ in TABLE2_COLUMNS}
        unplaced = [r for k, rs in plain.items() if k not in baselines for r in rs]
        # at IF 1 every class has the same count, so the CB term is 1 and every run is a candidate
        candidates = cell_runs if imb == 1 else [r for r in cell_runs if r.beta > 0.0]
        if imb != 1 and unplaced:
            notes.lines.append(f"{label}: {len(unplaced)} runs with β=0 fit no column (e.g. {unplaced[0].describe()})")
        groups = _group(candidates, lambda r: (*loss_key(r), r.beta))
        stats = {key: _stat(rs, metric) for key, rs in groups.items()}
        best = None
        for (loss, gamma, beta), s in sorted(stats.items(), key=lambda kv: str(kv[0])):
            if best is None or s.mean < best.stat.mean:
                best = CBBest(s, loss, beta, gamma)
        counts = sorted({s.n for s in stats.values()})
        if best is not None and len(counts) > 1:
            best.seed_counts = tuple(counts)
        rows.append(Table2Result(dataset, imb, baselines, best, paper.table2_row(dataset, imb), recipe))
    return rows, notes, done


def _recipe_caption(table: str, recipe: str) -> str:
    return (f"**{table} layout, not the paper's setting.** These runs differ from the paper's recipe in: {recipe}. "
            "The paper's numbers stand beside them for reference: Δ measures the effect of those differences "
            "(and of seeds), not a reproduction error.")


def render_table2(rows: list[Table2Result], metric: str = "top1_err") -> str:
    """One Markdown table per recipe: the paper's first (if present), then each other recipe under its caption."""
    return "\n\n".join(
        _render_table2_recipe(rs, metric, recipe)
        for (recipe,), rs in _group(rows, lambda r: (r.recipe,)).items()
    )


def _render_table2_recipe(rows: list[Table2Result], metric: str, recipe: str) -> str:
    head = ["dataset", "IF", ""] + [name for _, name in TABLE2_COLUMNS] + ["CB best", "CB loss, β, γ"]
    caption = (
        f"**Table 2.** ResNet-32 on long-tailed CIFAR, top-1 test error (%) at the {METRICS[metric]}"
        + ("" if metric == "top1_err" else " (the paper reports the last epoch)") + "."
    )  # fmt: skip
    lines = _head(caption if not recipe else caption + " " + _recipe_caption("Table 2", recipe), head)
    for r in rows:
        p = r.paper
        ours = [_CIFAR[r.dataset], str(r.imbalance_factor), "ours"]
        theirs = ["", "", "paper"]
        for key, _ in TABLE2_COLUMNS:
            ref = None if p is None else {"softmax": p.softmax, "sigmoid": p.sigmoid}.get(key[0], p.focal.get(key[1]))
            ours.append(fmt_stat(r.baselines[key]) + fmt_delta(r.baselines[key], ref))
            theirs.append(fmt(ref))
        b = r.cb_best
        ours += [DASH, DASH] if b is None else [
            fmt_stat(b.stat) + fmt_delta(b.stat, p and p.cb_best), fmt_config(b.loss, b.beta, b.gamma)
        ]  # fmt: skip
        theirs += [DASH, DASH] if p is None else [fmt(p.cb_best), fmt_config(p.cb_loss, p.cb_beta, p.cb_gamma)]
        lines += [_row(ours), _row(theirs)]
    lines += [
        "",
        "ours: mean ± std over seeds (n = number of seeds; a single value is one seed); Δ = ours − paper. "
        "CB best: the lowest mean error over the class-balanced runs (β > 0, any loss and γ)"
        + (", at IF 1 (class-balanced term 1) over all runs" if any(r.imbalance_factor == 1 for r in rows) else "")
        + "; like the paper's, it is selected on the test set (there is no validation split), so it is optimistic "
        "(`--table selection` measures by how much where runs saved their predictions)." + _uneven_note(rows),
    ]
    return "\n".join(lines)


def _uneven_note(rows: list[Table2Result]) -> str:
    """Where a CB best was chosen among means over different numbers of seeds, which carry different noise."""
    uneven = [r for r in rows if r.cb_best is not None and r.cb_best.seed_counts]
    if not uneven:
        return ""
    cells = "; ".join(f"{_CIFAR[r.dataset]} IF {r.imbalance_factor}: "
                      f"{', '.join(map(str, r.cb_best.seed_counts))} seeds" for r in uneven)
    return (f" Its candidates ran on different numbers of seeds in some rows ({cells}): a mean over fewer seeds is "
            "noisier, so it wins the choice by luck more often.")


# ----------------------------------------------------------------------------- Table 3
@dataclass
class Table3Result:
    model: str
    loss: str
    beta: float
    gamma: float | None
    input_size: int | None
    results: dict[str, tuple[Stat | None, Stat | None]]  # dataset -> (top-1, top-5)
    paper: paper.Table3Row | None
    recipe: str = ""  # how the runs' recipe differs from the paper's (Run.recipe_differences); "" = the paper's


def _paper_table3_row(model, loss, beta, gamma, input_size) -> paper.Table3Row | None:
    for p in paper.table3():
        if (p.model, p.loss_type, p.beta or 0.0, p.gamma, p.input_size) == (model, loss, beta, gamma, input_size):
            return p
    return None


def build_table3(
    runs: list[Run], metric: str = "top1_err", all_rows: bool = False
) -> tuple[list[Table3Result], Notes, list[Run]]:
    """Table 3 rows for the configurations present in `runs` (and every row of the paper with `all_rows`); runs of
    another recipe than the paper's get rows of their own, labelled with what differs (as in Table 2)."""
    notes = Notes()
    mine = [r for r in runs if r.dataset in paper.TABLE3_DATASETS and is_paper_method(r)]
    notes.left_out(runs, mine, "Table 3")
    done = _finished(mine, metric, notes)
    groups = _group(done, lambda r: (", ".join(r.recipe_differences()), str(r.model), *loss_key(r), r.beta, r.input_size))
    rows = []
    for (recipe, model, loss, gamma, beta, size), rs in groups.items():
        results = {}
        for d in paper.TABLE3_DATASETS:
            sub = [r for r in rs if r.dataset == d]
            results[d] = (_stat(sub, metric), _stat(sub, "top5_err"))
        ref = _paper_table3_row(model, loss, beta, gamma, size)
        rows.append(Table3Result(model, loss, beta, gamma, size, results, ref, recipe))
    if all_rows:
        present = [r.paper for r in rows if not r.recipe]  # Table3Row holds a dict: compared by value, not hashed
        rows += [Table3Result(p.model, p.loss_type, p.beta or 0.0, p.gamma, p.input_size,
                              {d: (None, None) for d in paper.TABLE3_DATASETS}, p)
                 for p in paper.table3() if p not in present]  # fmt: skip
    order = paper.table3()  # the paper's rows in its order, then ours beyond the paper
    rows.sort(key=lambda t: (t.recipe, order.index(t.paper) if t.paper else len(order), t.model, t.loss, t.beta,
                             str(t.gamma), str(t.input_size)))  # fmt: skip
    return rows, notes, done


def render_table3(rows: list[Table3Result], metric: str = "top1_err") -> str:
    """One Markdown table per recipe: the paper's first (if present), then each other recipe under its caption."""
    return "\n\n".join(
        _render_table3_recipe(rs, metric, recipe)
        for (recipe,), rs in _group(rows, lambda r: (r.recipe,)).items()
    )


def _render_table3_recipe(rows: list[Table3Result], metric: str, recipe: str) -> str:
    names = {"inat2017": "iNat2017", "inat2018": "iNat2018", "ilsvrc2012": "ILSVRC2012"}
    head = ["network", "loss", "β", "γ", "input", ""]
    for d in paper.TABLE3_DATASETS:
        head += [f"{names[d]} top-1", "top-5"]
    caption = f"**Table 3.** Large-scale validation error (%), top-1 at the {METRICS[metric]}, top-5 at the last epoch."
    lines = _head(caption if not recipe else caption + " " + _recipe_caption("Table 3", recipe), head)
    for r in rows:
        network = r.paper.network if r.paper else r.model
        label = r.paper.loss if r.paper else ("CB " if r.beta > 0 else "") + r.loss.capitalize()
        ours = [network, label, fmt_param(r.beta), fmt_param(r.gamma), str(r.input_size), "ours"]
        theirs = ["", "", "", "", "", "paper"]
        for d in paper.TABLE3_DATASETS:
            ref = r.paper.results[d] if r.paper else (None, None)
            for k in (0, 1):
                ours.append(fmt_stat(r.results[d][k]) + fmt_delta(r.results[d][k], ref[k]))
                theirs.append(fmt(ref[k]))
        lines += [_row(ours), _row(theirs)]
    lines += ["", "ours: mean ± std over seeds (n = number of seeds; a single value is one seed); Δ = ours − paper."]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- generic comparison
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
    done = _finished(runs, metric, notes)
    def key(r: Run) -> tuple:
        return (str(r.dataset), r.imbalance_factor, str(r.model), str(r.method), str(r.loss), r.beta, r.gamma,
                r.deviations())

    rows = []
    for k, rs in _group(done, key).items():
        shots = {g: summarize(r.shot(g) for r in rs) for g in ("many", "medium", "few")}
        seeds = [r.draw_label for r in sorted(rs, key=draw_order)]
        rows.append(MethodsResult(*k, _stat(rs, metric), _stat(rs, "top5_err"), shots, seeds,
                                  {c: _stat(rs, c) for c in ("ece", "nll")}))
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

    lines = _head(
        f"**Comparison.** Top-1 / top-5 error (%), top-1 at the {METRICS[metric]}; accuracy (%) on the many / medium /"
        " few-shot classes.",
        head,
    )
    for m in rows:
        n = len(m.seeds)
        lines.append(_row([
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


# ----------------------------------------------------------------------------- bf16 vs float32
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
    done = _finished(runs, metric, notes)

    def key(r: Run) -> tuple:
        return (str(r.dataset), r.imbalance_factor, str(r.model), str(r.method), r.beta, r.gamma,
                r.deviations("precision"), r.config.get("epochs"))  # fmt: skip

    rows, used = [], []
    for k, rs in _group(done, key).items():
        fp32, bf16 = (_by_draw([r for r in rs if r.precision == p]) for p in PRECISIONS)
        draws = sorted(set(fp32) & set(bf16), key=lambda d: draw_order(fp32[d]))
        if not draws:
            continue
        pairs = [(fp32[d], bf16[d]) for d in draws]
        used += [r for pair in pairs for r in pair]

        def delta(get: Callable[[Run], float | None]) -> Stat | None:
            return summarize(None if get(a) is None or get(b) is None else get(b) - get(a) for a, b in pairs)

        rows.append(PrecisionResult(
            *k, {"fp32": _stat([a for a, _ in pairs], metric), "bf16": _stat([b for _, b in pairs], metric)},
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

    lines = _head(
        f"**bf16 autocast vs float32.** Top-1 error (%) at the {METRICS[metric]}; Δ: bf16 minus float32 for the same "
        "seed (same initialisation, data order and augmentation), mean ± std over the paired seeds.",
        head,
    )
    for m in rows:
        lines.append(_row([
            m.dataset, str(m.imbalance_factor if m.imbalance_factor is not None else DASH), m.model, m.method,
            fmt_param(m.beta), fmt_param(m.gamma), m.settings or "-", str(m.epochs if m.epochs is not None else DASH),
            fmt_stat(m.top1["fp32"]), fmt_stat(m.top1["bf16"]), delta(m.delta_top1),
            " / ".join(delta(m.delta_shots[g]) for g in SHOTS),
            f"{len(m.paired_seeds)} ({', '.join(map(str, m.paired_seeds))})",
        ]))  # fmt: skip
    lines += ["", "A seed fixes the initial weights and the batches, not the result: bf16 rounding makes the two "
              "runs drift apart, so Δ mixes bf16's own effect with seed-to-seed noise of the same size as the std."]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- runs left out
def excluded_section(runs: list[Run], limit: int = 20) -> str:
    """Markdown list of the failed / incomplete runs, by folder and status; "" when there are none.  Never a failed
    run's error text: tables go into README sections, which must not carry a local failure's message (a path, a
    traceback line); `make sweep-status` lists the reasons."""
    bad = [r for r in runs if r.status != "finished"]
    if not bad:
        return ""
    failed = sum(r.status == "failed" for r in bad)
    lines = [f"**Not in the table:** {failed} failed, {len(bad) - failed} incomplete run(s); `make sweep-status` "
             f"(python scripts/sweep_summary.py <folder>) lists them with their reasons:", ""]
    lines += [f"- `{r.path}`: {_status(r)}" for r in bad[:limit]]
    if len(bad) > limit:
        lines.append(f"- … and {len(bad) - limit} more")
    return "\n".join(lines)


def _status(run: Run) -> str:
    """"failed (last epoch 3)", "incomplete (no epoch logged)": how far the run got, not why it stopped."""
    reached = "no epoch logged" if run.last_epoch is None else f"last epoch {run.last_epoch}"
    return f"{run.status} ({reached})"


# ----------------------------------------------------------------------------- one call per table
def _elsewhere(module: str, name: str) -> tuple[Callable, Callable]:
    """build / render of a table defined in cbl.reporting.<module> (imported when used: it imports this module)."""
    import importlib

    def build(*args, **kwargs):
        return getattr(importlib.import_module(f"cbl.reporting.{module}"), f"build_{name}")(*args, **kwargs)

    def render(*args, **kwargs):
        return getattr(importlib.import_module(f"cbl.reporting.{module}"), f"render_{name}")(*args, **kwargs)

    return build, render


BUILDERS = {
    "2": (build_table2, render_table2),
    "3": (build_table3, render_table3),
    "methods": (build_methods, render_methods),
    "precision": (build_precision, render_precision),
    "gain": _elsewhere("comparisons", "gain"),  # class-balanced runs against beta = 0, with bootstrap intervals
    "selection": _elsewhere("comparisons", "selection"),  # the CB best chosen on half the test set, scored on the other
    "status": _elsewhere("status", "status"),  # what has been reproduced so far, on what data
    "attribution": _elsewhere("attribution", "attribution"),  # where the softmax gap to the paper goes
    "multilabel": _elsewhere("multilabel_table", "multilabel"),  # mAP and head / medium / tail mAP of multi-label runs
}


class TableError(Exception):
    """A one-line reason why no table can be made (e.g. no finished runs for it)."""


def make_table(kind: str, runs: list[Run], metric: str = "top1_err", all_rows: bool = False) -> tuple[str, list[Run]]:
    """Markdown for table `kind` ("2", "3", "methods" or "precision"): the table, notes, the runs it used, and the failed /
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
    parts = [render(rows, metric)] + ([] if kind == "status" else [_describe_runs(used)])  # status: the runs are its rows
    if notes.lines:
        parts.append("\n".join(["Notes:", ""] + [f"- {line}" for line in notes.lines]))
    excluded = excluded_section(runs)
    if excluded:
        parts.append(excluded)
    return "\n\n".join(parts), used
