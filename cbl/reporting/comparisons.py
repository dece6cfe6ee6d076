"""Comparisons with their uncertainty, from the runs' saved test predictions (cbl.training.predictions): how sure is a
difference, and how optimistic is a "best" chosen on the test set.

Paired bootstrap (Efron & Tibshirani, "An Introduction to the Bootstrap", 1993, ch. 13; its use for comparing two
systems on one test set: Koehn, EMNLP 2004).  Two runs evaluated on the same N test images give per-image error
indicators a_i, b_i.  Each of B = 2000 resamples draws N images with replacement (numpy's seeded generator), the same
draw for both runs, and computes 100 * (mean a - mean b); the 95 % interval is the 2.5 and 97.5 percentiles of the B
differences.  It covers the sampling of test images only: another seed or another long-tailed subset moves the
difference too (the ± std over seeds beside it is that part).  With several seeds the indicators are the per-image
means over the paired seeds, so the interval is that of the seed-averaged difference.

Honest selection.  Long-tailed CIFAR has no validation split, so the paper's "CB best" (the lowest error over the
class-balanced configurations) is chosen and reported on the same test images, which favours it.  Here the test set
is split into two halves, stratified by class (a seeded shuffle within each class; the first half of each class's
images, rounded down, form half A).  Fold A chooses the configuration with the lowest error on half A and reports
its error on half B; fold B the reverse.  A split's honest error is the two reports together, i.e. every test image
scored once by a configuration chosen without it.  One split is one draw: which half an image falls in moves the
choices and the honest error, so it is averaged over SPLITS = 100 splits (seeds 0..99), and the table gives that
mean, its std over the splits (how much a single split could have said otherwise) and how often each configuration
was chosen on a half.  Optimism = mean honest error - test-selected error, by how much choosing on the test set
flatters the CB best (it can come out negative by chance).  Each half has N/2 images, so a choice is noisier than
one on N: with candidates within the noise of each other, the halves choose differently from split to split.

Public API: `paired_bootstrap`, `stratified_halves`, `build_gain`, `render_gain`, `build_selection`,
`render_selection`, `predictions_of`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from cbl.training.predictions import BEST, LAST, PredictionsError, load_predictions
from cbl.reporting import paper
from cbl.reporting.runs import Run, RunsError, Stat, draw_order, is_paper_method, summarize
from cbl.reporting.table_parts import (CIFAR_NAMES, DASH, METRICS, MINUS, Notes, finished_runs, fmt, fmt_config,
                                       fmt_stat, group_by, loss_key, md_head, md_row, with_schedules)

RESAMPLES = 2000
LEVEL = 0.95
BOOTSTRAP_SEED = 0
#: honest selection: the stratified two-way splits averaged over, split seeds 0 .. SPLITS - 1
SPLITS = 100


@dataclass(frozen=True)
class Interval:
    """A difference (percentage points) and its bootstrap interval."""

    diff: float
    low: float
    high: float


def paired_bootstrap(wrong_a, wrong_b, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED,
                     level: float = LEVEL) -> Interval:
    """100 * (mean wrong_a - mean wrong_b) with its paired-bootstrap percentile interval (module docstring)."""
    a, b = np.asarray(wrong_a, dtype=np.float64), np.asarray(wrong_b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or not len(a):
        raise ValueError(f"paired bootstrap needs two equal-length 1-D per-image errors; got {a.shape} and {b.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1); got {level}")
    d, n = a - b, len(a)
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    chunk = max(1, 2_000_000 // n)  # resamples drawn together: bounded memory for large test sets
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        diffs[start : start + k] = d[rng.integers(0, n, (k, n))].mean(axis=1)
    tail = 100.0 * (1 - level) / 2
    low, high = np.percentile(100.0 * diffs, [tail, 100.0 - tail])
    return Interval(100.0 * float(d.mean()), float(low), float(high))


def stratified_halves(labels, seed: int = 0) -> np.ndarray:
    """bool [N]: True for half A: within each class, a seeded shuffle of its images, the first floor(n_c / 2)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    half_a = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):  # in class order, so the draw does not depend on the images' order of classes
        members = np.flatnonzero(labels == c)
        half_a[rng.permutation(members)[: len(members) // 2]] = True
    return half_a


# ----------------------------------------------------------------------------- runs -> per-image errors
PREDICTION_FILES = {"top1_err": LAST, "best_top1_err": BEST}


@lru_cache(maxsize=256)
def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    p = load_predictions(path)
    return p["labels"], p["logits"].argmax(1) != p["labels"]


def predictions_of(run: Run, metric: str = "top1_err") -> tuple[np.ndarray, np.ndarray] | None:
    """(labels, wrong) of a run's saved predictions for `metric` (last or best epoch), None when it saved none.
    A file that disagrees with the run's recorded error (another run's, or damaged) is a RunsError."""
    path = run.path / PREDICTION_FILES[metric]
    if not path.is_file():
        return None
    try:
        labels, wrong = _load(path.resolve())
    except PredictionsError as e:
        raise RunsError(str(e)) from None
    recorded = run.value(metric)
    if recorded is not None and abs(100.0 * wrong.mean() - recorded) > 1e-6:
        raise RunsError(f"{path}: its top-1 error {100.0 * wrong.mean():.4f}% is not the run's recorded {metric} "
                        f"{recorded:.4f}%; the file is not this run's")
    return labels, wrong


def _per_image(runs: list[Run], metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(labels, mean over `runs` of their per-image errors), None unless every run saved predictions of one test set."""
    got = [predictions_of(r, metric) for r in runs]
    if not got or any(g is None for g in got):
        return None
    labels = got[0][0]
    if any(not np.array_equal(g[0], labels) for g in got):
        raise RunsError(f"the saved predictions of {', '.join(str(r.path) for r in runs)} are not on the same test images")
    return labels, np.mean([g[1] for g in got], axis=0)


def _contexts(runs: list[Run], metric: str, notes: Notes, table: str) -> dict[tuple, list[Run]]:
    """The finished runs of the paper's losses by (dataset, IF, model, how the recipe differs from the paper's); runs
    of different schedules never share a context, which names what tells them apart (table_parts.with_schedules)."""
    mine = [r for r in runs if is_paper_method(r)]
    notes.left_out(runs, mine, table)
    done = finished_runs(mine, metric, notes)
    groups = group_by(done, lambda r: (str(r.dataset), r.imbalance_factor, str(r.model),
                                       ", ".join(r.recipe_differences()), r.schedule()))
    shown = with_schedules(list(groups), settings_at=3, scope=4)
    return {shown[k]: rs for k, rs in groups.items()}


# ----------------------------------------------------------------------------- gain: class-balanced vs beta = 0
@dataclass
class Gain:
    """Difference (CB run − baseline) over the seeds both were run with, and its bootstrap interval."""

    delta: Stat
    interval: Interval | None  # over the pairs whose two runs saved predictions; None when no pair did
    interval_seeds: tuple = ()  # the seeds the interval covers when they are fewer than the pairs (else empty)


@dataclass
class GainResult:
    dataset: str
    imbalance_factor: int | float | None
    recipe: str
    loss: str
    beta: float
    gamma: float | None
    error: Stat
    vs_softmax: Gain | None  # against softmax at beta 0 (the paper's reference column)
    vs_own: Gain | None  # against the same loss (and gamma) at beta 0
    paper_gain: float | None  # the paper's CB best - softmax for this dataset and IF


def _gain(cb: list[Run], base: list[Run], metric: str) -> Gain | None:
    """Paired by (seed, subset seed): the seeds run in both."""
    by_seed = {r.draw: r for r in base}
    pairs = [(r, by_seed[r.draw]) for r in cb if r.draw in by_seed]
    if not pairs:
        return None
    delta = summarize(a.value(metric) - b.value(metric) for a, b in pairs)
    # runs recorded before predictions were saved leave their seeds out of the interval, which then says so
    saved = [(a, b) for a, b in pairs if predictions_of(a, metric) is not None and predictions_of(b, metric) is not None]
    if not saved:
        return Gain(delta, None)
    a, b = _per_image([p[0] for p in saved], metric), _per_image([p[1] for p in saved], metric)
    covers = () if len(saved) == len(pairs) else tuple(r.draw_label for r, _ in sorted(saved, key=lambda p: draw_order(p[0])))
    return Gain(delta, paired_bootstrap(a[1], b[1]), covers)


def build_gain(runs: list[Run], metric: str = "top1_err", all_rows: bool = False
               ) -> tuple[list[GainResult], Notes, list[Run]]:  # all_rows: every row is a configuration run here
    """Each class-balanced configuration of the paper's losses (β > 0) against softmax and against its own loss at
    β = 0, in the same dataset, IF, model and recipe, paired by seed and subset seed."""
    notes = Notes()
    contexts = _contexts(runs, metric, notes, "the gain table")
    rows, used = [], []
    for (dataset, imb, _model, recipe), rs in contexts.items():
        configs = group_by(rs, lambda r: (*loss_key(r), r.beta))
        softmax = configs.get(("softmax", None, 0.0), [])
        for (loss, gamma, beta), cb in configs.items():
            if beta == 0.0:
                continue
            own = configs.get((loss, gamma, 0.0), [])
            vs_softmax, vs_own = _gain(cb, softmax, metric), _gain(cb, own, metric)
            if vs_softmax is None and vs_own is None:
                notes.lines.append(f"{cb[0].describe()}: no β = 0 run of the same seed to compare with")
                continue
            used += cb + softmax + own
            p = paper.table2_row(dataset, imb) if CIFAR_NAMES.get(dataset.removesuffix("_lt")) else None
            rows.append(GainResult(dataset, imb, recipe, loss, beta, gamma, summarize(r.value(metric) for r in cb),
                                   vs_softmax, vs_own, None if p is None else p.cb_best - p.softmax))
    rows.sort(key=lambda g: (g.recipe, g.dataset, -(g.imbalance_factor or 0), g.loss, g.gamma or 0.0, g.beta))
    return rows, notes, list({id(r): r for r in used}.values())  # each run once, in order


def _recipe_label(dataset: str, recipe: str) -> str:
    """How the runs differ from the paper's recipe; "the paper's" for none, "-" for data the paper has no recipe for."""
    return recipe or ("the paper's" if paper.recipe(dataset, None) is not None else "-")


def fmt_diff(x: float) -> str:
    return f"{x:+.2f}".replace("-", MINUS)


def fmt_gain(g: Gain | None) -> str:
    """"−5.21 [−6.34, −4.05]" for one seed; "−5.30 ± 0.41 (n=3) [−6.02, −4.61]" for several; "−5.02 ± 0.93 (n=2);
    seed 1: −4.37 [−5.50, −3.20]" when only some seeds saved predictions (the interval is then that seed's own)."""
    if g is None:
        return DASH
    text = fmt_diff(g.delta.mean) + ("" if g.delta.n == 1 else f" ± {fmt(g.delta.std)} (n={g.delta.n})")
    if g.interval is not None:
        if g.interval_seeds:
            seeds = ", ".join(str(s) for s in g.interval_seeds)
            text += f"; seed{'s' if len(g.interval_seeds) > 1 else ''} {seeds}: {fmt_diff(g.interval.diff)}"
        text += f" [{fmt(g.interval.low)}, {fmt(g.interval.high)}]"
    return text


def render_gain(rows: list[GainResult], metric: str = "top1_err") -> str:
    head = ["dataset", "IF", "recipe", "CB loss, β, γ", "CB top-1 err", "Δ vs softmax (β 0)", "Δ vs same loss (β 0)",
            "paper: CB best − softmax"]  # fmt: skip
    lines = md_head(
        f"**Class-balanced gain.** Top-1 error (%) at the {METRICS[metric]}; Δ = class-balanced run − β = 0 run of "
        "the same seed (negative: class balancing helps), mean ± std over the seeds paired; [low, high]: 95 % paired "
        f"bootstrap interval over the test images ({RESAMPLES} resamples).",
        head,
    )
    for g in rows:
        lines.append(md_row([
            CIFAR_NAMES.get(g.dataset.removesuffix("_lt"), g.dataset), str(g.imbalance_factor if g.imbalance_factor is not None else DASH),
            _recipe_label(g.dataset, g.recipe), fmt_config(g.loss, g.beta, g.gamma), fmt_stat(g.error), fmt_gain(g.vs_softmax),
            fmt_gain(g.vs_own), DASH if g.paper_gain is None else fmt_diff(g.paper_gain),
        ]))  # fmt: skip
    lines += ["", "The interval covers the sampling of test images only; the ± std is the spread over seeds (and "
              "long-tailed subsets) of the same comparison: a difference is settled only when it is large against "
              "both. \"seed 1: ...\" or \"seeds 1, 2: ...\": only those seeds' runs saved test predictions, so the "
              "interval is that of those seeds' difference (averaged over them), around its own value. No interval: "
              "no run pair saved them (cbl-evaluate completes them from a final checkpoint)."]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- honest CB best
@dataclass
class SelectionResult:
    dataset: str
    imbalance_factor: int | float | None
    recipe: str
    candidates: int
    test_choice: tuple  # (loss, gamma, beta) chosen on the whole test set
    test_error: float  # its error on the whole test set: the "CB best" of Table 2
    choice_shares: dict[tuple, float]  # configuration -> its share of the 2 x SPLITS choices made on a half
    honest_error: Stat  # over the splits: every image scored by the configuration chosen on the other half
    images: int


def _config_label(key: tuple) -> str:
    loss, gamma, beta = key
    return fmt_config(loss, beta, gamma)


def build_selection(runs: list[Run], metric: str = "top1_err", all_rows: bool = False
                    ) -> tuple[list[SelectionResult], Notes, list[Run]]:
    """Per (dataset, IF, model, recipe) of the paper's losses with at least two class-balanced configurations whose
    runs all saved predictions: the test-selected CB best against the split-selected one (module docstring)."""
    notes = Notes()
    contexts = _contexts(runs, metric, notes, "the selection table")
    rows, used = [], []
    for (dataset, imb, _model, recipe), rs in contexts.items():
        candidates = rs if imb == 1 else [r for r in rs if r.beta > 0.0]  # IF 1: the CB term is 1 (as Table 2)
        configs = group_by(candidates, lambda r: (*loss_key(r), r.beta))
        errors, labels = {}, None
        for key, members in configs.items():
            got = _per_image(members, metric)
            if got is None:
                notes.lines.append(f"{members[0].describe()}: no saved predictions (of every seed); not a candidate")
                continue
            if labels is not None and not np.array_equal(got[0], labels):
                raise RunsError(f"{members[0].path}: its predictions are not on the same test images as the others'")
            labels, errors[key] = got[0], got[1]
        if len(errors) < 2:
            continue
        keys = sorted(errors, key=str)

        def best(mask: np.ndarray) -> tuple:  # the lowest error on the masked images (ties: the first in key order)
            return min(keys, key=lambda k: errors[k][mask].mean())

        test_choice = best(np.ones(len(labels), dtype=bool))
        honest, chosen = [], []
        for split in range(SPLITS):
            half_a = stratified_halves(labels, split)
            choice_a, choice_b = best(half_a), best(~half_a)
            # each image scored by the choice made without it
            honest.append(100.0 * np.where(half_a, errors[choice_b], errors[choice_a]).mean())
            chosen += [choice_a, choice_b]
        shares = {k: chosen.count(k) / len(chosen) for k in sorted(set(chosen), key=lambda k: (-chosen.count(k), str(k)))}
        rows.append(SelectionResult(dataset, imb, recipe, len(errors), test_choice, 100.0 * errors[test_choice].mean(),
                                    shares, summarize(honest), len(labels)))
        used += [r for k in errors for r in configs[k]]
    rows.sort(key=lambda s: (s.recipe, s.dataset, -(s.imbalance_factor or 0)))
    return rows, notes, used


def render_selection(rows: list[SelectionResult], metric: str = "top1_err") -> str:
    head = ["dataset", "IF", "recipe", "candidates", "CB best on the test set", "its error",
            f"chosen on a half (of {2 * SPLITS})", "honest error", "optimism"]  # fmt: skip
    lines = md_head(
        f"**CB best, chosen honestly.** Top-1 error (%) at the {METRICS[metric]} of the class-balanced configuration "
        "chosen on the whole test set (as the paper's CB best) and of the one chosen on one half of the test set and "
        f"scored on the other (both ways; halves stratified by class), mean ± std over {SPLITS} such splits; "
        "optimism = honest − test-selected error: how much choosing on the test set flatters the CB best.",
        head,
    )
    for s in rows:
        shares = "; ".join(f"{_config_label(k)} ({share:.0%})" for k, share in s.choice_shares.items())
        lines.append(md_row([
            CIFAR_NAMES.get(s.dataset.removesuffix("_lt"), s.dataset), str(s.imbalance_factor if s.imbalance_factor is not None else DASH),
            _recipe_label(s.dataset, s.recipe), str(s.candidates), _config_label(s.test_choice), fmt(s.test_error), shares,
            f"{fmt(s.honest_error.mean)} ± {fmt(s.honest_error.std)}", fmt_diff(s.honest_error.mean - s.test_error),
        ]))  # fmt: skip
    lines += ["", "A configuration's error is the mean over its seeds. Each half holds half the test images of every "
              "class, so a choice made on it is noisier than one made on the whole set; with candidates within the "
              "noise of each other the halves choose differently from split to split (the shares), and the honest "
              "error mixes their choices. The ± is the spread over splits: how far one split's answer can fall from "
              "the mean."]
    return "\n".join(lines)
