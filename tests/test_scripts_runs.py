"""cbl.runs: finding run directories, their status, and the per-cell statistics."""

import json
import math
import statistics

import pytest

from cbl.runs import RunsError, find_runs, is_paper_method, read_history, summarize
from tests.runfactory import write_history, write_run


def test_status_of_finished_failed_and_incomplete_runs(tmp_path):
    write_run(tmp_path / "sweep" / "0", top1=29.1, epochs=5)
    write_run(tmp_path / "sweep" / "1", status="failed", error="non-finite loss at epoch 3 step 17", epochs=5)
    write_history(tmp_path / "sweep" / "2", 143, truncated_tail=True)  # preempted mid-write
    (tmp_path / "sweep" / "3").mkdir()
    (tmp_path / "sweep" / "3" / "config.yaml").write_text("seed: 0\n")  # killed before its first epoch
    runs = {r.path.name: r for r in find_runs(tmp_path)}
    assert set(runs) == {"0", "1", "2", "3"}
    assert (runs["0"].status, runs["0"].error, runs["0"].last_epoch) == ("finished", None, 5)
    assert runs["0"].value("top1_err") == 29.1 and runs["0"].reason == ""
    assert (runs["1"].status, runs["1"].error, runs["1"].last_epoch) == ("failed", "non-finite loss at epoch 3 step 17", 4)
    assert runs["1"].value("top1_err") is None  # null in metrics.json
    assert runs["1"].reason == "failed: non-finite loss at epoch 3 step 17"
    assert (runs["2"].status, runs["2"].last_epoch, runs["2"].metrics) == ("incomplete", 143, {})
    assert runs["2"].reason == "incomplete: no metrics.json, last epoch 143"
    assert (runs["3"].status, runs["3"].last_epoch) == ("incomplete", None)


def test_runs_sorted_numerically_hidden_dirs_skipped_and_config_only_parents_ignored(tmp_path):
    for i in (10, 2, 1):
        write_run(tmp_path / "sweep" / str(i))
    (tmp_path / "sweep" / "config.yaml").write_text("a: 1\n")  # a folder above runs is not a run
    write_run(tmp_path / "sweep" / "2" / ".hydra")  # hidden folders are Hydra's, never runs
    assert [r.path.name for r in find_runs(tmp_path)] == ["1", "2", "10"]
    assert [r.path for r in find_runs(tmp_path / "sweep" / "2")] == [tmp_path / "sweep" / "2"]  # root itself


def test_errors_are_one_line_and_name_the_file(tmp_path):
    with pytest.raises(RunsError, match="is not a directory"):
        find_runs(tmp_path / "missing")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(RunsError, match="no run directories with metrics.json under .*empty"):
        find_runs(tmp_path / "empty")
    bad = tmp_path / "bad" / "7"
    bad.mkdir(parents=True)
    (bad / "metrics.json").write_text('{"status": "finished", ')
    with pytest.raises(RunsError, match=r"cannot read .*bad/7/metrics.json") as e:
        find_runs(tmp_path / "bad")
    assert "\n" not in str(e.value)
    (bad / "metrics.json").write_text("[1, 2]")
    with pytest.raises(RunsError, match="expected a JSON object"):
        find_runs(tmp_path / "bad")


def test_history_keeps_the_last_line_per_epoch_and_rejects_corrupt_middle_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [{"epoch": 1, "top1_err": 80.0}, {"epoch": 2, "top1_err": 70.0}, {"epoch": 2, "top1_err": 65.0}]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))  # resumed after epoch 1: epoch 2 logged twice
    assert read_history(path) == [lines[0], lines[2]]
    path.write_text(json.dumps(lines[0]) + "\n{oops\n" + json.dumps(lines[1]) + "\n")
    with pytest.raises(RunsError, match="metrics.jsonl line 2"):
        read_history(path)


def test_unknown_status_counts_as_failed(tmp_path):
    run_dir = write_run(tmp_path / "r")
    m = json.loads((run_dir / "metrics.json").read_text())
    m["status"] = "running"
    (run_dir / "metrics.json").write_text(json.dumps(m))
    (run,) = find_runs(tmp_path)
    assert run.status == "failed" and "unexpected status 'running'" in run.error


def test_interrupted_run_is_incomplete_with_its_reason(tmp_path):
    run_dir = write_run(tmp_path / "r", status="failed", error="Preempted: stopped by SIGTERM", epochs=5)
    m = json.loads((run_dir / "metrics.json").read_text())
    m["status"] = "interrupted"
    (run_dir / "metrics.json").write_text(json.dumps(m))
    (run,) = find_runs(tmp_path)
    assert run.status == "incomplete" and run.error == "Preempted: stopped by SIGTERM" and run.last_epoch == 4


def test_run_fields(tmp_path):
    write_run(tmp_path / "a", loss="softmax", gamma=2.0, beta=0.999, imbalance_factor=100.0, seed=3)
    write_run(tmp_path / "b", loss="focal", gamma=0.5, method="cb_resample")
    write_run(tmp_path / "c", loss="ldam", method="drw_ldam")
    hydra = tmp_path / "a" / ".hydra"
    hydra.mkdir()
    (hydra / "overrides.yaml").write_text("- loss=softmax\n- loss.beta=0.999\n")
    a, b, c = find_runs(tmp_path)
    assert a.imbalance_factor == 100 and isinstance(a.imbalance_factor, int)
    assert (a.loss, a.beta, a.gamma, a.method, a.seed, a.dataset) == ("softmax", 0.999, None, "softmax", 3, "cifar10_lt")
    assert a.overrides == ["loss=softmax", "loss.beta=0.999"] and b.overrides is None
    assert (b.gamma, b.method) == (0.5, "cb_resample")
    assert [is_paper_method(r) for r in (a, b, c)] == [True, False, False]
    assert a.describe() == "cifar10_lt IF 100 resnet32 softmax beta=0.999 seed 3"


def test_summarize_matches_statistics_module():
    xs = [29.1, 30.4, 28.75, None]
    s = summarize(xs)
    assert s.n == 3
    assert math.isclose(s.mean, statistics.mean([29.1, 30.4, 28.75]))
    assert math.isclose(s.std, statistics.stdev([29.1, 30.4, 28.75]))
    one = summarize([12.0])
    assert (one.mean, one.std, one.n) == (12.0, 0.0, 1)
    assert summarize([None]) is None and summarize([]) is None
