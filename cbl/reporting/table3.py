"""Table 3 of the paper: large-scale validation error (iNaturalist 2017 / 2018, ILSVRC 2012), top-1 / top-5 per
(network, loss, beta, gamma, input size), beside the paper's numbers (cbl.reporting.paper).  Runs of another recipe
than the paper's get rows of their own, labelled with what differs (as in Table 2).
"""

from __future__ import annotations

from dataclasses import dataclass

from cbl.reporting import paper
from cbl.reporting.runs import Run, Stat, is_paper_method
from cbl.reporting.table_parts import (METRICS, Notes, finished_runs, fmt, fmt_delta, fmt_param, fmt_stat, group_by,
                                       loss_key, md_head, md_row, per_recipe, recipe_caption, stat_of)


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
    done = finished_runs(mine, metric, notes)
    groups = group_by(done, lambda r: (", ".join(r.recipe_differences()), str(r.model), *loss_key(r), r.beta,
                                       r.input_size))
    rows = []
    for (recipe, model, loss, gamma, beta, size), rs in groups.items():
        results = {}
        for d in paper.TABLE3_DATASETS:
            sub = [r for r in rs if r.dataset == d]
            results[d] = (stat_of(sub, metric), stat_of(sub, "top5_err"))
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
    return per_recipe(rows, metric, _render_table3_recipe)


def _render_table3_recipe(rows: list[Table3Result], metric: str, recipe: str) -> str:
    names = {"inat2017": "iNat2017", "inat2018": "iNat2018", "ilsvrc2012": "ILSVRC2012"}
    head = ["network", "loss", "β", "γ", "input", ""]
    for d in paper.TABLE3_DATASETS:
        head += [f"{names[d]} top-1", "top-5"]
    caption = f"**Table 3.** Large-scale validation error (%), top-1 at the {METRICS[metric]}, top-5 at the last epoch."
    lines = md_head(caption if not recipe else caption + " " + recipe_caption("Table 3", recipe), head)
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
        lines += [md_row(ours), md_row(theirs)]
    lines += ["", "ours: mean ± std over seeds (n = number of seeds; a single value is one seed); Δ = ours − paper."]
    return "\n".join(lines)
