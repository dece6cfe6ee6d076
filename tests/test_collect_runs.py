"""scripts/collect_runs.py copies finished runs' summaries (never checkpoints) under their run names, so one
configuration has one committed copy wherever its run was written."""

import pytest
from omegaconf import OmegaConf

from cbl.training.overrides import sweep_runs
from tests.runfactory import load_script, write_run
from tests.train_utils import compose_cfg

collect_runs = load_script("collect_runs")
LOSSY = "npz:cifar10_jpeg_lossy.npz@sha256:e39eb40157b400c3"
CB_SOFTMAX = ["sweep=evidence_lossy", "loss=softmax", "loss.beta=0.9999"]


def trained_into(folder, *overrides: str):
    """A finished run of `overrides` in `folder` (as under hydra.run.dir=folder), its config.yaml written as
    training writes it: the resolved config, then the data source."""
    write_run(folder, loss="softmax", beta=0.9999, precision="bf16", data_source=LOSSY)
    text = OmegaConf.to_yaml(compose_cfg(*overrides), resolve=True)
    text += OmegaConf.to_yaml({"data_source": {"id": LOSSY, "detail": "x.npz sha256 e39e...", "official": False}})
    (folder / "config.yaml").write_text(text)
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "overrides.yaml").write_text("- loss=softmax\n- loss.beta=0.9999\n")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "last.pt").write_bytes(b"weights")
    (folder / "predictions_last.npz").write_bytes(b"predictions")
    (folder / "train.log").write_text("log\n")
    return folder


def test_a_run_written_anywhere_is_copied_under_the_name_its_sweep_gives_it(tmp_path, capsys):
    trained_into(tmp_path / "runs" / "cb_softmax", *CB_SOFTMAX)
    (expected,) = sweep_runs(CB_SOFTMAX)  # the folder `make evidence-lossy ARGS="loss=softmax loss.beta=0.9999"` uses
    assert collect_runs.main(["--runs", str(tmp_path / "runs"), "--to", str(tmp_path / "kept")]) == 0
    copy = tmp_path / "kept" / expected
    assert sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file()) == [
        ".hydra/overrides.yaml", "config.yaml", "metrics.json", "metrics.jsonl", "predictions_last.npz"]  # fmt: skip
    assert (copy / "config.yaml").read_text() == (tmp_path / "runs" / "cb_softmax" / "config.yaml").read_text()
    assert capsys.readouterr().out.split() == [str(copy)]


def test_one_configuration_from_two_places_is_one_copy_and_one_selection_of_both_fails(tmp_path, capsys):
    trained_into(tmp_path / "a" / "cb_softmax", *CB_SOFTMAX)
    trained_into(tmp_path / "b" / "other_name", *CB_SOFTMAX)
    for where in ("a", "b"):
        assert collect_runs.main(["--runs", str(tmp_path / where), "--to", str(tmp_path / "kept")]) == 0
    assert [p.name for p in (tmp_path / "kept").iterdir()] == list(sweep_runs(CB_SOFTMAX))
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        collect_runs.main(["--runs", str(tmp_path / "a"), str(tmp_path / "b"), "--to", str(tmp_path / "again")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "cb_softmax" in err and "other_name" in err and "one configuration" in err
    assert not (tmp_path / "again").exists()


def test_a_config_that_no_training_wrote_is_one_line_naming_the_run(tmp_path, capsys):
    write_run(tmp_path / "runs" / "odd")  # config.yaml holds the loss alone
    with pytest.raises(SystemExit) as e:
        collect_runs.main(["--runs", str(tmp_path / "runs"), "--to", str(tmp_path / "kept")])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1
    assert str(tmp_path / "runs" / "odd") in err and "no dataset, model, seed" in err
