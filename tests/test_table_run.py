"""scripts/make_table.py --wandb-project: the generated table as a wandb run (offline), read back from its files:
the wandb.Table's rows are the printed Markdown table's rows, cell for cell, and --figure images are logged."""

import json

import pytest

from cbl.reporting.table_run import TableRunError, markdown_table, unique_columns
from cbl.reporting.wandb_offline import offline_runs
from tests.runfactory import load_script, write_run

make_table_script = load_script("make_table")


def printed_table(text: str) -> tuple[list[str], list[list[str]]]:
    """The first pipe table of printed Markdown, split by hand (the expectation, independent of table_run)."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    split = [[c.strip() for c in line[1:-1].split("|")] for line in lines]
    return split[0], [row for row in split[2:]]


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "runs"
    for i, (loss, beta, seed, top1) in enumerate([("softmax", 0.0, 0, 30.0), ("softmax", 0.0, 1, 31.0),
                                                  ("focal", 0.9999, 0, 26.0)]):  # fmt: skip
        write_run(root / str(i), loss=loss, beta=beta, gamma=1.0 if loss == "focal" else 0.0, seed=seed, top1=top1)
    return root


def test_make_table_logs_the_printed_table_and_figures_offline(sweep, tmp_path, capsys):
    from PIL import Image

    figure = tmp_path / "fig3.png"
    Image.new("RGB", (8, 6), "red").save(figure)
    argv = ["--runs", str(sweep), "--table", "2", "--wandb-project", "cbl-test", "--wandb-dir", str(tmp_path / "wb"),
            "--figure", str(figure)]
    assert make_table_script.main(argv) == 0
    printed = capsys.readouterr()
    header, rows = printed_table(printed.out)
    assert rows and rows[0][:3] == ["CIFAR-10", "100", "ours"] and rows[1][2] == "paper"

    (run,) = offline_runs(tmp_path / "wb" / "table-table2" / "wandb", wait_s=10)
    assert run.exit_code == 0 and run.job_type == "table" and run.group == "tables" and run.project == "cbl-test"
    assert f"as run {run.run_id}" in printed.err
    assert run.config["table"] == "table2" and run.config["runs"] == [str(sweep)]
    (row,) = run.history
    table = json.loads((run.path.parent / "files" / row["table/table2/path"]).read_text())
    assert table["columns"] == ["dataset", "IF", "source", *header[3:]]
    assert table["data"] == rows  # the README's numbers, as printed
    assert row["figures/fig3/_type"] == "image-file"
    assert run.summary["markdown"] == printed.out.strip() and run.summary["rows"] == len(rows)


def test_a_second_table_logs_beside_the_first_and_a_rerun_supersedes_it(sweep, tmp_path, capsys):
    common = ["--runs", str(sweep), "--wandb-project", "cbl-test", "--wandb-dir", str(tmp_path / "wb")]
    for table in ("2", "methods", "2"):
        assert make_table_script.main([*common, "--table", table]) == 0
    capsys.readouterr()
    assert len(offline_runs(tmp_path / "wb" / "table-table2" / "wandb")) == 1
    assert len(offline_runs(tmp_path / "wb" / "table-methods" / "wandb")) == 1


def test_bad_figure_options_fail_in_one_line_before_anything_is_written(sweep, tmp_path, capsys):
    out = tmp_path / "t.md"
    with pytest.raises(SystemExit) as e:
        make_table_script.main(["--runs", str(sweep), "--table", "2", "--out", str(out), "--wandb-project", "p",
                                "--figure", str(tmp_path / "missing.png")])  # fmt: skip
    assert e.value.code == 2 and not out.exists()
    assert capsys.readouterr().err == f"make_table.py: error: --figure {tmp_path / 'missing.png'} does not exist\n"
    with pytest.raises(SystemExit) as e:
        make_table_script.main(["--runs", str(sweep), "--table", "2", "--figure", "x.png"])
    assert e.value.code == 2
    assert capsys.readouterr().err == "make_table.py: error: --figure is logged to W&B: pass --wandb-project too\n"


def test_markdown_table_parsing_and_column_names():
    text = "caption\n\n| a | | b |\n| --- | --- | --- |\n| 1 | ours | 2 |\n|  | paper | 3 |\n\nnotes | not a row"
    assert markdown_table(text) == (["a", "", "b"], [["1", "ours", "2"], ["", "paper", "3"]])
    assert unique_columns(["network", "", "iNat2017 top-1", "top-5", "iNat2018 top-1", "top-5"]) == \
           ["network", "source", "iNat2017 top-1", "iNat2017 top-5", "iNat2018 top-1", "iNat2018 top-5"]
    with pytest.raises(TableRunError, match="holds no table"):
        markdown_table("no table here")
