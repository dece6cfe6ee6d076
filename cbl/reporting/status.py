"""What has been reproduced so far, on what data: one line per setting of the finished runs (the paper's recipe on
its data, or each other recipe: another data source, precision, schedule), with the rows of the paper's tables they
cover, how many configurations and seeds, and their data.  The README's status at the top is this table, made from
the committed run summaries, so it can never claim more than the runs show.

Public API: `build_status`, `render_status`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cbl.reporting.runs import OFFICIAL_DATA, Run
from cbl.reporting.table_parts import CIFAR_NAMES, DASH, Notes, finished_runs, group_by, loss_key, md_row


@dataclass
class StatusRow:
    recipe: str  # how the runs differ from the paper's recipe; "" for the paper's own
    dataset: str
    imbalance_factors: list
    configurations: list[str]
    seeds: dict[str, list]  # configuration -> its seeds
    epochs: list
    data: list[str]


def build_status(runs: list[Run], metric: str = "top1_err", all_rows: bool = False
                 ) -> tuple[list[StatusRow], Notes, list[Run]]:
    notes = Notes()
    done = finished_runs(runs, metric, notes)
    rows = []
    # the official release apart from other copies: only its runs are the paper's setting
    groups = group_by(done, lambda r: (", ".join(r.recipe_differences("data")), str(r.dataset),
                                     r.data_source == OFFICIAL_DATA))

    def order(item) -> tuple:  # the paper's recipe on the official data first, then the longest schedules
        (recipe, dataset, official), rs = item
        return recipe != "", not official and recipe == "", -max((r.config.get("epochs") or 0) for r in rs), recipe, dataset

    for (recipe, dataset, _official), rs in sorted(groups.items(), key=order):
        configs = group_by(rs, lambda r: (r.method, *loss_key(r), r.beta))
        seeds = {}
        for (method, loss, gamma, beta), members in sorted(configs.items(), key=lambda kv: (kv[0][1], kv[0][2] or 0,
                                                                                           kv[0][3], str(kv[0]))):
            seeds[config_label(method, loss, gamma, beta)] = sorted({r.seed for r in members}, key=str)
        rows.append(StatusRow(
            recipe, dataset, sorted({r.imbalance_factor for r in rs}, key=lambda v: -(v or 0)), list(seeds), seeds,
            sorted({r.config.get("epochs") for r in rs}, key=str), sorted({r.data_source or "not recorded" for r in rs}),
        ))  # fmt: skip
    return rows, notes, done


def config_label(method: str, loss: str, gamma: float | None, beta: float) -> str:
    """"softmax", "CB focal γ 1 β 0.9999", "ldam_drw (softmax β 0.9999)": a configuration in a few words."""
    core = loss + (f" γ {gamma:g}" if gamma is not None else "") + (f" β {beta:g}" if beta > 0 else "")
    if method != loss:
        return f"{method} ({core})"
    return f"CB {core}" if beta > 0 else core


def _dataset(name: str) -> str:
    return CIFAR_NAMES.get(name.removesuffix("_lt"), name) + ("-LT" if name.endswith("_lt") and name.startswith("cifar") else "")


def _setting(row: StatusRow) -> str:
    """The setting's label: how its recipe differs from the paper's; the paper's recipe on data that is not the
    official release says so, so the row never reads as the paper's setting."""
    if row.recipe:
        return row.recipe
    return "the paper's recipe" if row.data == ["official"] else "the paper's recipe, other data (see data)"


def render_status(rows: list[StatusRow], metric: str = "top1_err") -> str:
    head = ["setting", "dataset", "IF", "configurations (seeds)", "epochs", "data"]
    lines = ["**Reproduced so far.** Finished runs by setting: the paper's recipe on its data, or how a setting "
             "differs from it (such runs never fill a paper cell).", "", md_row(head), md_row(["---"] * len(head))]
    for r in rows:
        configs = ", ".join(f"{c} ({len(s)})" for c, s in r.seeds.items())
        lines.append(md_row([
            _setting(r), _dataset(r.dataset), ", ".join(str(v) for v in r.imbalance_factors) or DASH,
            configs, ", ".join(str(e) for e in r.epochs), ", ".join(r.data),
        ]))  # fmt: skip
    if not any(r.recipe == "" and "official" in r.data for r in rows):
        lines += ["", "No run of the paper's recipe on the official data is committed yet: the paper's Tables 2 and 3 "
                  "below are the targets (`make reproduce-cifar`, `make reproduce-inat`, `make reproduce-imagenet`)."]
    return "\n".join(lines)
