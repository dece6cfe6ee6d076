"""Table 2 of the paper: ResNet-32 on long-tailed CIFAR, top-1 error of softmax / sigmoid / focal (gamma 0.5, 1,
2) without class balancing (beta = 0), and "CB best", the lowest mean error over the class-balanced runs (beta > 0,
any loss and gamma) -- at IF 1, where the class-balanced term is 1, over all runs -- beside the paper's numbers
(cbl.reporting.paper).  Runs of another recipe than the paper's get rows of their own, labelled with what differs.
"""

from __future__ import annotations

from dataclasses import dataclass

from cbl.reporting import paper
from cbl.reporting.runs import Run, Stat, is_paper_method
from cbl.reporting.table_parts import (CIFAR_NAMES, DASH, METRICS, LossKey, Notes, cifar_name, finished_runs, fmt,
                                       fmt_config, fmt_delta, fmt_stat, group_by, loss_key, md_head, md_row,
                                       per_recipe, recipe_caption, stat_of)

#: Table 2's beta = 0 columns, in the paper's order
TABLE2_COLUMNS: list[tuple[LossKey, str]] = [
    (("softmax", None), "Softmax"),
    (("sigmoid", None), "Sigmoid"),
    *((("focal", g), f"Focal γ={g:g}") for g in paper.FOCAL_GAMMAS),
]


@dataclass
class CBBest:
    stat: Stat
    loss: str
    beta: float
    gamma: float | None
    seed_counts: tuple[int, ...] = ()  # the candidates' numbers of seeds, when they differ (so does their noise)


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
    mine = [r for r in runs if cifar_name(r.dataset) and is_paper_method(r)]
    notes.left_out(runs, mine, "Table 2")
    done = finished_runs(mine, metric, notes)
    order = [paper_row.dataset for paper_row in paper.table2()]
    rows = []
    by_cell = group_by(done, lambda r: (", ".join(r.recipe_differences()), r.dataset.removesuffix("_lt"),
                                        r.imbalance_factor))
    if all_rows:
        for paper_row in paper.table2():
            by_cell.setdefault(("", paper_row.dataset, paper_row.imbalance_factor), [])
    for recipe, dataset, imb in sorted(by_cell, key=lambda k: (k[0], order.index(k[1]), -(k[2] or 0))):
        cell_runs = by_cell[recipe, dataset, imb]
        label = f"{CIFAR_NAMES[dataset]} IF {imb}" + (f" [{recipe}]" if recipe else "")
        plain = group_by([r for r in cell_runs if r.beta == 0.0], loss_key)
        baselines = {key: stat_of(plain.get(key, []), metric) for key, _ in TABLE2_COLUMNS}
        unplaced = [r for k, rs in plain.items() if k not in baselines for r in rs]
        # at IF 1 every class has the same count, so the CB term is 1 and every run is a candidate
        candidates = cell_runs if imb == 1 else [r for r in cell_runs if r.beta > 0.0]
        if imb != 1 and unplaced:
            notes.lines.append(f"{label}: {len(unplaced)} runs with β=0 fit no column (e.g. {unplaced[0].describe()})")
        groups = group_by(candidates, lambda r: (*loss_key(r), r.beta))
        stats = {key: stat_of(rs, metric) for key, rs in groups.items()}
        best = None
        for (loss, gamma, beta), s in sorted(stats.items(), key=lambda kv: str(kv[0])):
            if best is None or s.mean < best.stat.mean:
                best = CBBest(s, loss, beta, gamma)
        counts = sorted({s.n for s in stats.values()})
        if best is not None and len(counts) > 1:
            best.seed_counts = tuple(counts)
        rows.append(Table2Result(dataset, imb, baselines, best, paper.table2_row(dataset, imb), recipe))
    return rows, notes, done


def render_table2(rows: list[Table2Result], metric: str = "top1_err") -> str:
    return per_recipe(rows, metric, _render_table2_recipe)


def _render_table2_recipe(rows: list[Table2Result], metric: str, recipe: str) -> str:
    head = ["dataset", "IF", ""] + [name for _, name in TABLE2_COLUMNS] + ["CB best", "CB loss, β, γ"]
    caption = (
        f"**Table 2.** ResNet-32 on long-tailed CIFAR, top-1 test error (%) at the {METRICS[metric]}"
        + ("" if metric == "top1_err" else " (the paper reports the last epoch)") + "."
    )  # fmt: skip
    lines = md_head(caption if not recipe else caption + " " + recipe_caption("Table 2", recipe), head)
    for r in rows:
        p = r.paper
        ours = [CIFAR_NAMES[r.dataset], str(r.imbalance_factor), "ours"]
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
        lines += [md_row(ours), md_row(theirs)]
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
    cells = "; ".join(f"{CIFAR_NAMES[r.dataset]} IF {r.imbalance_factor}: "
                      f"{', '.join(map(str, r.cb_best.seed_counts))} seeds" for r in uneven)
    return (f" Its candidates ran on different numbers of seeds in some rows ({cells}): a mean over fewer seeds is "
            "noisier, so it wins the choice by luck more often.")
