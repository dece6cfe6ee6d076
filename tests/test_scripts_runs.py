"""cbl.reporting.runs: finding run directories, their status, and the per-cell statistics."""

import json
import math
import statistics

import pytest

from cbl.reporting.runs import RunsError, find_runs, is_paper_method, read_history, summarize
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


def test_recipe_differences_name_what_keeps_a_run_out_of_the_paper_cells(tmp_path):
    write_run(tmp_path / "paper", top1=29.0)
    write_run(tmp_path / "if1", imbalance_factor=1)  # the authors' balanced schedule: x0.1 / x0.01
    write_run(tmp_path / "if1_lt_schedule", imbalance_factor=1, recipe={"factors": [0.01, 0.0001]})
    write_run(tmp_path / "scaled", recipe={"batch_size": 256, "lr": 0.05, "reference_batch": 128})  # lr 0.1 after scaling
    write_run(tmp_path / "bf16_lossy", precision="bf16", data_source="npz:c.npz@sha256:abcdef0123456789")
    write_run(tmp_path / "unrecorded", data_source=None)
    write_run(tmp_path / "inat", dataset="inat2018", imbalance_factor=None, model="resnet50", input_size=224)
    runs = {r.path.name: r for r in find_runs(tmp_path)}
    assert runs["paper"].recipe_differences() == [] and runs["if1"].recipe_differences() == []
    assert runs["inat"].recipe_differences() == []
    assert runs["if1_lt_schedule"].recipe_differences() == ["factors=[0.01,0.0001]"]
    assert runs["scaled"].recipe_differences() == ["batch_size=256"]
    assert runs["bf16_lossy"].recipe_differences() == ["precision=bf16", "data=npz:c.npz@sha256:abcdef0123456789"]
    assert runs["bf16_lossy"].recipe_differences("precision") == ["data=npz:c.npz@sha256:abcdef0123456789"]
    assert runs["unrecorded"].recipe_differences() == ["data=source not recorded"]
    assert runs["bf16_lossy"].deviations() == "precision=bf16, data=npz:c.npz@sha256:abcdef0123456789"


def test_runs_recorded_before_the_recipe_fields_read_them_from_config_yaml(tmp_path):
    run = write_run(tmp_path / "old", data_source=None)
    m = json.loads((run / "metrics.json").read_text())
    for key in ("optimizer", "lr", "reference_batch", "warmup_epochs", "milestones", "factors", "weight_decay",
                "momentum", "nesterov"):
        del m["run"][key]
    (run / "metrics.json").write_text(json.dumps(m))
    (run / "config.yaml").write_text(
        "dataset:\n  name: cifar10_lt\n  npz: /data/cifar10_jpeg_lossy.npz\noptim:\n  name: sgd\n  lr: 0.1\n"
        "  reference_batch: 128\n  warmup_epochs: 5\n  milestones: [15, 18]\n  factors: [0.01, 0.0001]\n"
        "  weight_decay: 0.0002\n  momentum: 0.9\n  nesterov: false\n"
    )
    (old,) = find_runs(tmp_path)
    assert old.recipe_differences() == ["milestones=[15,18]", "data=npz:cifar10_jpeg_lossy.npz (not hashed)"]
    (run / "config.yaml").write_text("loss:\n  name: softmax\n")  # nothing to read: said so, once
    (old,) = find_runs(tmp_path)
    assert old.recipe_differences() == [
        "recipe not recorded (optimizer, lr, warmup_epochs, milestones, factors, weight_decay, momentum, nesterov)",
        "data=source not recorded",
    ]


@pytest.mark.parametrize("overrides", [
    ["dataset=cifar10_lt"], ["dataset=cifar100_lt", "dataset.imbalance_factor=1"],
    ["experiment=table3"], ["experiment=table3", "dataset=ilsvrc2012", "model=resnet152", "dataset.input_size=320"],
])
def test_the_shipped_configs_are_the_paper_recipe(tmp_path, overrides):
    """A run of the default configs on the official data has no recipe difference (the configs and cbl.reporting.paper agree)."""
    from cbl.training.run_files import run_fields
    from tests.train_utils import compose_cfg

    cfg = compose_cfg(*overrides)
    fields = run_fields(cfg, num_classes=10) | {"data_source": "official"}
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "metrics.json").write_text(json.dumps({"status": "finished", "run": fields}))
    (run,) = find_runs(tmp_path)
    assert run.recipe_differences() == [] and is_paper_method(run)
    # and one changed value shows up
    cfg.optim.epochs = 20
    (tmp_path / "r" / "metrics.json").write_text(json.dumps({"status": "finished", "run": run_fields(cfg, 10)}))
    (run,) = find_runs(tmp_path)
    assert run.recipe_differences() == ["epochs=20", "data=source not recorded"]
