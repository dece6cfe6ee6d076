"""The paper's figures (Cui et al., CVPR 2019) from the loss definition and from run directories.

    Figure 3  the class-balanced term (1 - beta) / (1 - beta**n) = 1 / E_n against the number of samples n of
              the ground-truth class, for beta in {0.9, 0.99, 0.999, 0.9999}, with beta = 0 (no re-weighting,
              the term is 1) and beta -> 1 (inverse class frequency, 1/n) as the limits; both axes log.
    Figure 4  training samples per class, sorted, one line per (dataset, IF) found in the runs; log y.
    Figure 5  top-1 error against beta per loss (softmax, sigmoid, focal per gamma), one panel per (dataset, IF),
              the beta = 0 run of the same loss drawn as a dashed baseline.
    curves    per run: lr, train loss and top-1 error against epoch, from metrics.jsonl.
    error per epoch   per (dataset, IF): test top-1 error against epoch, one line per configuration (mean over
              seeds at each evaluated epoch), e.g. softmax against its class-balanced version.
    per-class accuracy   per (dataset, IF): last-epoch test accuracy of each class against its number of training
              samples, one line per configuration (mean over seeds): where class balancing moves accuracy.

Runs of different recipes or data sources must not share a figure: the callers select one (scripts/plot.py).

The `*_data` functions return the plotted arrays (tested against hand-computed values); the `plot_*` functions
draw them with matplotlib's Agg backend and return the PNG path.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from cbl.losses import effective_number
from cbl.reporting.runs import Run, is_paper_method, summarize

FIG3_BETAS = (0.9, 0.99, 0.999, 0.9999)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return path


# ----------------------------------------------------------------------------- Figure 3
def cb_term_data(betas=FIG3_BETAS, n_max: int = 10_000, points: int = 200) -> tuple[np.ndarray, dict]:
    """n (integers 1..n_max, log spaced) and, per beta, the class-balanced term (1 - beta) / (1 - beta**n)."""
    n = np.unique(np.round(np.logspace(0, np.log10(n_max), points)).astype(np.int64))
    return n, {b: (1.0 / effective_number(n.tolist(), b)).numpy() for b in betas}


def plot_cb_term(out: Path, betas=FIG3_BETAS, n_max: int = 10_000) -> Path:
    plt = _pyplot()
    n, curves = cb_term_data(betas, n_max)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(n, np.ones_like(n, dtype=float), "k--", lw=1, label="β = 0 (no re-weighting)")
    for b, y in curves.items():
        ax.plot(n, y, label=f"β = {b:g}")
    ax.plot(n, 1.0 / n, "k:", lw=1, label="β → 1 (inverse class frequency)")
    ax.set(xscale="log", yscale="log", xlabel="number of samples in the ground-truth class, n",
           ylabel="class-balanced term (1 − β) / (1 − βⁿ)", title="Class-balanced term (Fig. 3)")  # fmt: skip
    ax.legend(fontsize=8)
    return _save(fig, out)


# ----------------------------------------------------------------------------- Figure 4
def samples_per_class_data(runs: list[Run]) -> dict[tuple[str, object], np.ndarray]:
    """(dataset, IF) -> that training set's samples per class, sorted largest first (first run by path)."""
    out: dict[tuple[str, object], np.ndarray] = {}
    for r in runs:
        counts = r.metrics.get("samples_per_class")
        key = (str(r.dataset), r.imbalance_factor)
        if isinstance(counts, list) and counts and key not in out:
            out[key] = np.sort(np.asarray(counts, dtype=np.int64))[::-1]
    return dict(sorted(out.items(), key=lambda kv: (kv[0][0], -(kv[0][1] or 0))))


def plot_samples_per_class(out: Path, data: dict[tuple[str, object], np.ndarray]) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for (dataset, imb), counts in data.items():
        ax.plot(np.arange(len(counts)), counts, label=f"{dataset} IF {imb}")
    ax.set(yscale="log", xlabel="class index (sorted by size)", ylabel="training samples",
           title="Training samples per class (Fig. 4)")  # fmt: skip
    ax.legend(fontsize=8)
    return _save(fig, out)


# ----------------------------------------------------------------------------- Figure 5
def loss_label(run: Run) -> str:
    # focal with gamma = 0 is the sigmoid loss
    if run.loss == "focal" and run.gamma:
        return f"focal γ={run.gamma:g}"
    return "sigmoid" if run.loss == "focal" else str(run.loss)


