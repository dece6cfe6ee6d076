"""scripts/make_table.py and cbl.reporting.tables on synthetic sweeps.  Expected values are derived here by hand
(statistics.mean / stdev, a hand-written choice of the best configuration), never from cbl's output."""

import datetime
import statistics

import pytest

from cbl.reporting import paper
from cbl.reporting.runs import find_runs
from cbl.reporting.methods_table import build_methods
from cbl.reporting.precision_table import build_precision
from cbl.reporting.table2 import build_table2
from cbl.reporting.table3 import build_table3
from cbl.reporting.tables import make_table
from tests.runfactory import load_script, run_script, write_history, write_run

make_table_script = load_script("make_table")

# CIFAR-10 IF 100: (loss, beta, gamma, seed, top1)
C10_100 = [
    ("softmax", 0.0, 0.0, 0, 29.0), ("softmax", 0.0, 0.0, 1, 30.0), ("softmax", 0.0, 0.0, 2, 31.5),
    ("sigmoid", 0.0, 0.0, 0, 28.2), ("focal", 0.0, 0.0, 1, 28.6),  # focal gamma 0 is sigmoid
    ("focal", 0.0, 1.0, 0, 29.9),
    ("softmax", 0.9999, 0.0, 0, 26.0), ("softmax", 0.9999, 0.0, 1, 27.0),
    ("focal", 0.9999, 1.0, 0, 25.0), ("focal", 0.9999, 1.0, 1, 26.2),
    ("sigmoid", 0.99, 0.0, 0, 25.5),
]  # fmt: skip


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "table2"
    i = 0
    for loss, beta, gamma, seed, top1 in C10_100:
        write_run(root / str(i), top1=top1, best=top1 - 1.0, loss=loss, beta=beta, gamma=gamma, seed=seed)
        i += 1
    # IF 1: the best run overall has beta = 0, and it must win "CB best"
    write_run(root / "if1a", imbalance_factor=1, loss="softmax", top1=6.0)
    write_run(root / "if1b", imbalance_factor=1, loss="sigmoid", beta=0.9, top1=6.5)
    write_run(root / "c100", dataset="cifar100_lt", imbalance_factor=50, loss="softmax", top1=56.0)
    # never in Table 2: a failed run, an incomplete one, and an extra method with a softmax loss and beta 0
    write_run(root / "failed", status="failed", error="non-finite loss at epoch 3 step 17", loss="focal", beta=0.9999, gamma=2.0)
    write_history(root / "preempted", 143)
    write_run(root / "extra", loss="softmax", method="cb_resample", top1=1.0)
    # not the paper's recipe: a table of their own, never a paper cell
    write_run(root / "bf16", loss="softmax", precision="bf16", seed=5, top1=1.0)
    write_run(root / "lossy", loss="softmax", data_source="npz:lossy.npz@sha256:0123456789abcdef", top1=2.0)
    write_run(root / "short", loss="softmax", recipe={"epochs": 20, "milestones": [15, 18]}, top1=3.0)
    return root


def test_table2_cells_and_cb_best(sweep):
    rows, notes, used = build_table2(find_runs(sweep))
    assert [(r.recipe, r.dataset, r.imbalance_factor) for r in rows] == [
        ("", "cifar10", 100), ("", "cifar10", 1), ("", "cifar100", 50),
        ("data=npz:lossy.npz@sha256:0123456789abcdef", "cifar10", 100),
        ("epochs=20, milestones=[15,18]", "cifar10", 100), ("precision=bf16", "cifar10", 100),
    ]
    # each of the other recipes holds its one run alone
    assert [r.baselines[("softmax", None)].mean for r in rows[3:]] == [2.0, 3.0, 1.0]
    c10 = rows[0]
    softmax = c10.baselines[("softmax", None)]
    assert softmax.n == 3
    assert softmax.mean == pytest.approx(statistics.mean([29.0, 30.0, 31.5]))
    assert softmax.std == pytest.approx(statistics.stdev([29.0, 30.0, 31.5]))
    sigmoid = c10.baselines[("sigmoid", None)]
    assert (sigmoid.n, sigmoid.mean) == (2, pytest.approx(statistics.mean([28.2, 28.6])))
    assert c10.baselines[("focal", 1.0)].mean == 29.9
    assert c10.baselines[("focal", 0.5)] is None and c10.baselines[("focal", 2.0)] is None
    # CB candidates by hand: softmax 0.9999 -> 26.5, focal 0.9999 g1 -> 25.6, sigmoid 0.99 -> 25.5
    candidates = {
        ("softmax", 0.9999, None): statistics.mean([26.0, 27.0]),
        ("focal", 0.9999, 1.0): statistics.mean([25.0, 26.2]),
        ("sigmoid", 0.99, None): 25.5,
    }
    best = min(candidates, key=candidates.get)
    b = c10.cb_best
    assert (b.loss, b.beta, b.gamma) == best and b.stat.mean == pytest.approx(candidates[best])
    # IF 1: the CB term is 1, so the best over all runs, beta = 0 included
    assert (rows[1].cb_best.loss, rows[1].cb_best.beta, rows[1].cb_best.stat.mean) == ("softmax", 0.0, 6.0)
    assert rows[2].cb_best is None and rows[2].baselines[("softmax", None)].mean == 56.0
    assert rows[0].paper == paper.table2_row("cifar10", 100)
    assert len(used) == len(C10_100) + 3 + 3
    assert any("1 finished run(s) of other datasets or methods" in line for line in notes.lines)


