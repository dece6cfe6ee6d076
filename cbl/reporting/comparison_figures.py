"""Figures of comparisons with their uncertainty, from the runs' saved test predictions (cbl.training.predictions) and
cbl.reporting.comparisons.

    reliability   per (dataset, IF): one panel per configuration (seeds pooled), the reliability diagram of Guo et
                  al. (ICML 2017): the accuracy of the test images in each of 15 confidence bins as bars, the gap to
                  the bin's mean confidence shaded, the diagonal of perfect calibration, ECE in the panel's title;
                  the probabilities are the head's own (cbl.evaluation.calibration)
    gain vs IF    per dataset: softmax error minus the class-balanced run's error against the imbalance factor
                  (log x), ours with the paired-bootstrap 95 % interval (and the seed std where a row has several
                  seeds) beside the paper's (Table 2: softmax minus CB best); the CB run of a row is its
                  lowest-error class-balanced configuration, as the paper's CB best

The `*_data` functions return the plotted numbers (tested); `plot_*` draw them and return the PNG path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cbl.evaluation.calibration import ECE_BINS, calibration, reliability
from cbl.training.predictions import LAST, load_predictions
from cbl.reporting import paper
from cbl.reporting.comparisons import GainResult, build_gain
from cbl.reporting.figures import _by_panel_and_config, _pyplot, _save, _title
from cbl.reporting.runs import Run


# ----------------------------------------------------------------------------- reliability diagrams
def reliability_data(runs: list[Run]) -> dict[tuple, dict[str, dict]]:
    """(dataset, IF) -> configuration -> the reliability() bins and calibration() of its runs' last-epoch predictions
    pooled over the seeds that saved them ("only_seeds" lists those when some did not); configurations none of whose
    runs saved predictions are left out."""
    out = {}
    for panel, configs in _by_panel_and_config(runs).items():
        series = {}
        for label, rs in configs.items():
            used = [r for r in rs if (r.path / LAST).is_file()]
            if not used:
                continue
            saved = [load_predictions(r.path / LAST) for r in used]
            logits = np.concatenate([s["logits"] for s in saved])
            labels = np.concatenate([s["labels"] for s in saved])
            probability, scale = saved[0]["probability"], saved[0]["logit_scale"]
            series[label] = {**reliability(logits, labels, probability, scale),
                             **calibration(logits, labels, probability, scale), "probability": probability,
                             "seeds": len(used),
                             "only_seeds": [] if len(used) == len(rs) else sorted(r.seed for r in used)}
        if series:
            out[panel] = series
    return out


def plot_reliability(out: Path, panel: tuple[str, object], series: dict[str, dict], note: str = "") -> Path:
    plt = _pyplot()
    cols = min(3, len(series))
    rows = -(-len(series) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.3 * rows + 0.6), squeeze=False, layout="constrained")
    width = 1.0 / ECE_BINS
    for ax, (label, s) in zip(axes.flat, series.items()):
        left = np.asarray(s["edges"][:-1])
        acc = np.array([np.nan if a is None else a for a in s["accuracy"]])
        conf = np.array([np.nan if c is None else c for c in s["confidence"]])
        ax.bar(left, acc, width=width, align="edge", color="tab:blue", edgecolor="black", lw=0.5, label="accuracy")
        gap_low, gap = np.fmin(acc, conf), np.abs(conf - acc)
        ax.bar(left, gap, bottom=gap_low, width=width, align="edge", color="none", hatch="////", edgecolor="tab:red",
               lw=0.5, label="gap to the bin's confidence")
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=f"confidence ({s['probability']})", ylabel="accuracy")
        only = s.get("only_seeds")
        seeds = f" (seed{'s' if len(only) > 1 else ''} {', '.join(map(str, only))} only)" if only else ""
        ax.set_title(f"{label}{seeds}\nECE {s['ece']:.2f}%, NLL {s['nll']:.3f}", fontsize=8)
    for ax in list(axes.flat)[len(series):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="upper left")
    dataset, imb = panel
    text = f"{dataset} IF {imb}: reliability of the last epoch's test predictions"
    fig.suptitle(text + (f"\n{note}" if note else ""), fontsize=9)
    return _save(fig, out)


# ----------------------------------------------------------------------------- class-balanced gain vs IF
def _rank(g: GainResult) -> tuple:
    """The paper's class-balanced best configuration of the row first (the comparison Table 2 makes, so ours and the
    paper's points measure one thing), then the lowest error."""
    p = paper.table2_row(g.dataset, g.imbalance_factor)
    papers = p is not None and (p.cb_loss, p.cb_beta, p.cb_gamma) == (g.loss, g.beta, g.gamma)
    return (not papers, g.error.mean)


