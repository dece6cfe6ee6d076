"""cbl.reporting.paper parses cbl/reporting/paper_tables.md; the expected cells below were read off the Markdown by hand."""

import tomllib
from pathlib import Path

import pytest

from cbl.reporting import paper

ROOT = Path(__file__).resolve().parents[1]


def test_all_rows_are_there_in_the_papers_order():
    t2, t3 = paper.table2(), paper.table3()
    assert len(t2) == 12 and len(t3) == 9
    assert [(r.dataset, r.imbalance_factor) for r in t2] == [
        (d, f) for d in ("cifar10", "cifar100") for f in (200, 100, 50, 20, 10, 1)
    ]
    assert [r.network for r in t3] == ["ResNet-50", "ResNet-101", "ResNet-152"] * 3
    assert [r.input_size for r in t3] == [224] * 6 + [320] * 3


def test_table2_cells():
    c10_200 = paper.table2_row("cifar10", 200)
    assert c10_200.softmax == 34.32 and c10_200.sigmoid == 34.51
    assert c10_200.focal == {0.5: 36.00, 1.0: 34.71, 2.0: 35.12}
    assert (c10_200.cb_best, c10_200.cb_loss, c10_200.cb_beta, c10_200.cb_gamma) == (31.11, "softmax", 0.9999, None)
    c100_20 = paper.table2_row("cifar100_lt", 20)  # run-style dataset names work too
    assert (c100_20.cb_best, c100_20.cb_loss, c100_20.cb_beta, c100_20.cb_gamma) == (47.41, "focal", 0.99, 0.5)
    c100_1 = paper.table2_row("cifar100", 1)
    assert (c100_1.softmax, c100_1.cb_best, c100_1.cb_loss, c100_1.cb_beta) == (29.07, 28.39, "sigmoid", None)
    assert paper.table2_row("cifar10", 500) is None and paper.table2_row("inat2017", 100) is None


def test_table3_cells():
    r152 = paper.table3()[-1]
    assert (r152.network, r152.loss, r152.beta, r152.gamma, r152.input_size) == ("ResNet-152", "CB Focal", 0.999, 0.5, 320)
    assert r152.results["inat2018"] == (30.95, 13.54)
    assert r152.results["ilsvrc2012"] == (19.72, 4.97)
    r50 = paper.table3()[0]
    assert (r50.loss, r50.beta, r50.gamma) == ("Softmax", None, None)
    assert r50.results == {"inat2017": (45.38, 22.67), "inat2018": (42.86, 21.31), "ilsvrc2012": (23.92, 7.03)}
    assert (r50.model, r50.loss_type, r152.model, r152.loss_type) == ("resnet50", "softmax", "resnet152", "focal")


def test_malformed_file_gives_a_clear_error(monkeypatch):
    text = (ROOT / "cbl" / "reporting" / "paper_tables.md").read_text().replace("| 34.32 |", "| 34.3x |")
    monkeypatch.setattr(paper, "_text", lambda: text)
    paper._table2.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"line \d+: expected a number, got '34.3x'"):
            paper.table2()
    finally:
        paper._table2.cache_clear()


def test_paper_tables_md_is_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "paper_tables.md" in config["tool"]["setuptools"]["package-data"]["cbl.reporting"]


def test_paper_tables_md_is_a_verbatim_copy_of_the_shared_reference():
    shared = ROOT.parent / "shared" / "PAPER_TABLES.md"  # beside the checkout (and its CI clone)
    if not shared.is_file():
        pytest.skip(f"{shared} not present")
    assert (ROOT / "cbl" / "reporting" / "paper_tables.md").read_bytes() == shared.read_bytes()
