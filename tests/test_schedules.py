"""Runs of different training schedules never share a table row, a pair or a figure, also on datasets the paper
has no recipe for (where recipe_differences has nothing to compare with): the schedule keeps them apart and the
settings name what differs."""

import importlib.util

import pytest

from cbl.reporting.runs import find_runs
from cbl.reporting.table_parts import schedule_labels
from cbl.reporting.tables import TableError, make_table
from tests.runfactory import SCRIPTS, write_run

spec = importlib.util.spec_from_file_location("cbl_script_plot_schedules", SCRIPTS / "plot.py")
plot_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plot_script)

DIGITS = {"dataset": "digits_lt", "imbalance_factor": 10, "model": "small_cnn"}


def test_schedule_labels_name_the_keys_that_differ_and_nothing_for_one_schedule():
    a = (("epochs", "3"), ("lr", "0.1"), ("momentum", "0.9"))
    b = (("epochs", "30"), ("lr", "0.05"), ("momentum", "0.9"))
    assert schedule_labels([a, b, a]) == {a: "epochs=3, lr=0.1", b: "epochs=30, lr=0.05"}
    assert schedule_labels([a, a]) == {a: ""}
    assert schedule_labels([(), ()]) == {(): ""}


def test_a_short_and_a_long_run_are_two_rows_not_two_seeds_of_one(tmp_path):
    write_run(tmp_path / "short", **DIGITS, seed=5, epochs=3, top1=80.0)
    write_run(tmp_path / "long", **DIGITS, seed=7, epochs=30, top1=12.0)
    write_run(tmp_path / "cb", **DIGITS, beta=0.9, seed=7, epochs=3, top1=70.0)
    table, _ = make_table("methods", find_runs(tmp_path))
    rows = [line for line in table.splitlines() if line.startswith("| digits_lt")]
    assert [row.split(" | ")[3:9] for row in rows] == [
        ["softmax", "softmax", "-", "-", "epochs=3", "80.00"],
        ["softmax", "softmax", "-", "-", "epochs=30", "12.00"],
        ["cb_softmax", "softmax", "0.9", "-", "epochs=3", "70.00"],
    ]
    # seed 7 ran β 0 for 30 epochs and β 0.9 for 3: no pair (it used to be a "gain" of 58 points)
    with pytest.raises(TableError, match="no finished class-balanced"):
        make_table("gain", find_runs(tmp_path))


def test_one_schedule_keeps_the_settings_as_they_were(tmp_path):
    write_run(tmp_path / "a", **DIGITS, seed=0, epochs=30, top1=20.0)
    write_run(tmp_path / "b", **DIGITS, seed=1, epochs=30, top1=22.0)
    table, _ = make_table("methods", find_runs(tmp_path))
    assert "| digits_lt | 10 | small_cnn | softmax | softmax | - | - | - | 21.00 ± 1.41 |" in table


def test_figures_refuse_runs_of_two_schedules_and_an_empty_folder_in_one_line(tmp_path, capsys):
    write_run(tmp_path / "runs" / "short", **DIGITS, seed=0, epochs=3)
    write_run(tmp_path / "runs" / "long", **DIGITS, seed=1, epochs=30)
    (tmp_path / "empty").mkdir()
    for runs, message in [("runs", "have 2 schedules (epochs=3; epochs=30): pick one with --where, e.g. --where epochs=3"),
                          ("empty", "no run folders under")]:  # fmt: skip
        with pytest.raises(SystemExit) as e:
            plot_script.main(["--out", str(tmp_path / "figs"), "--runs", str(tmp_path / runs), "--recipe", "all"])
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and err.count("\n") == 1, err
        assert not (tmp_path / "figs").exists()
    figs = ["--out", str(tmp_path / "figs"), "--runs", str(tmp_path / "runs")]
    assert plot_script.main([*figs, "--recipe", "all", "--where", "epochs=3"]) == 0
    # the paper's recipe (the default) never takes data the paper has no recipe for: Figure 3 alone
    assert plot_script.main([*figs, "--out", str(tmp_path / "paper")]) == 0
    assert [p.name for p in (tmp_path / "paper").iterdir()] == ["fig3_cb_term.png"]


def test_the_figures_where_hint_selects_one_schedule_by_what_the_runs_recorded(tmp_path, capsys):
    """Runs told apart by milestones (a list) and lr (shown after the linear scaling rule): the hint follows the
    recorded value, and following it draws the figures of one schedule."""
    write_run(tmp_path / "runs" / "a", **DIGITS, seed=0, epochs=6, recipe={"milestones": [2, 3], "lr": 0.05})
    write_run(tmp_path / "runs" / "b", **DIGITS, seed=1, epochs=6, recipe={"milestones": [4, 5], "lr": 0.1})
    figs = ["--out", str(tmp_path / "figs"), "--runs", str(tmp_path / "runs"), "--recipe", "all"]
    with pytest.raises(SystemExit):
        plot_script.main(figs)
    hint = capsys.readouterr().err.strip().rsplit("--where ", 1)[1]
    assert hint in ("milestones=[2,3]", "milestones=[4,5]"), hint
    assert plot_script.main([*figs, "--where", hint]) == 0


def test_where_reads_a_list_as_itself_and_an_unrecorded_precision_as_float32(tmp_path):
    from cbl.reporting.runs import select_runs

    write_run(tmp_path / "old", **DIGITS, seed=0, recipe={"milestones": [2, 3]})  # no precision field recorded
    write_run(tmp_path / "bf16", **DIGITS, seed=1, recipe={"milestones": [4, 5]}, precision="bf16")
    runs = find_runs(tmp_path)
    assert [r.seed for r in select_runs(runs, where=["milestones=[2, 3]"])] == [0]
    assert [r.seed for r in select_runs(runs, where=["precision=fp32"])] == [0]
    old = [r for r in runs if r.seed == 0]
    assert [r.seed for r in select_runs(old, where=["order=shuffled"])] == [0]  # no run records it: the reference