def gain_vs_if_data(runs: list[Run], metric: str = "top1_err") -> dict[str, dict[str, list]]:
    """dataset -> {"if", "gain", "centre", "low", "high", "std", "n", "label"} and {"paper_if", "paper_gain"}.

    Ours: softmax - the CB run of the paper's CB-best configuration per IF, else of the lowest-error CB one; the
    interval mirrored to the same sign around its own centre (the gain of the seeds that saved predictions).
    The paper's: Table 2's softmax - CB best."""
    rows, _, _ = build_gain(runs, metric)
    best: dict[tuple, GainResult] = {}
    for g in rows:
        if g.vs_softmax is None or g.imbalance_factor is None:
            continue
        key = (g.dataset, g.imbalance_factor)
        if key not in best or _rank(g) < _rank(best[key]):
            best[key] = g
    out: dict[str, dict[str, list]] = {}
    for (dataset, imb), g in sorted(best.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        d = out.setdefault(dataset, {k: [] for k in ("if", "gain", "centre", "low", "high", "std", "n", "label")})
        v = g.vs_softmax
        d["if"].append(imb)
        d["gain"].append(-v.delta.mean)  # softmax - CB: positive when class balancing helps
        d["centre"].append(None if v.interval is None else -v.interval.diff)  # the gain of the seeds it covers
        d["low"].append(None if v.interval is None else -v.interval.high)
        d["high"].append(None if v.interval is None else -v.interval.low)
        d["std"].append(v.delta.std if v.delta.n > 1 else None)
        d["n"].append(v.delta.n)
        d["label"].append(f"{g.loss}" + (f" γ={g.gamma:g}" if g.gamma is not None else "") + f", β={g.beta:g}")
    for dataset, d in out.items():
        reference = [r for r in paper.table2() if r.dataset == dataset.removesuffix("_lt")]
        d["paper_if"] = [r.imbalance_factor for r in reference]
        d["paper_gain"] = [r.softmax - r.cb_best for r in reference]
    return out


def plot_gain_vs_if(out: Path, dataset: str, d: dict[str, list], note: str = "") -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    if d.get("paper_if"):
        order = np.argsort(d["paper_if"])
        ax.plot(np.asarray(d["paper_if"])[order], np.asarray(d["paper_gain"])[order], "s--", color="grey", ms=4,
                label="paper (Table 2): softmax − CB best")
    x = np.asarray(d["if"], dtype=float)
    y = np.asarray(d["gain"], dtype=float)
    has_ci = np.array([lo is not None for lo in d["low"]])
    ax.plot(x, y, "o", color="tab:blue", ms=6, label="ours: softmax − CB run (points)")
    if has_ci.any():
        lo = np.array([v if v is not None else np.nan for v in d["low"]])
        hi = np.array([v if v is not None else np.nan for v in d["high"]])
        c = np.array([v if v is not None else np.nan for v in d["centre"]])
        # nudged right of the seed std bar (log x), so both stay readable
        ax.errorbar(x[has_ci] * 1.06, c[has_ci], yerr=[c[has_ci] - lo[has_ci], hi[has_ci] - c[has_ci]], fmt="none",
                    ecolor="tab:blue", capsize=4, lw=1.2, label="95 % bootstrap interval (test images; the seeds that saved predictions)")
    has_std = np.array([s is not None for s in d["std"]])
    if has_std.any():
        s = np.array([v if v is not None else np.nan for v in d["std"]])
        ax.errorbar(x[has_std] / 1.06, y[has_std], yerr=s[has_std], fmt="none", ecolor="tab:orange", alpha=0.6, lw=5,
                    label="± std over seeds")
    for xi, yi, label, n in zip(x, y, d["label"], d["n"]):
        ax.annotate(f"{label}" + (f" (n={n})" if n > 1 else ""), (xi, yi), textcoords="offset points", xytext=(6, -10),
                    fontsize=6)
    ax.axhline(0, color="black", lw=0.6)
    every_if = [*d["if"], *d.get("paper_if", [])]
    ax.set(xscale="log", xlabel="imbalance factor (log)", ylabel="top-1 error reduction (points)",
           xlim=(min(every_if) / 1.5, max(every_if) * 1.5))
    ax.set_xticks(sorted(set(every_if)), [f"{v:g}" for v in sorted(set(every_if))])
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    _title(ax, f"{dataset}: class-balanced gain against the imbalance factor", note)
    ax.legend(fontsize=7)
    return _save(fig, out)
