"""cbl/reporting/comparisons.py: the paired bootstrap on synthetic predictions with a known difference (against
tests/reference.py's resample-at-a-time loop), the stratified halves, the gain and selection tables on synthetic runs
whose saved predictions are built with known errors, and both tables end to end from a short real sweep."""

import numpy as np
import pytest

from cbl.training.predictions import LAST, save_predictions
from cbl.reporting import comparisons
from cbl.reporting.comparisons import build_gain, build_selection, paired_bootstrap, stratified_halves
from cbl.reporting.runs import RunsError, find_runs
from cbl.reporting.tables import make_table
from tests import reference
from tests.runfactory import run_script, write_run
from tests.train_utils import QUIET, demo_overrides, run_cli

N, C = 1000, 10
LABELS = np.repeat(np.arange(C), N // C)


def with_predictions(path, wrong: np.ndarray, **run):
    """A finished run whose saved logits are wrong exactly where `wrong` says (and metrics.json agrees)."""
    logits = np.eye(C, dtype=np.float32)[np.where(wrong, (LABELS + 1) % C, LABELS)]
    write_run(path, top1=100.0 * wrong.mean(), **run)
    save_predictions(path / LAST, logits, LABELS, epoch=200, probability="softmax")
    return path


def wrong_at(rate: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random(N) < rate


def test_the_bootstrap_equals_the_reference_loop_and_covers_a_known_difference():
    a, b = wrong_at(0.35, 1), wrong_at(0.30, 2)
    got = paired_bootstrap(a, b, resamples=500, seed=3)
    diffs = reference.paired_bootstrap(a, b, resamples=500, seed=3)
    assert got.diff == pytest.approx(100.0 * (a.mean() - b.mean()))
    assert (got.low, got.high) == pytest.approx(tuple(np.percentile(diffs, [2.5, 97.5])))
    # independent images, true difference 5 points, N = 1000: the interval has half-width ~ 1.96 * 2.1 points
    assert got.low < 5.0 < got.high and 3.0 < got.high - got.low < 11.0
    same = paired_bootstrap(a, a)
    assert (same.diff, same.low, same.high) == (0.0, 0.0, 0.0)  # pairing: a run against itself has no spread
    with pytest.raises(ValueError, match="equal-length"):
        paired_bootstrap(a, b[:10])


def test_a_paired_difference_is_narrower_than_the_errors_alone_would_suggest():
    base = wrong_at(0.35, 4)
    better = base & (np.random.default_rng(5).random(N) > 0.15)  # the same mistakes, 15 % of them fixed
    interval = paired_bootstrap(better, base)
    assert interval.high < 0 and interval.high - interval.low < 3.0


def test_halves_are_stratified_seeded_and_complementary():
    labels = np.concatenate([np.repeat(np.arange(3), [10, 7, 1]), [0, 1]])
    half = stratified_halves(labels, seed=0)
    assert [int(half[labels == c].sum()) for c in range(3)] == [5, 4, 0]  # floor(n_c / 2) of every class
    assert np.array_equal(half, stratified_halves(labels, seed=0))
    assert not np.array_equal(half, stratified_halves(labels, seed=1))


def test_gain_pairs_by_seed_and_its_interval_is_that_of_the_seed_averaged_images(tmp_path):
    for seed in (0, 1):
        with_predictions(tmp_path / f"sm{seed}", wrong_at(0.35, 10 + seed), seed=seed)
        with_predictions(tmp_path / f"cb{seed}", wrong_at(0.30, 20 + seed), seed=seed, beta=0.9999)
    with_predictions(tmp_path / "cb_lonely", wrong_at(0.30, 30), seed=7, beta=0.9999)  # no baseline of seed 7
    runs = find_runs(tmp_path)
    rows, notes, used = build_gain(runs)
    (row,) = rows
    sm = [wrong_at(0.35, 10), wrong_at(0.35, 11)]
    cb = [wrong_at(0.30, 20), wrong_at(0.30, 21)]
    want = [100.0 * (c.mean() - s.mean()) for c, s in zip(cb, sm)]
    assert row.vs_softmax.delta.n == 2 and row.vs_softmax.delta.mean == pytest.approx(np.mean(want))
    assert row.vs_softmax.delta.std == pytest.approx(np.std(want, ddof=1))
    expected = paired_bootstrap(np.mean(cb, axis=0), np.mean(sm, axis=0))
    assert row.vs_softmax.interval == expected and row.vs_own == row.vs_softmax  # softmax: its own baseline
    assert row.error.n == 3  # the CB configuration's error counts every seed, paired or not
    assert row.paper_gain == pytest.approx(25.43 - 29.64)
    text, _ = make_table("gain", runs)
    assert f"[{expected.low:.2f}, {expected.high:.2f}]".replace("-", "−") in text


def test_seeds_without_predictions_leave_the_interval_to_the_seeds_that_saved_them_and_it_says_which(tmp_path):
    write_run(tmp_path / "sm0", top1=36.0, seed=0)  # recorded before predictions were saved
    write_run(tmp_path / "cb0", top1=30.0, seed=0, beta=0.9999)
    with_predictions(tmp_path / "sm1", wrong_at(0.35, 11), seed=1)
    with_predictions(tmp_path / "cb1", wrong_at(0.30, 21), seed=1, beta=0.9999)
    (row,) = build_gain(find_runs(tmp_path))[0]
    seed1 = 100.0 * (wrong_at(0.30, 21).mean() - wrong_at(0.35, 11).mean())
    assert row.vs_softmax.delta.n == 2 and row.vs_softmax.delta.mean == pytest.approx((30.0 - 36.0 + seed1) / 2)
    expected = paired_bootstrap(wrong_at(0.30, 21), wrong_at(0.35, 11))
    assert row.vs_softmax.interval == expected and row.vs_softmax.interval_seeds == ("1",)
    text, _ = make_table("gain", find_runs(tmp_path))
    assert f"seed 1: {seed1:+.2f} [{expected.low:.2f}, {expected.high:.2f}]".replace("-", "−") in text


def test_a_predictions_file_that_is_not_the_run_s_is_refused(tmp_path):
    with_predictions(tmp_path / "a", wrong_at(0.35, 1))
    with_predictions(tmp_path / "b", wrong_at(0.30, 2), beta=0.9999)
    (tmp_path / "b" / LAST).write_bytes((tmp_path / "a" / LAST).read_bytes())
    with pytest.raises(RunsError, match="is not the run's recorded top1_err"):
        build_gain(find_runs(tmp_path))


def test_selection_scores_each_half_with_the_choice_made_on_the_other(tmp_path, monkeypatch):
    monkeypatch.setattr(comparisons, "SPLITS", 1)  # one split (seed 0), whose halves the configurations are built on
    half = stratified_halves(LABELS)
    # configuration x is better on half A, y on half B, z worse everywhere: the test set picks x (lower overall),
    # the folds pick x on A (scored on B, where it is bad) and y on B (scored on A, where y is bad)
    x = np.where(half, wrong_at(0.20, 1), wrong_at(0.38, 2))
    y = np.where(half, wrong_at(0.40, 3), wrong_at(0.25, 4))
    z = wrong_at(0.50, 5)
    with_predictions(tmp_path / "x", x, loss="softmax", beta=0.9999)
    with_predictions(tmp_path / "y", y, loss="sigmoid", beta=0.9999)
    with_predictions(tmp_path / "z", z, loss="focal", beta=0.9999, gamma=1.0)
    with_predictions(tmp_path / "plain", wrong_at(0.5, 6))  # beta = 0: never a CB candidate
    rows, _, used = build_selection(find_runs(tmp_path))
    (row,) = rows
    rate = {k: 100.0 * v.mean() for k, v in {"x": x, "y": y}.items()}
    assert row.candidates == 3 and len(used) == 3
    assert row.test_choice == ("softmax", None, 0.9999) and row.test_error == pytest.approx(min(rate.values()))
    assert row.choice_shares == {("sigmoid", None, 0.9999): 0.5, ("softmax", None, 0.9999): 0.5}  # y on B, x on A
    honest = 100.0 * np.where(half, y, x).mean()  # half A scored by y (chosen on B), half B by x (chosen on A)
    assert row.honest_error.mean == pytest.approx(honest) and row.honest_error.mean > row.test_error
    assert "optimism" in make_table("selection", find_runs(tmp_path))[0]


def test_selection_averages_the_honest_error_over_many_splits(tmp_path):
    # three configurations a few images apart: which one a half prefers changes from split to split
    rates = {("softmax", None, 0.9999): (0.300, 31), ("sigmoid", None, 0.9999): (0.302, 32),
             ("focal", 1.0, 0.9999): (0.305, 33)}
    wrong = {k: wrong_at(rate, seed) for k, (rate, seed) in rates.items()}
    for (loss, gamma, beta), w in wrong.items():
        with_predictions(tmp_path / loss, w, loss=loss, beta=beta, gamma=gamma or 0.0)
    (row,) = build_selection(find_runs(tmp_path))[0]
    # the reference: every split by its own loop, each half scored by the lowest-error choice of the other half
    honest, chosen = [], []
    for split in range(100):
        half = stratified_halves(LABELS, split)
        pick = {side: min(sorted(wrong, key=str), key=lambda k: wrong[k][mask].mean())
                for side, mask in (("a", half), ("b", ~half))}
        honest.append(100.0 * np.concatenate([wrong[pick["b"]][half], wrong[pick["a"]][~half]]).mean())
        chosen += [pick["a"], pick["b"]]
    assert row.honest_error.n == 100 and row.honest_error.mean == pytest.approx(np.mean(honest))
    assert row.honest_error.std == pytest.approx(np.std(honest, ddof=1))
    assert row.choice_shares == {k: chosen.count(k) / 200 for k in set(chosen)} and len(row.choice_shares) > 1
    text = make_table("selection", find_runs(tmp_path))[0]
    assert f"{np.mean(honest):.2f} ± {np.std(honest, ddof=1):.2f}" in text and "chosen on a half (of 200)" in text


def test_both_tables_from_a_real_sweep_through_make_table(tmp_path):
    out = tmp_path / "out"
    sweep = run_cli(["sweep=demo", "seed=0,1", f"output_dir={out}", *demo_overrides(epochs=2), *QUIET], cwd=tmp_path)
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    assert len(list((out / "demo").glob("*/predictions_last.npz"))) == 8
    for table, words in (("gain", "] |"), ("selection", "| 2 | focal, β=0.999, γ=1 |")):
        p = run_script("make_table", "--runs", str(out / "demo"), "--table", table)
        assert p.returncode == 0, p.stderr
        assert words in p.stdout or words.replace("focal, β=0.999, γ=1", "softmax, β=0.999, γ=-") in p.stdout


def test_the_gain_figure_takes_each_if_s_best_cb_run_and_the_paper_s_gains(tmp_path):
    from cbl.reporting import comparison_figures as cf

    for imb, (sm_rate, cb_rates) in {100: (0.35, (0.25, 0.33)), 10: (0.25, (0.20, 0.10))}.items():
        with_predictions(tmp_path / f"sm{imb}", wrong_at(sm_rate, imb), imbalance_factor=imb)
        for i, (loss, rate) in enumerate(zip(("softmax", "sigmoid"), cb_rates)):
            with_predictions(tmp_path / f"cb{imb}{loss}", wrong_at(rate, imb + 1 + i), imbalance_factor=imb, loss=loss,
                             beta=0.9999)
        with_predictions(tmp_path / f"sig0{imb}", wrong_at(sm_rate, imb + 9), imbalance_factor=imb, loss="sigmoid")
    runs = find_runs(tmp_path)
    d = cf.gain_vs_if_data(runs)["cifar10_lt"]
    assert d["if"] == [10, 100] and d["label"] == ["sigmoid, β=0.9999", "softmax, β=0.9999"]
    # the paper's CB best at IF 100 (focal, β 0.9999, γ 1) is the comparison drawn once it is run, lowest or not
    with_predictions(tmp_path / "cb100focal", wrong_at(0.30, 150), imbalance_factor=100, loss="focal", beta=0.9999,
                     gamma=1.0)
    assert cf.gain_vs_if_data(find_runs(tmp_path))["cifar10_lt"]["label"] == ["sigmoid, β=0.9999", "focal γ=1, β=0.9999"]
    want_10 = 100.0 * (wrong_at(0.25, 10).mean() - wrong_at(0.10, 12).mean())
    assert d["gain"][0] == pytest.approx(want_10) and d["low"][0] < d["gain"][0] < d["high"][0]
    assert d["paper_if"] == [200, 100, 50, 20, 10, 1] and d["paper_gain"][1] == pytest.approx(29.64 - 25.43)
    assert cf.plot_gain_vs_if(tmp_path / "g.png", "cifar10_lt", d).read_bytes()[:4] == b"\x89PNG"

    rel = cf.reliability_data(runs)[("cifar10_lt", 100)]
    assert set(rel) == {"softmax", "sigmoid", "CB softmax (β=0.9999)", "CB sigmoid (β=0.9999)"}
    assert sum(rel["softmax"]["count"]) == N and rel["softmax"]["probability"] == "softmax"
    assert rel["softmax"]["only_seeds"] == []
    path = cf.plot_reliability(tmp_path / "r.png", ("cifar10_lt", 100), rel)
    assert path.read_bytes()[:4] == b"\x89PNG"
    # a seed recorded before predictions were saved: the diagram pools the seeds that saved them and says which
    write_run(tmp_path / "sm100seed1", top1=35.0, seed=1, imbalance_factor=100)
    rel = cf.reliability_data(find_runs(tmp_path))[("cifar10_lt", 100)]
    assert rel["softmax"]["only_seeds"] == [0] and sum(rel["softmax"]["count"]) == N