def test_table2_metric_best_top1(sweep):
    rows, _, _ = build_table2(find_runs(sweep), metric="best_top1_err")
    assert rows[0].baselines[("softmax", None)].mean == pytest.approx(statistics.mean([28.0, 29.0, 30.5]))


def test_table2_markdown_shows_ours_paper_delta_and_excluded_runs(sweep):
    md, _ = make_table("2", find_runs(sweep))
    xs = [29.0, 30.0, 31.5]
    mean, std = statistics.mean(xs), statistics.stdev(xs)
    delta = f"{mean - 29.64:+.2f}".replace("-", "−")
    assert f"| CIFAR-10 | 100 | ours | {mean:.2f} ± {std:.2f} (n=3), Δ {delta} |" in md
    assert "| 29.64 | 29.55 | 29.77 | 29.62 | 30.41 | 25.43 | focal, β=0.9999, γ=1 |" in md  # paper row
    assert "sigmoid, β=0.99, γ=-" in md  # our CB best configuration
    assert "| CIFAR-10 | 1 | ours | 6.00, Δ −0.61 |" in md  # one seed: a plain value; 6.00 - 6.61
    assert "| CIFAR-100 | 50 | ours | 56.00, Δ −0.15 | — |" in md
    # the runs left out are named, never with their error text: the table goes into the README
    assert "failed`: failed (last epoch" in md and "non-finite loss" not in md
    assert "preempted`: incomplete (last epoch 143)" in md
    assert "1 failed, 1 incomplete run(s); `make sweep-status`" in md


def test_cli_writes_out_file_and_readme_section_only(sweep, tmp_path, capsys):
    readme = tmp_path / "README.md"
    before, after = "# cbl\r\n\r\nintro text\n<!-- cbl:table2:start -->\n", "<!-- cbl:table2:end -->\n\n## Citation\n"
    readme.write_bytes((before + "old table\n" + after).encode())
    out = tmp_path / "tables" / "table2.md"
    argv = ["--runs", str(sweep), "--table", "2", "--out", str(out), "--readme", str(readme)]
    assert make_table_script.main(argv) == 0
    printed = capsys.readouterr().out
    text = readme.read_bytes().decode()
    assert text.startswith(before) and text.endswith(after) and "old table" not in text
    assert "| CIFAR-10 | 100 | ours |" in text and "| CIFAR-10 | 100 | ours |" in printed
    today = datetime.date.today().isoformat()
    assert f"--table 2 --out {out} --readme {readme}` from 20 run directories (17 finished runs in the table) on {today}" in text
    assert out.read_text().strip() == printed.strip()


