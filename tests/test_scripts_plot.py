"""scripts/plot.py and cbl.reporting.figures: the plotted arrays against hand-computed values, and the PNGs."""

import json
import statistics

import numpy as np
import pytest

from cbl.reporting import figures
from cbl.reporting.runs import find_runs
from tests.runfactory import load_script, write_history, write_run

plot_script = load_script("plot")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_cb_term_is_one_minus_beta_over_one_minus_beta_to_the_n():
    n, curves = figures.cb_term_data(betas=(0.9, 0.9999), n_max=10_000)
    assert n[0] == 1 and n[-1] == 10_000 and np.all(np.diff(n) > 0)
    for beta in (0.9, 0.9999):
        expected = (1 - beta) / (1 - beta ** n.astype(np.float64))
        np.testing.assert_allclose(curves[beta], expected, rtol=1e-9)
    assert curves[0.9][0] == pytest.approx(1.0)  # one sample has weight 1 for any beta
    assert curves[0.9][-1] == pytest.approx(0.1)  # and the term tends to 1 - beta


def test_samples_per_class_sorted_per_dataset_and_if(tmp_path):
    write_run(tmp_path / "a", imbalance_factor=10, samples_per_class=[5, 50, 500])
    write_run(tmp_path / "b", imbalance_factor=10, samples_per_class=[5, 50, 500], seed=1)  # same set, one line
    write_run(tmp_path / "c", dataset="cifar100_lt", imbalance_factor=100, samples_per_class=[7, 3, 9, 1])
    data = figures.samples_per_class_data(find_runs(tmp_path))
    assert list(data) == [("cifar100_lt", 100), ("cifar10_lt", 10)]
    assert data["cifar10_lt", 10].tolist() == [500, 50, 5]
    assert data["cifar100_lt", 100].tolist() == [9, 7, 3, 1]


def test_error_vs_beta_means_over_seeds_with_baseline(tmp_path):
    runs = [  # (loss, beta, gamma, seed, top1)
        ("softmax", 0.0, 0.0, 0, 30.0), ("softmax", 0.0, 0.0, 1, 31.0),
        ("softmax", 0.9999, 0.0, 0, 27.0), ("softmax", 0.9, 0.0, 0, 29.0), ("softmax", 0.9, 0.0, 1, 28.0),
        ("focal", 0.99, 0.5, 0, 26.0), ("focal", 0.99, 0.0, 0, 25.0),  # gamma 0 is sigmoid
    ]  # fmt: skip
    for i, (loss, beta, gamma, seed, top1) in enumerate(runs):
        write_run(tmp_path / str(i), loss=loss, beta=beta, gamma=gamma, seed=seed, top1=top1)
    write_run(tmp_path / "only_baseline", imbalance_factor=10, loss="softmax", top1=13.0)  # no beta > 0: no panel
    write_run(tmp_path / "failed", status="failed", loss="softmax", beta=0.99, error="x")
    write_run(tmp_path / "extra", loss="softmax", beta=0.99, method="cb_resample", top1=1.0)
    data = figures.error_vs_beta_data(find_runs(tmp_path))
    assert list(data) == [("cifar10_lt", 100)]
    panel = data["cifar10_lt", 100]
    assert list(panel) == ["softmax", "sigmoid", "focal γ=0.5"]
    assert panel["softmax"] == {"beta": [0.9, 0.9999], "err": [statistics.mean([29.0, 28.0]), 27.0],
                                "baseline": statistics.mean([30.0, 31.0])}  # fmt: skip
    assert panel["sigmoid"] == {"beta": [0.99], "err": [25.0], "baseline": None}
    assert panel["focal γ=0.5"] == {"beta": [0.99], "err": [26.0], "baseline": None}


