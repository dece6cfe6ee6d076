"""scripts/bench.py: the Table 2 grid it projects onto, its projections, and one tiny end-to-end run."""

import json
import subprocess
import sys

import pytest

from tests.train_utils import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import bench  # noqa: E402

# CIFAR-10-LT training-set sizes (IF 200, 100, 50, 20, 10), plus the full 50,000 at IF 1
SIZES = {
    "cifar10_lt": {200: 11203, 100: 12406, 50: 13996, 20: 17023, 10: 20431, 1: 50000},
    "cifar100_lt": {200: 9502, 100: 10847, 50: 12608, 20: 15907, 10: 19573, 1: 50000},
}


def test_the_grid_is_the_300_runs_of_table_2():
    grid = bench.grid_runs()
    cells = {(c["dataset"], c["imbalance_factor"]): c for c in grid}
    assert len(cells) == 12 and sum(c["runs"] for c in grid) == 300
    for ds, sizes in SIZES.items():
        for imb, n in sizes.items():
            # softmax, sigmoid x 5 beta + focal x 3 gamma x 5 beta
            assert cells[(ds, float(imb))]["runs"] == 25 and cells[(ds, float(imb))]["train_images"] == n


def test_projections_are_images_over_rates():
    grid = [{"runs": 2, "train_images": 1000, "test_images": 500}]
    p = bench.projections(train_ips=100.0, eval_ips=250.0, fixed_s=36.0, grid=grid)
    assert p["one_run_h"] == pytest.approx((200 * (12406 / 100 + 10000 / 250) + 36) / 3600)
    assert p["grid_h"] == pytest.approx(2 * (200 * (1000 / 100 + 500 / 250) + 36) / 3600)


def test_every_default_path_exists_and_only_bf16_is_not_float32():
    for names in bench.DEFAULT_PATHS.values():
        assert all(bench.resolve_path(n) is not None for n in names) and names[0] == "standard"
    for p in bench.PATHS.values():
        assert p.fp32 == ("precision=bf16" not in p.overrides)


def test_bank_paths_are_their_base_path_with_k_networks():
    bank = bench.resolve_path("tensor+cl+alloc+bank4")
    base = bench.PATHS["tensor+cl+alloc"]
    assert (bank.bank, bank.overrides, bank.tuned_allocator, bank.fp32) == (4, base.overrides, True, True)
    assert bench.resolve_path("tensor+cl+alloc+bank1") is None and bench.resolve_path("warp+bank4") is None


def run_bench(*args, timeout=600):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_paths_list_and_a_wrong_path():
    out = run_bench("--paths", "list")
    assert out.returncode == 0 and "standard" in out.stdout and "tensor+cl+alloc" in out.stdout
    out = run_bench("--paths", "standard,warp-speed", "--npz", "synthetic")
    assert out.returncode == 2 and "unknown path(s) ['warp-speed']" in out.stderr


def test_a_tiny_run_prints_the_table_and_the_ratio(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- cbl:bench-cpu:start -->\nold\n<!-- cbl:bench-cpu:end -->\nafter\n")
    out = run_bench("--device", "cpu", "--steps", "2", "--warmup", "1", "--rounds", "1", "--eval-batches", "1",
                    "--npz", "synthetic", "--paths", "standard,tensor+cl+alloc,tensor+cl+alloc+bank2", "--threads", "1",
                    "--json", str(tmp_path / "bench.json"), "--readme", str(readme))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| `standard` |" in out.stdout and "| `tensor+cl+alloc` |" in out.stdout
    assert "ratio: tensor+cl+alloc trains " in out.stdout and "x as many images/s as standard" in out.stdout
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["device"] == "cpu" and report["data"].startswith("synthetic") and report["grid"]["runs"] == 300
    assert "bank: tensor+cl+alloc+bank2 trains " in out.stdout and "(2 configurations at once, float32)" in out.stdout
    standard, fast, bank = report["results"]
    assert standard["ratio"] == 1.0 and fast["ratio"] == pytest.approx(fast["train_ips"] / standard["train_ips"])
    # a bank's images/s count both networks' images; one run of it takes as long as the bank takes for both
    one_run_s = 200 * (12406 / (bank["train_ips"] / 2) + 10000 / (bank["eval_ips"] / 2)) + bank["compile_s"]
    assert bank["members"] == 2 and bank["one_run_h"] == pytest.approx(one_run_s / 3600)
    assert all(r["train_ips"] > 0 and r["eval_ips"] > 0 and r["one_run_h"] > 0 and r["grid_h"] > r["one_run_h"]
               for r in report["results"])
    text = readme.read_text()
    assert "old" not in text and "| `tensor+cl+alloc` |" in text and text.endswith("<!-- cbl:bench-cpu:end -->\nafter\n")
    # the same table again from the saved report, into another section, without measuring
    readme.write_text("<!-- cbl:other:start -->\n<!-- cbl:other:end -->\n")
    again = run_bench("--from-json", str(tmp_path / "bench.json"), "--readme", str(readme), "--marker", "other")
    assert again.returncode == 0 and bench.table(report) in readme.read_text() and bench.table(report) in again.stdout
    assert "ratio: tensor+cl+alloc trains " in again.stdout  # the ratio lines too, from the saved results


def test_the_bf16_ratio_compares_each_bf16_path_with_its_float32_twin():
    from cbl.commands.bench_processes import Result

    results = [Result("tensor+cl+alloc", "", [], True, train_ips=150.0),
               Result("tensor+cl+alloc+bf16", "", [], False, train_ips=15.0),
               Result("tensor+cl+cudagraphs+bf16", "", [], False, train_ips=900.0)]  # its twin was not measured
    lines = bench.ratio_line(results).splitlines()
    assert lines[0].startswith("ratio: needs the standard path")
    assert lines[1:] == ["bf16: tensor+cl+alloc+bf16 trains 0.10x as many images/s as tensor+cl+alloc in float32 "
                         "(15 vs 150)"]
