"""The parts every results table is made of: number formatting, Markdown rows, the notes under a table, the runs a
table counts (finished, one per configuration and seed) and the list of the runs it leaves out.

Each table module (table2, table3, methods_table, precision_table, comparisons, status, attribution,
multilabel_table) builds its rows from `finished_runs` and `group_by` and renders them with `md_head` / `md_row` and
the `fmt*` helpers; cbl.reporting.tables puts a table, its notes and `describe_runs` together.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cbl.reporting.runs import Run, Stat, summarize
from cbl.reporting.runs import one_vote as runs_one_vote

#: Error metrics a table can report as its top-1 number: the last epoch (what the paper reports) or the best.
METRICS = {"top1_err": "last epoch", "best_top1_err": "best epoch"}
DASH = "—"
MINUS = "−"

CIFAR_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
LossKey = tuple[str, float | None]  # (loss, focal gamma or None)


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


def cifar_name(dataset: str | None) -> str | None:
    return CIFAR_NAMES.get((dataset or "").removesuffix("_lt"))


def loss_key(run: Run) -> LossKey:
    # focal with gamma = 0 is exactly the sigmoid loss, so it belongs in the sigmoid column
    if run.loss == "focal" and run.gamma == 0.0:
        return ("sigmoid", None)
    return (str(run.loss), run.gamma)


def fmt_config(loss: str, beta: float | None, gamma: float | None) -> str:
    return f"{loss}, β={fmt_param(beta)}, γ={fmt_param(gamma)}"


def md_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def md_head(caption: str, head: list[str]) -> list[str]:
    """A table's first lines: its caption, a blank line, the header row and the alignment row."""
    return [caption, "", md_row(head), md_row(["---"] * len(head))]


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


def describe_runs(runs: list[Run]) -> str:
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
    parts = ([f"measured on {len(seen)} machines"] if len(seen) > 1 else [f"measured on {next(iter(seen))[0]}"] if seen
             else [])
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


def group_by(runs: Iterable[Run], key: Callable[[Run], tuple]) -> dict[tuple, list[Run]]:
    out: dict[tuple, list[Run]] = defaultdict(list)
    for r in runs:
        out[key(r)].append(r)
    return out


def finished_runs(runs: Iterable[Run], metric: str, notes: Notes) -> list[Run]:
    """The finished single-label runs with a finite `metric`, one per (configuration, seed, subset seed, data
    source)."""
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


def stat_of(runs: list[Run], metric: str) -> Stat | None:
    return summarize(r.value(metric) for r in runs)


def schedule_labels(schedules: Iterable[tuple[tuple[str, str], ...]]) -> dict[tuple, str]:
    """For the schedules (Run.schedule) of rows that would otherwise print alike, what tells them apart: the keys
    whose values differ among them, e.g. "epochs=3"; "" for each when there is only one schedule."""
    distinct = list(dict.fromkeys(schedules))
    if len(distinct) < 2:
        return {s: "" for s in distinct}
    differ = [i for i in range(len(distinct[0])) if len({s[i] for s in distinct}) > 1]
    return {s: ", ".join(f"{s[i][0]}={s[i][1]}" for i in differ) for s in distinct}


def with_schedules(keys: list[tuple], settings_at: int, scope: int) -> dict[tuple, tuple]:
    """Row keys whose last element is a schedule -> the same keys without it, the schedule's label appended to the
    settings text at index `settings_at`.  The label (schedule_labels) tells apart the schedules of all the rows
    that share the key's first `scope` elements (e.g. dataset, IF, model), so that each such row says its own."""
    out = {}
    for same in group_by(keys, lambda k: k[:scope]).values():
        labels = schedule_labels(k[-1] for k in same)
        for k in same:
            settings = ", ".join(p for p in (k[settings_at], labels[k[-1]]) if p)
            out[k] = (*k[:settings_at], settings, *k[settings_at + 1:-1])
    return out


def recipe_caption(table: str, recipe: str) -> str:
    return (f"**{table} layout, not the paper's setting.** These runs differ from the paper's recipe in: {recipe}. "
            "The paper's numbers stand beside them for reference: Δ measures the effect of those differences "
            "(and of seeds), not a reproduction error.")


def per_recipe(rows: list, metric: str, render_one: Callable[[list, str, str], str]) -> str:
    """One Markdown table per recipe (rows with a `recipe` field, "" for the paper's): the paper's first (if
    present), then each other recipe under its caption, `render_one(rows, metric, recipe)` each."""
    by_recipe = group_by(rows, lambda r: (r.recipe,))
    return "\n\n".join(render_one(rs, metric, recipe) for (recipe,), rs in by_recipe.items())


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