def test_cli_readme_without_markers_fails_before_writing(sweep, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    out = tmp_path / "t.md"
    with pytest.raises(SystemExit) as e:
        make_table_script.main(["--runs", str(sweep), "--table", "2", "--readme", str(readme), "--out", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "<!-- cbl:table2:start -->" in err
    assert readme.read_text() == "# no markers\n" and not out.exists()


def test_cli_errors_are_one_line_with_exit_status_2(sweep, tmp_path):
    cases = {
        ("--runs", str(sweep), "--table", "4"): "invalid choice: '4'",
        ("--runs", str(tmp_path / "nothing"), "--table", "2"): "is not a directory",
        ("--runs", str(sweep), "--table", "3"): "no finished iNat / ILSVRC paper-method runs",
    }
    (tmp_path / "empty").mkdir()
    cases[("--runs", str(tmp_path / "empty"), "--table", "2")] = "no run directories with metrics.json under"
    broken = tmp_path / "broken" / "0"
    write_run(broken)
    (broken / "metrics.json").write_text("{not json")
    cases[("--runs", str(tmp_path / "broken"), "--table", "2")] = f"cannot read {broken / 'metrics.json'}"
    for args, message in cases.items():
        p = run_script("make_table", *args)
        assert p.returncode == 2, (args, p.stderr)
        assert message in p.stderr and p.stderr.count("\n") == 1, (args, p.stderr)
        assert p.stdout == ""


def test_methods_table_groups_any_runs_and_prints(tmp_path, capsys):
    root = tmp_path / "demo"
    write_run(root / "a0", dataset="digits_lt", model="mlp", loss="softmax", seed=0, top1=20.0, shots={"many": 95.0, "medium": 80.0, "few": None})
    write_run(root / "a1", dataset="digits_lt", model="mlp", loss="softmax", seed=1, top1=22.0, shots={"many": 97.0, "medium": None, "few": None})
    write_run(root / "b0", dataset="digits_lt", model="mlp", loss="focal", beta=0.999, gamma=1.0, method="cb_focal", seed=0, top1=15.0)
    write_run(root / "c0", dataset="digits_lt", model="mlp", loss="ldam", method="drw_ldam", seed=0, top1=14.0)
    rows, _, _ = build_methods(find_runs(root))
    got = {(r.method, r.loss, r.beta, r.gamma): r for r in rows}
    assert set(got) == {("softmax", "softmax", 0.0, None), ("cb_focal", "focal", 0.999, 1.0), ("drw_ldam", "ldam", 0.0, None)}
    soft = got["softmax", "softmax", 0.0, None]
    assert soft.top1.mean == statistics.mean([20.0, 22.0]) and soft.top1.std == pytest.approx(statistics.stdev([20.0, 22.0]))
    assert soft.shots["many"].mean == 96.0 and soft.shots["medium"].n == 1 and soft.shots["few"] is None
    assert soft.seeds == ["0", "1"]
    assert make_table_script.main(["--runs", str(root), "--table", "methods"]) == 0
    out = capsys.readouterr().out
    assert "| digits_lt | 100 | mlp | softmax | softmax | - | - | - | 21.00 ± 1.41 | 2.00 ± 0.00 | 96.00 ± 1.41 | 80.00 (n=1) | — | 2 (0, 1) |" in out
    assert "| cb_focal | focal | 0.999 | 1 | - | 15.00 |" in out and "| drw_ldam | ldam |" in out


def test_table3_matches_paper_rows(tmp_path):
    root = tmp_path / "table3"
    for seed, (t1, t5) in enumerate([(31.0, 14.0), (32.0, 14.5)]):
        write_run(root / f"cb{seed}", dataset="inat2018", imbalance_factor=None, model="resnet152", input_size=320,
                  loss="focal", beta=0.999, gamma=0.5, seed=seed, top1=t1, top5=t5)  # fmt: skip
    write_run(root / "sm", dataset="ilsvrc2012", imbalance_factor=None, model="resnet50", input_size=224, loss="softmax", top1=24.0, top5=7.0)
    rows, _, _ = build_table3(find_runs(root))
    assert [(r.model, r.loss, r.input_size) for r in rows] == [("resnet50", "softmax", 224), ("resnet152", "focal", 320)]
    cb = rows[1]
    assert cb.paper.results["inat2018"] == (30.95, 13.54)
    assert cb.results["inat2018"][0].mean == statistics.mean([31.0, 32.0])
    assert cb.results["inat2018"][1].mean == statistics.mean([14.0, 14.5])
    assert cb.results["inat2017"] == (None, None)
    md, _ = make_table("3", find_runs(root))
    assert "| ResNet-152 | CB Focal | 0.999 | 0.5 | 320 | ours | — | — | 31.50 ± 0.71 (n=2), Δ +0.55 | 14.25 ± 0.35 (n=2), Δ +0.71 |" in md
    assert "| ResNet-50 | Softmax | - | - | 224 | ours | — | — | — | — | 24.00, Δ +0.08 | 7.00, Δ −0.03 |" in md


def test_duplicate_runs_count_once_the_newest_and_mixed_recipes_never_share_a_cell(tmp_path):
    root = tmp_path / "runs"
    write_run(root / "a", seed=0, top1=29.0, finished_at=100.0)
    write_run(root / "a_rerun", seed=0, top1=30.0, finished_at=200.0)  # the same configuration and seed, later
    write_run(root / "b", seed=1, top1=28.0, finished_at=50.0)
    write_run(root / "short", seed=1, top1=27.0, epochs=20)  # another recipe: its own table, not a duplicate
    write_run(root / "lossy", seed=1, top1=26.0, data_source="npz:x.npz@sha256:00000000aaaaaaaa")  # another source
    nan_run = write_run(root / "nan", seed=2)
    (nan_run / "metrics.json").write_text((nan_run / "metrics.json").read_text().replace('"top1_err": 30.0', '"top1_err": NaN'))
    md, used = make_table("2", find_runs(root))
    assert sorted(r.path.name for r in used) == ["a_rerun", "b", "lossy", "short"]
    # one vote per (configuration, seed): the mean and n are those of the newest run of seed 0 and seed 1
    xs = [30.0, 28.0]
    assert f"| CIFAR-10 | 100 | ours | {statistics.mean(xs):.2f} ± {statistics.stdev(xs):.2f} (n=2)," in md
    assert f"the newest, `{root / 'a_rerun'}`, counts once, not `{root / 'a'}`" in md
    assert "differ from the paper's recipe in: epochs=20." in md and "| CIFAR-10 | 100 | ours | 27.00, Δ" in md
    assert "differ from the paper's recipe in: data=npz:x.npz@sha256:00000000aaaaaaaa." in md
    assert ("4 finished runs: model resnet32, epochs 20, 200, data npz:x.npz@sha256:00000000aaaaaaaa, official, "
            "commit abc1234, training time per run 12.5 s (median; 12.5 to 12.5 s) (machine not recorded for 4 runs: "
            "times differ by 2x and more between machines of one kind).") in md  # runfactory: 12.5 s each
    assert f"`{nan_run}` finished without a finite top1_err; left out" in md


def test_duplicates_never_change_a_mean_or_n_in_any_table(tmp_path):
    root = tmp_path / "runs"
    for copy in ("x", "y", "z"):  # the same run three times (e.g. launched through two sweeps and by hand)
        write_run(root / copy, loss="focal", beta=0.9999, gamma=1.0, top1=25.0 if copy != "z" else 26.0,
                  finished_at={"x": 1.0, "y": 3.0, "z": 2.0}[copy])
    for build in (build_table2, build_methods):
        rows, notes, used = build(find_runs(root))
        assert [r.path.name for r in used] == ["y"]
    (row,) = build_methods(find_runs(root))[0]
    assert row.top1.n == 1 and row.top1.mean == 25.0 and row.seeds == ["0"]


def test_all_rows_shows_every_paper_row_and_fills_the_ones_with_runs(tmp_path):
    write_run(tmp_path / "runs" / "a", imbalance_factor=100, loss="softmax", top1=29.0)
    rows, _, used = build_table2(find_runs(tmp_path / "runs"), all_rows=True)
    assert [(r.dataset, r.imbalance_factor) for r in rows] == [(p.dataset, p.imbalance_factor) for p in paper.table2()]
    filled = [r for r in rows if any(s is not None for s in r.baselines.values())]
    assert [(r.dataset, r.imbalance_factor) for r in filled] == [("cifar10", 100)]
    assert filled[0].baselines[("softmax", None)].mean == 29.0 and len(used) == 1
    markdown, _ = make_table("2", [], all_rows=True)  # no runs at all: the paper's numbers, ours "—"
    assert markdown.count("| ours |") == 12 and "34.32" in markdown and "28.39" in markdown
    table3, _ = make_table("3", [], all_rows=True)
    assert table3.count("| ours |") == 9 and "30.95" in table3 and "4.97" in table3
    with pytest.raises(Exception, match="no finished"):
        make_table("2", [])


def test_all_rows_from_the_command_line_without_a_runs_folder(tmp_path):
    out = run_script("make_table", "--runs", str(tmp_path / "absent"), "--table", "2", "--all-rows")
    assert out.returncode == 0 and out.stdout.count("| ours |") == 12


def test_precision_table_pairs_runs_by_seed(tmp_path, capsys):
    root = tmp_path / "precision"
    # softmax: seeds 0, 1 in both precisions, seed 2 in fp32 only (unpaired); an older run without the field is fp32
    fp32 = {0: 30.0, 1: 31.0, 2: 10.0}
    bf16 = {0: 30.5, 1: 30.0}
    for seed, top1 in fp32.items():
        write_run(root / f"f{seed}", top1=top1, seed=seed, precision=None if seed == 1 else "fp32",
                  shots={"many": 90.0, "medium": 70.0, "few": 40.0 + seed})
    for seed, top1 in bf16.items():
        write_run(root / f"b{seed}", top1=top1, seed=seed, precision="bf16",
                  shots={"many": 90.0, "medium": 70.0, "few": 43.0})
    # CB focal paired once; another epoch count is another configuration and has no pair
    write_run(root / "cf", loss="focal", beta=0.9999, gamma=1.0, method="cb_focal", seed=0, top1=25.0, precision="fp32")
    write_run(root / "cb", loss="focal", beta=0.9999, gamma=1.0, method="cb_focal", seed=0, top1=24.0, precision="bf16")
    write_run(root / "long", loss="focal", beta=0.9999, gamma=1.0, method="cb_focal", seed=0, epochs=9, top1=20.0,
              precision="bf16")  # fmt: skip
    # seed 0 on another long-tailed subset: other images, so it pairs with no float32 run of seed 0
    write_run(root / "b0-subset1", top1=33.0, seed=0, subset_seed=1, precision="bf16")
    rows, notes, used = build_precision(find_runs(root))
    assert [(r.method, r.paired_seeds) for r in rows] == [("cb_focal", ["0"]), ("softmax", ["0", "1"])]
    soft = rows[1]
    deltas = [bf16[s] - fp32[s] for s in (0, 1)]
    assert soft.delta_top1.mean == pytest.approx(statistics.mean(deltas))
    assert soft.delta_top1.std == pytest.approx(statistics.stdev(deltas))
    assert soft.top1["fp32"].mean == pytest.approx(statistics.mean([30.0, 31.0]))  # the unpaired seed 2 left out
    assert soft.delta_shots["few"].mean == pytest.approx(statistics.mean([43.0 - 40.0, 43.0 - 41.0]))
    assert soft.delta_shots["many"].mean == 0.0
    assert rows[0].delta_top1.mean == pytest.approx(-1.0) and rows[0].delta_top1.n == 1
    assert len(used) == 6 and any("3 finished run(s) have no run" in line for line in notes.lines)
    assert make_table_script.main(["--runs", str(root), "--table", "precision"]) == 0
    out = capsys.readouterr().out
    assert "| cifar10_lt | 100 | resnet32 | cb_focal | 0.9999 | 1 | - | 200 | 25.00 | 24.00 | −1.00 | " in out
    assert "| 30.50 ± 0.71 (n=2) | 30.25 ± 0.35 (n=2) | −0.25 ± 1.06 | +0.00 ± 0.00 / +0.00 ± 0.00 / +2.50 ± 0.71 | 2 (0, 1) |" in out
    # bf16 runs are a setting of their own in the methods table, never averaged with float32
    methods, _, _ = build_methods(find_runs(root))
    assert {m.settings for m in methods if m.method == "softmax"} == {"", "precision=bf16"}
    (bf16_softmax,) = [m for m in methods if m.method == "softmax" and m.settings]
    assert bf16_softmax.seeds == ["0", "0 on subset 1", "1"]  # a subset other than the default is named


def test_precision_table_without_pairs_is_a_one_line_error(tmp_path):
    write_run(tmp_path / "r" / "a", precision="fp32")
    with pytest.raises(Exception, match="no finished fp32 \\+ bf16 pairs of runs"):
        make_table("precision", find_runs(tmp_path / "r"))


def test_recipe_and_where_select_the_runs_of_a_table(tmp_path, capsys):
    root = tmp_path / "runs"
    write_run(root / "paper10", loss="softmax", top1=29.0)
    write_run(root / "paper100", dataset="cifar100_lt", loss="softmax", top1=61.0)
    write_run(root / "bf16", loss="softmax", precision="bf16", top1=28.0)
    write_run(tmp_path / "elsewhere" / "lossy", loss="softmax", data_source="npz:l.npz@sha256:1111111111111111",
              top1=27.0)  # fmt: skip
    runs = lambda *args: make_table_script.main(["--runs", str(root), str(tmp_path / "elsewhere"), "--table", "2", *args])  # noqa: E731
    assert runs("--recipe", "paper") == 0
    out = capsys.readouterr().out
    assert "layout, not the paper's setting" not in out and "29.00" in out and "61.00" in out and "28.00" not in out
    assert runs("--recipe", "precision=bf16") == 0
    out = capsys.readouterr().out
    assert "differ from the paper's recipe in: precision=bf16." in out and "28.00" in out and "29.00" not in out
    assert runs("--where", "dataset=cifar10_lt") == 0  # every recipe, each in a table of its own
    out = capsys.readouterr().out
    assert out.count("**Table 2.**") == 3 and "61.00" not in out and "27.00" in out
    assert runs("--where", "imbalance_factor=100.0", "--where", "loss=softmax", "--recipe", "paper") == 0
    assert "(2 finished runs in the table)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        runs("--where", "dataset")
    assert e.value.code == 2 and "--where 'dataset' is not allowed: write key=value" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # a misspelt field selected nothing, silently
        runs("--where", "epoch=3")
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--where epoch=3: no run records a field 'epoch'; the fields are " in err
    assert ", epochs, " in err and err.count("\n") == 1


def test_sweep_selects_exactly_the_runs_a_multirun_trains(tmp_path, capsys):
    from omegaconf import OmegaConf

    from cbl.training.config import run_name
    from tests.train_utils import compose_cfg

    def folder(*overrides):  # where cbl.train puts that job
        return tmp_path / "runs" / run_name(OmegaConf.to_container(compose_cfg(*overrides), resolve=True))

    write_run(folder("sweep=methods", "method=softmax"), loss="softmax", top1=30.0)
    write_run(folder("sweep=methods", "method=ldam"), loss="ldam", method="ldam", top1=27.0)
    write_run(folder("sweep=methods", "method=ldam", "seed=1"), loss="ldam", method="ldam", seed=1, top1=26.0)
    write_run(folder("loss=softmax", "loss.beta=0.9"), loss="softmax", beta=0.9, top1=28.0)  # Table 2's, not the sweep's
    argv = ["--runs", str(tmp_path / "runs"), "--table", "methods"]
    assert make_table_script.main([*argv, "--sweep", "sweep=methods"]) == 0
    out = capsys.readouterr().out
    assert "30.00" in out and "27.00" in out and "26.00" not in out and "28.00" not in out
    assert make_table_script.main([*argv, "--sweep", "sweep=methods seed=0,1"]) == 0
    out = capsys.readouterr().out
    assert "26.50 ± 0.71" in out and "28.00" not in out  # ldam over seeds 0 and 1
    with pytest.raises(SystemExit) as e:
        make_table_script.main([*argv, "--sweep", "sweep=nonesuch"])
    assert e.value.code == 2 and "--sweep 'sweep=nonesuch'" in capsys.readouterr().err


def test_footers_speak_of_the_rows_shown(tmp_path):
    write_run(tmp_path / "sm", loss="softmax", top1=35.0)
    write_run(tmp_path / "cb", loss="softmax", beta=0.9999, top1=30.0)
    runs = find_runs(tmp_path)
    table2, _ = make_table("2", runs)
    assert "CB best: the lowest mean error over the class-balanced runs (β > 0, any loss and γ); like" in table2
    write_run(tmp_path / "if1", loss="softmax", top1=7.0, imbalance_factor=1)
    assert "at IF 1 (class-balanced term 1) over all runs" in make_table("2", find_runs(tmp_path))[0]
    # CIFAR-10-LT IF 100 has no class under 20 images: the empty few-shot column says why
    methods, _ = make_table("methods", runs)
    rows = [line for line in methods.splitlines() if line.startswith("| cifar10_lt")]
    assert {row.split("|")[4].strip() for row in rows} == {"softmax", "cb_softmax"}
    assert "no class of these runs has" not in methods  # write_run's shot accuracies fill every group
    write_run(tmp_path / "few" / "a", top1=30.0, shots={"many": 90.0, "medium": 60.0, "few": None})
    no_few, _ = make_table("methods", find_runs(tmp_path / "few"))
    assert "few acc is — throughout: no class of these runs has fewer than 20 training images." in no_few


def test_training_times_say_where_they_were_measured(tmp_path):
    from cbl.reporting.table_parts import describe_runs

    for name, machine in (("a", {"device": "cpu", "name": "Xeon (2 CPUs)", "threads": 1}),
                          ("b", {"device": "cpu", "name": "Xeon (2 CPUs)", "threads": 1})):
        write_run(tmp_path / "one" / name)
        patch_metrics(tmp_path / "one" / name, machine=machine)
    assert describe_runs(find_runs(tmp_path / "one")).endswith(", measured on Xeon (2 CPUs), 1 torch thread.")
    patch_metrics(tmp_path / "one" / "b", machine={"device": "cuda", "name": "H200", "threads": 8})
    write_run(tmp_path / "one" / "c")
    text = describe_runs(find_runs(tmp_path / "one"))
    assert "(measured on 2 machines; machine not recorded for 1 run: times differ by 2x" in text


def patch_metrics(run_dir, **fields):
    import json

    path = run_dir / "metrics.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


def test_the_status_table_lists_each_setting_with_its_configurations_and_seeds(tmp_path):
    lossy = {"data_source": "npz:x.npz@sha256:1111111111111111", "precision": "bf16"}
    for seed in (0, 1):
        write_run(tmp_path / f"sm{seed}", seed=seed, **lossy)
        write_run(tmp_path / f"cb{seed}", seed=seed, loss="focal", beta=0.9999, gamma=1.0, **lossy)
    write_run(tmp_path / "short", epochs=20, recipe={"milestones": [15, 18]})
    text, used = make_table("status", find_runs(tmp_path))
    rows = [line for line in text.splitlines() if line.startswith("| ") and "CIFAR-10-LT" in line]
    # the longest schedule first; each configuration with its number of seeds
    assert rows[0].startswith("| precision=bf16 | CIFAR-10-LT | 100 |") and rows[0].endswith(
        "| 200 | npz:x.npz@sha256:1111111111111111 |")
    assert "CB focal γ 1 β 0.9999 (2)" in rows[0] and "softmax (2)" in rows[0]
    assert rows[1].startswith("| epochs=20, milestones=[15,18] | CIFAR-10-LT | 100 | softmax (1) | 20 | official |")
    assert "No run of the paper's recipe on the official data" in text and len(used) == 5
    write_run(tmp_path / "float32", data_source="npz:x.npz@sha256:1111111111111111")  # the recipe, other images
    text = make_table("status", find_runs(tmp_path))[0]
    assert "| the paper's recipe, other data (see data) | CIFAR-10-LT | 100 | softmax (1) |" in text
    assert "No run of the paper's recipe on the official data" in text
    write_run(tmp_path / "paper", top1=29.9)
    text = make_table("status", find_runs(tmp_path))[0]
    assert "| the paper's recipe | CIFAR-10-LT | 100 | softmax (1) |" in text and "No run of the paper's recipe" not in text


def test_the_attribution_splits_the_softmax_gap_into_what_each_run_isolates(tmp_path):
    lossy = {"data_source": "npz:x.npz@sha256:1111111111111111"}
    errors = {0: 35.0, 1: 36.0, 2: 34.0}
    for seed, err in errors.items():
        write_run(tmp_path / f"bf16-{seed}", seed=seed, top1=err, precision="bf16", **lossy)
    write_run(tmp_path / "fp32-0", seed=0, top1=34.4, precision="fp32", **lossy)
    write_run(tmp_path / "if1", imbalance_factor=1, top1=9.11, precision="bf16", **lossy)
    # balanced data on the long-tailed lr factors is not the paper's IF 1 recipe: never the copy
    write_run(tmp_path / "if1-lt-factors", imbalance_factor=1, top1=7.0, precision="bf16",
              recipe={"factors": [0.01, 1e-4]}, **lossy)
    write_run(tmp_path / "cb", beta=0.9999, top1=30.0, precision="bf16", **lossy)  # not softmax at beta 0: not used
    write_run(tmp_path / "if200", imbalance_factor=200, top1=41.0, precision="bf16", **lossy)
    write_run(tmp_path / "if30", imbalance_factor=30, top1=38.0, precision="bf16", **lossy)  # no paper row: left out
    text, used = make_table("attribution", find_runs(tmp_path))
    assert [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| CIFAR-10 IF")] == \
        ["CIFAR-10 IF 200", "CIFAR-10 IF 100"]  # largest imbalance first
    (row200,) = [line for line in text.splitlines() if line.startswith("| CIFAR-10 IF 200")]
    cells200 = [c.strip() for c in row200.strip("|").split("|")]
    # the same balanced run in every row; no float32 run at IF 200, so its precision share stays unknown, while
    # the rest needs none: offset and copy are both bf16
    assert cells200[2:] == ["41.00 in bf16 (34.32)", f"+{41.0 - 34.32:.2f}", f"+{9.11 - 6.61:.2f} (9.11 vs 6.61)", "—",
                            "—", f"+{(41.0 - 34.32) - (9.11 - 6.61):.2f}"]
    (row,) = [line for line in text.splitlines() if line.startswith("| CIFAR-10 IF 100")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    offset = statistics.mean(errors.values()) - 29.64
    copy = 9.11 - 6.61
    assert cells[2] == "35.00 ± 1.00 (n=3) in bf16 (29.64)" and cells[3] == f"+{offset:.2f}"
    assert cells[4] == f"+{copy:.2f} (9.11 vs 6.61)" and cells[5] == "+0.60 (n=1)" and cells[6] == "1.00"
    # bf16's cost is inside both the offset and the copy (both bf16 against the paper's float32): not taken twice
    assert cells[7] == f"+{offset - copy:.2f}" and len(used) == 6
    # a run on another long-tailed subset joins the mean, and the spread says it is over subsets as well
    write_run(tmp_path / "bf16-0-subset1", seed=0, subset_seed=1, top1=36.5, precision="bf16", **lossy)
    (row,) = [line for line in make_table("attribution", find_runs(tmp_path))[0].splitlines()
              if line.startswith("| CIFAR-10 IF 100")]
    spread = statistics.stdev([*errors.values(), 36.5])
    assert f"| {spread:.2f} (seeds and subsets) |" in row and "(n=4)" in row
    (tmp_path / "bf16-0-subset1" / "metrics.json").unlink()
    # without the IF 1 run the copy and the rest are unknown, never guessed
    (tmp_path / "if1" / "metrics.json").unlink()
    row = [line for line in make_table("attribution", find_runs(tmp_path))[0].splitlines()
           if line.startswith("| CIFAR-10 IF 100")][0]
    assert [c.strip() for c in row.strip("|").split("|")][4] == "—" and row.rstrip(" |").endswith("—")
    # runs that can be set against no Table 2 softmax cell: one line that says which runs the table needs
    with pytest.raises(Exception, match=r"no finished softmax \(β = 0\) CIFAR-LT \(a Table 2 imbalance factor, the "
                                        r"paper's schedule\) runs with a top1_err for table attribution"):
        make_table("attribution", find_runs(tmp_path / "if30"))


def test_table2_says_where_the_cb_best_was_chosen_among_means_over_different_numbers_of_seeds(tmp_path):
    write_run(tmp_path / "sm", top1=35.0)
    write_run(tmp_path / "cb-sigmoid", loss="sigmoid", beta=0.9999, top1=29.0)  # one seed: a lucky draw wins more
    for seed in (0, 1, 2):
        write_run(tmp_path / f"cb-focal-{seed}", loss="focal", beta=0.9999, gamma=1.0, seed=seed, top1=29.5)
    text = make_table("2", find_runs(tmp_path))[0]
    assert f"| 29.00, Δ +{29.0 - 25.43:.2f} | sigmoid, β=0.9999, γ=- |" in text  # the one-seed mean wins (paper 25.43)
    assert "different numbers of seeds in some rows (CIFAR-10 IF 100: 1, 3 seeds)" in text
    (tmp_path / "cb-sigmoid" / "metrics.json").unlink()
    assert "different numbers of seeds" not in make_table("2", find_runs(tmp_path))[0]