def test_curves_data_from_metrics_jsonl(tmp_path):
    (run,) = find_runs(write_history(tmp_path / "r", 4, truncated_tail=True))
    d = figures.curves_data(run)
    assert d["epoch"].tolist() == [1, 2, 3, 4]
    np.testing.assert_allclose(d["lr"], [0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(d["train_loss"], [3.0, 1.5, 1.0, 0.75])
    np.testing.assert_allclose(d["top1_err"], [80.0, 70.0, 60.0, 50.0])


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 10_000, (path, len(data))


def test_cli_writes_every_figure(tmp_path, capsys):
    runs = tmp_path / "table2"
    for i, (beta, top1) in enumerate([(0.0, 30.0), (0.99, 28.0), (0.9999, 27.0)]):
        write_run(runs / "sweep" / str(i), loss="focal", gamma=1.0, beta=beta, top1=top1)
    write_history(runs / "sweep" / "preempted", 5)
    out = tmp_path / "figures"
    assert plot_script.main(["--out", str(out), "--runs", str(runs), "--curves"]) == 0
    expected = ["fig3_cb_term.png", "fig4_samples_per_class.png", "fig5_cifar10_lt_if100.png",
                *(f"curves/sweep__{name}.png" for name in ("0", "1", "2", "preempted"))]  # fmt: skip
    for name in expected:
        _assert_png(out / name)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == sorted(expected)
    assert capsys.readouterr().out.split() == [str(out / name) for name in expected]


def test_cli_without_runs_draws_figure_3_only_and_errors_are_one_line(tmp_path, capsys):
    assert plot_script.main(["--out", str(tmp_path / "f")]) == 0
    assert [p.name for p in (tmp_path / "f").iterdir()] == ["fig3_cb_term.png"]
    _assert_png(tmp_path / "f" / "fig3_cb_term.png")
    capsys.readouterr()
    for argv, message in [(["--out", "x", "--curves"], "--curves and --compare need --runs"),
                          (["--out", str(tmp_path / "g"), "--runs", str(tmp_path / "none")], "is not a directory")]:  # fmt: skip
        with pytest.raises(SystemExit) as e:
            plot_script.main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and err.count("\n") == 1


def test_error_per_epoch_and_per_class_accuracy_average_the_seeds_of_each_configuration(tmp_path):
    counts = [500, 100, 20]
    # softmax: two seeds; CB focal: one; each run's history is written by hand below
    specs = {"s0": ("softmax", 0.0, 0.0, 0, [30.0, 80.0, 55.0]), "s1": ("softmax", 0.0, 0.0, 1, [32.0, 70.0, 45.0]),
             "cb": ("focal", 0.9999, 1.0, 0, [40.0, 60.0, 70.0])}  # (loss, beta, gamma, seed, per-class errors)
    histories = {"s0": {1: 60.0, 2: 50.0, 3: 40.0}, "s1": {2: 52.0, 3: 44.0}, "cb": {1: 70.0, 3: 35.0}}
    for name, (loss, beta, gamma, seed, errs) in specs.items():
        path = write_run(tmp_path / name, loss=loss, beta=beta, gamma=gamma, seed=seed, samples_per_class=counts,
                         history=False)
        metrics = json.loads((path / "metrics.json").read_text())
        metrics["per_class_acc"] = [100.0 - e for e in errs]
        (path / "metrics.json").write_text(json.dumps(metrics))
        (path / "metrics.jsonl").write_text("".join(
            json.dumps({"epoch": e, "lr": 0.1, "train_loss": 1.0, "top1_err": v, "top5_err": 1.0, "seconds": 1.0}) + "\n"
            for e, v in histories[name].items()))
    runs = find_runs(tmp_path)
    curves = figures.error_per_epoch_data(runs)[("cifar10_lt", 100)]
    assert list(curves) == ["softmax", "CB focal γ=1 (β=0.9999)"]
    assert curves["softmax"]["epoch"].tolist() == [2, 3]  # the epochs both seeds evaluated
    np.testing.assert_allclose(curves["softmax"]["top1_err"], [51.0, 42.0])
    np.testing.assert_allclose(curves["CB focal γ=1 (β=0.9999)"]["top1_err"], [70.0, 35.0])
    acc = figures.per_class_accuracy_data(runs)[("cifar10_lt", 100)]
    assert acc["softmax"]["count"].tolist() == counts
    np.testing.assert_allclose(acc["softmax"]["acc"], [69.0, 25.0, 50.0])
    np.testing.assert_allclose(acc["CB focal γ=1 (β=0.9999)"]["acc"], [60.0, 40.0, 30.0])
    _assert_png(figures.plot_error_per_epoch(tmp_path / "e.png", ("cifar10_lt", 100), curves))
    _assert_png(figures.plot_per_class_accuracy(tmp_path / "a.png", ("cifar10_lt", 100), acc))


def test_cli_compare_figures_of_one_recipe_and_never_a_mix(tmp_path, capsys):
    runs = tmp_path / "runs"
    lossy = {"data_source": "npz:l.npz@sha256:2222222222222222"}
    write_run(runs / "softmax", loss="softmax", top1=30.0, **lossy)
    write_run(runs / "cb", loss="focal", beta=0.9999, gamma=1.0, top1=25.0, **lossy)
    out = tmp_path / "figs"
    assert plot_script.main(["--out", str(out), "--runs", str(runs), "--recipe", "all", "--compare"]) == 0
    names = sorted(p.name for p in out.glob("*.png"))
    # no saved predictions: no reliability diagram; the gain against IF without its interval
    assert names == ["error_per_epoch_cifar10_lt_if100.png", "fig3_cb_term.png", "fig4_samples_per_class.png",
                     "fig5_cifar10_lt_if100.png", "gain_vs_if_cifar10_lt.png", "per_class_accuracy_cifar10_lt_if100.png"]  # fmt: skip
    # the default selection is the paper's recipe, as the README tables: these runs are not in it
    capsys.readouterr()
    assert plot_script.main(["--out", str(tmp_path / "paper"), "--runs", str(runs), "--compare"]) == 0
    assert sorted(p.name for p in (tmp_path / "paper").glob("*.png")) == ["fig3_cb_term.png"]
    write_run(runs / "official", loss="softmax", top1=29.0)  # another recipe (the official data) in the same folder
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        plot_script.main(["--out", str(tmp_path / "mixed"), "--runs", str(runs), "--recipe", "all", "--compare"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "have 2 recipes (paper; data=npz:l.npz@sha256:2222222222222222)" in err


def test_figures_of_another_recipe_say_so_in_their_title(tmp_path, monkeypatch):
    titles = {}
    monkeypatch.setattr(figures, "_save", _title_recorder(titles, figures._save))
    lossy = {"data_source": "npz:l.npz@sha256:2222222222222222"}
    write_run(tmp_path / "lossy" / "softmax", loss="softmax", top1=30.0, **lossy)
    write_run(tmp_path / "lossy" / "cb", loss="focal", beta=0.9999, gamma=1.0, top1=25.0, **lossy)
    assert plot_script.main(["--out", str(tmp_path / "f"), "--runs", str(tmp_path / "lossy"), "--recipe", "all",
                             "--compare"]) == 0  # fmt: skip
    for name in ("error_per_epoch_cifar10_lt_if100.png", "per_class_accuracy_cifar10_lt_if100.png",
                 "fig5_cifar10_lt_if100.png"):  # fmt: skip
        assert titles[name].endswith("\nnot the paper's setting: data=npz:l.npz@sha256:2222222222222222"), name
    titles.clear()
    write_run(tmp_path / "paper" / "softmax", loss="softmax", top1=30.0)
    write_run(tmp_path / "paper" / "cb", loss="focal", beta=0.9999, gamma=1.0, top1=25.0)
    assert plot_script.main(["--out", str(tmp_path / "g"), "--runs", str(tmp_path / "paper"), "--compare"]) == 0
    assert titles["fig5_cifar10_lt_if100.png"] == "cifar10_lt IF 100: error vs β (Fig. 5)"
    assert "\n" not in titles["error_per_epoch_cifar10_lt_if100.png"]


def _title_recorder(titles: dict, save):
    def record(fig, path):
        titles[path.name] = fig.axes[0].get_title()
        return save(fig, path)

    return record


def test_epoch_axes_tick_whole_epochs_only(tmp_path, monkeypatch):
    """A 3-epoch run's error per epoch had ticks at 1.25, 1.5, ...: epochs are whole numbers."""
    ticks, save = {}, figures._save

    def record(fig, path):
        fig.canvas.draw()
        ticks[path.name] = [list(ax.get_xticks()) for ax in fig.axes]
        return save(fig, path)

    monkeypatch.setattr(figures, "_save", record)
    series = {"softmax": {"epoch": np.array([1, 2, 3]), "top1_err": np.array([50.0, 40.0, 30.0])}}
    figures.plot_error_per_epoch(tmp_path / "e.png", ("digits_lt", 10), series)
    write_run(tmp_path / "run", epochs=3)
    figures.plot_curves(tmp_path / "c.png", find_runs(tmp_path / "run")[0], "run")
    assert set(ticks) == {"e.png", "c.png"}
    assert all(float(t).is_integer() for axes in ticks.values() for axis in axes for t in axis), ticks
