"""scripts/dashboard.py and cbl/reporting/dashboard.py, offline: the workspace spec W&B would store (panels,
groupings, filters), and the one-line failure without an API key that still writes the spec."""

import json

import pytest

from cbl.reporting.dashboard import DashboardError, Selection, build_workspace, workspace_spec
from tests.runfactory import load_script

dashboard_script = load_script("dashboard")


@pytest.fixture
def no_wandb_login(tmp_path, monkeypatch):
    """No API key anywhere wandb looks (environment, ~/.netrc, wandb's settings) and no server."""
    for var in ("WANDB_API_KEY", "WANDB_ENTITY", "NETRC"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "home" / "wandb-config"))
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there


def panels(spec: dict) -> dict[str, list[dict]]:
    return {s["name"]: s["panels"] for s in spec["spec"]["section"]["panelBankConfig"]["sections"]}


def filters(spec: dict) -> list[tuple]:
    tree = spec["spec"]["section"]["runSets"][0]["filters"]["filters"]
    return [(f["key"]["section"], f["key"]["name"], f["op"], f["value"]) for f in tree]


def test_workspace_panels_answer_the_comparisons():
    spec = workspace_spec(build_workspace("me", "cbl"))
    assert (spec["entity"], spec["project"], spec["displayName"]) == ("me", "cbl", "cbl: losses compared (all runs)")
    sections = panels(spec)
    assert list(sections) == ["Table 2: top-1 error by method (mean and std over seeds)", "Error per epoch",
                              "beta / gamma sweep", "Many vs few-shot accuracy", "Per-class accuracy"]
    table2, epochs, sweep, shots, per_class = sections.values()
    assert [(p["viewType"], p["config"]["metrics"], p["config"]["groupAgg"], p["config"]["groupArea"]) for p in table2] == [
        ("Bar Chart", ["top1_err"], "mean", "stddev"), ("Bar Chart", ["best_top1_err"], "mean", "stddev"),
        ("Bar Chart", ["top5_err"], "mean", "stddev")]  # fmt: skip
    by_loss = epochs[0]["config"]
    assert (by_loss["xAxis"], by_loss["metrics"], by_loss["groupBy"]) == ("epoch", ["top1_err"], "loss.value")
    assert epochs[1]["config"]["groupBy"] == "method.value"
    assert all(p["config"]["xAxis"] == "epoch" for p in epochs if p["viewType"] == "Run History Line Plot")
    parallel = sweep[0]
    assert parallel["viewType"] == "Parallel Coordinates Plot"
    assert [c["accessor"] for c in parallel["config"]["columns"]] == \
           ["config:beta.value", "config:gamma.value", "summary:top1_err"]
    assert shots[0]["config"]["metrics"] == ["shot_acc/many", "shot_acc/medium", "shot_acc/few"]
    assert (shots[1]["config"]["xAxis"], shots[1]["config"]["yAxis"]) == ("summary:shot_acc/many", "summary:shot_acc/few")
    assert per_class[0]["config"]["metricRegex"] == "^class_acc/.*" and per_class[0]["config"]["useMetricRegex"]
    charts = [p for p in per_class if p["viewType"] == "Vega2"]
    assert [c["config"]["panelDefId"] for c in charts] == ["wandb/bar/v0", "wandb/scatter/v0"]
    assert [c["config"]["fieldSettings"] for c in charts] == [{"label": "class", "value": "accuracy"},
                                                             {"x": "train_count", "y": "accuracy"}]
    assert all('"tableKey", "value": "per_class"' in json.dumps(c["config"]["userQuery"]) for c in charts)
    runset = spec["spec"]["section"]["runSets"][0]
    # seeds averaged: one group per configuration, under its dataset and imbalance factor
    assert runset["grouping"] == [{"section": "config", "name": "dataset.value"},
                                  {"section": "config", "name": "imbalance_factor.value"},
                                  {"section": "run", "name": "group"}]
    assert {"config:method", "config:loss", "config:beta", "config:gamma", "summary:top1_err",
            "summary:shot_acc/few"} <= set(runset["runFeed"]["columnOrder"])
    assert filters(spec) == [("run", "jobType", "!=", "table")]  # make_table's summary runs are not training runs
    assert spec["spec"]["section"]["settings"]["xAxis"] == "epoch"


def test_selection_filters_the_runs():
    selection = Selection(sweep="table2", dataset="cifar10_lt", imbalance_factor=100.0, filter='Config("loss") == "focal"')
    spec = workspace_spec(build_workspace("", "cbl", selection))
    assert filters(spec) == [("run", "jobType", "!=", "table"), ("config", "sweep", "=", "table2"),
                             ("config", "dataset", "=", "cifar10_lt"), ("config", "imbalance_factor", "=", 100),
                             ("config", "loss", "=", "focal")]
    assert spec["displayName"] == "cbl: losses compared (table2, cifar10_lt, IF 100, filtered)"
    with pytest.raises(DashboardError, match=r"^--filter 'Config\(\"loss\"\) ==' is not a W&B filter expression"):
        build_workspace("", "cbl", Selection(filter='Config("loss") =='))


def test_without_an_api_key_the_spec_is_written_and_one_line_says_what_is_needed(no_wandb_login, tmp_path, capsys):
    out = tmp_path / "spec" / "dashboard.json"
    with pytest.raises(SystemExit) as e:
        dashboard_script.main(["--project", "cbl", "--dataset", "cifar100_lt", "--if", "50", "--json", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dashboard.py: error: saving the workspace needs a W&B API key")
    spec = json.loads(out.read_text())
    assert ("config", "dataset", "=", "cifar100_lt") in filters(spec) and len(panels(spec)) == 5


def test_dry_run_prints_the_spec_and_saves_nothing(no_wandb_login, capsys):
    assert dashboard_script.main(["--entity", "me", "--sweep", "methods", "--print", "--dry-run"]) == 0
    captured = capsys.readouterr()
    spec = json.loads(captured.out)
    assert spec["entity"] == "me" and ("config", "sweep", "=", "methods") in filters(spec)
    (line,) = captured.err.splitlines()  # what was done, and that nothing was saved
    assert line.startswith("dashboard.py: dry run: workspace ") and "not saved" in line and 'Config("sweep")' in line


@pytest.mark.parametrize("args, message", [
    (["--filter", "Config(", "--dry-run"], "dashboard.py: error: --filter 'Config(' is not a W&B filter expression"),
    (["--name", "a = b", "--dry-run"], "dashboard.py: error: --name 'a = b' is not allowed"),
])  # fmt: skip
def test_bad_options_fail_in_one_line(no_wandb_login, capsys, args, message):
    with pytest.raises(SystemExit) as e:
        dashboard_script.main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith(message) and err.count("\n") == 1