def error_vs_beta_data(runs: list[Run], metric: str = "top1_err") -> dict[tuple[str, object], dict[str, dict]]:
    """(dataset, IF) -> loss label -> {"beta": [betas > 0, sorted], "err": [mean error over seeds at each beta],
    "baseline": mean error at beta = 0 or None}.  Finished paper-method runs only; panels without a beta > 0 run
    are left out."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in runs:
        v = r.value(metric)
        if r.status == "finished" and is_paper_method(r) and v is not None:
            groups[(str(r.dataset), r.imbalance_factor, loss_label(r), r.beta)].append(v)
    panels: dict[tuple[str, object], dict[str, dict]] = defaultdict(dict)
    for (dataset, imb, label, beta), values in sorted(groups.items(), key=lambda kv: str(kv[0])):
        series = panels[(dataset, imb)].setdefault(label, {"beta": [], "err": [], "baseline": None})
        mean = summarize(values).mean
        if beta == 0.0:
            series["baseline"] = mean
        else:
            series["beta"].append(beta)
            series["err"].append(mean)
    out = {}
    for key in sorted(panels, key=lambda k: (k[0], -(k[1] or 0))):
        series = panels[key]
        for s in series.values():  # sort each series by beta
            order = np.argsort(s["beta"])
            s["beta"], s["err"] = [s["beta"][i] for i in order], [s["err"][i] for i in order]
        if any(s["beta"] for s in series.values()):
            out[key] = dict(sorted(series.items(), key=lambda kv: _label_order(kv[0])))
    return out


def _label_order(label: str) -> tuple:
    head = {"softmax": 0, "sigmoid": 1}.get(label, 2)
    return (head, label)


def _title(ax, text: str, note: str) -> None:
    """Axes title; a recipe note (how the runs differ from the paper's recipe) goes on a second, smaller line so a
    long data-source name neither gets cut off nor widens the figure."""
    ax.set_title(f"{text}\n{note}" if note else text, fontsize=9 if note else None)


def plot_error_vs_beta(out: Path, panel: tuple[str, object], series: dict[str, dict], metric: str = "top1_err",
                       note: str = "") -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    all_betas = sorted({b for s in series.values() for b in s["beta"]})
    # beta = 0.9, 0.99, 0.999, ... are evenly spaced on -log10(1 - beta), as in the paper's figure
    x = lambda bs: -np.log10(1.0 - np.asarray(bs, dtype=float))  # noqa: E731
    for i, (label, s) in enumerate(series.items()):
        color = f"C{i}"
        if s["beta"]:
            ax.plot(x(s["beta"]), s["err"], "o-", color=color, label=f"CB {label}")
        if s["baseline"] is not None:
            ax.axhline(s["baseline"], color=color, ls="--", lw=1, label=f"{label} (β = 0)")
    ax.set_xticks(x(all_betas), [f"{b:g}" for b in all_betas])
    dataset, imb = panel
    ylabel = {"top1_err": "top-1 error (%), last epoch", "best_top1_err": "top-1 error (%), best epoch"}[metric]
    ax.set(xlabel="β", ylabel=ylabel)
    _title(ax, f"{dataset} IF {imb}: error vs β (Fig. 5)", note)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: the lines fill the axes
    return _save(fig, out)


# ----------------------------------------------------------------------------- comparisons of configurations
def config_label(run: Run) -> str:
    """"softmax", "CB focal γ=1 (β=0.9999)", "ldam_drw (β=0.9999)": a configuration as a legend names it."""
    label = loss_label(run) if run.method == run.loss else str(run.method)
    return f"CB {label} (β={run.beta:g})" if run.beta > 0 and run.method == run.loss else (
        f"{label} (β={run.beta:g})" if run.beta > 0 else label)


def _by_panel_and_config(runs: list[Run]) -> dict[tuple, dict[str, list[Run]]]:
    """(dataset, IF) -> configuration label -> its finished runs (the seeds), panels and labels sorted."""
    out: dict[tuple, dict[str, list[Run]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if r.status == "finished":
            out[(str(r.dataset), r.imbalance_factor)][config_label(r)].append(r)
    return {k: dict(sorted(out[k].items(), key=lambda kv: (kv[0].startswith("CB"), kv[0])))
            for k in sorted(out, key=lambda k: (k[0], -(k[1] or 0)))}


def error_per_epoch_data(runs: list[Run]) -> dict[tuple, dict[str, dict[str, np.ndarray]]]:
    """(dataset, IF) -> configuration -> {"epoch", "top1_err"}: the evaluated epochs common to all its seeds and
    the mean test error over the seeds there."""
    out = {}
    for panel, configs in _by_panel_and_config(runs).items():
        out[panel] = {}
        for label, rs in configs.items():
            per_run = [{h["epoch"]: h["top1_err"] for h in r.history() if h.get("top1_err") is not None} for r in rs]
            epochs = sorted(set.intersection(*(set(p) for p in per_run)))
            out[panel][label] = {"epoch": np.asarray(epochs, dtype=np.int64),
                                 "top1_err": np.asarray([np.mean([p[e] for p in per_run]) for e in epochs])}
    return out


def plot_error_per_epoch(out: Path, panel: tuple[str, object], series: dict[str, dict], note: str = "") -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label, s in series.items():
        ax.plot(s["epoch"], s["top1_err"], lw=1.2, ls="-" if label.startswith("CB") else "--", label=label)
    dataset, imb = panel
    ax.set(xlabel="epoch", ylabel="test top-1 error (%)")
    ax.xaxis.get_major_locator().set_params(integer=True)  # whole epochs only, even for a 3-epoch run
    _title(ax, f"{dataset} IF {imb}: test error per epoch", note)
    ax.legend(fontsize=7)
    return _save(fig, out)


def per_class_accuracy_data(runs: list[Run]) -> dict[tuple, dict[str, dict[str, np.ndarray]]]:
    """(dataset, IF) -> configuration -> {"count", "acc"}: the training samples of each class and its last-epoch
    test accuracy, mean over the seeds (which share the class counts), classes sorted by count, largest first."""
    out = {}
    for panel, configs in _by_panel_and_config(runs).items():
        out[panel] = {}
        for label, rs in configs.items():
            counts = np.asarray(rs[0].metrics["samples_per_class"], dtype=np.int64)
            acc = np.mean([np.asarray(r.metrics["per_class_acc"], dtype=float) for r in rs], axis=0)
            order = np.argsort(-counts, kind="stable")
            out[panel][label] = {"count": counts[order], "acc": acc[order]}
    return out


def plot_per_class_accuracy(out: Path, panel: tuple[str, object], series: dict[str, dict], note: str = "") -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label, s in series.items():
        ax.plot(s["count"], s["acc"], "o" + ("-" if label.startswith("CB") else "--"), ms=3, lw=1.2, label=label)
    dataset, imb = panel
    ax.set(xscale="log", xlabel="training samples of the class (log)", ylabel="test accuracy of the class (%)")
    _title(ax, f"{dataset} IF {imb}: per-class accuracy, last epoch", note)
    ax.invert_xaxis()  # head classes on the left, as the class index runs
    ax.legend(fontsize=7)
    return _save(fig, out)


# ----------------------------------------------------------------------------- training curves
def curves_data(run: Run) -> dict[str, np.ndarray]:
    """epoch, lr, train_loss, top1_err arrays from the run's metrics.jsonl (NaN where a value is missing)."""
    hist = run.history()

    def col(name: str) -> np.ndarray:
        return np.array([h.get(name) if h.get(name) is not None else np.nan for h in hist], dtype=float)

    return {name: col(name) for name in ("epoch", "lr", "train_loss", "top1_err")}


def plot_curves(out: Path, run: Run, title: str) -> Path:
    plt = _pyplot()
    data = curves_data(run)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), layout="constrained")
    labels = {"lr": "learning rate", "train_loss": "train loss", "top1_err": "top-1 error (%)"}
    for ax, (name, label) in zip(axes, labels.items()):
        ax.plot(data["epoch"], data[name], ".-", ms=3)
        ax.set(xlabel="epoch", ylabel=label)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(f"{title} ({run.status})", fontsize=9)
    return _save(fig, out)


def safe_name(text: str) -> str:
    """A file name from a run's relative path: "a/b c/0" -> "a__b_c__0"."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text.replace("/", "__")).strip("_") or "run"
