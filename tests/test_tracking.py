"""wandb problems never stop training: they become one warning and wandb is switched off."""

import logging

import pytest

from cbl.tracking import Tracker

pytest.importorskip("wandb")


def make(tmp_path, **kw):
    args = dict(mode="offline", project="cbl-test", run_dir=tmp_path, name="t", group="g", config={"beta": 0.9})
    args.update(kw)
    return Tracker(**args)


def test_offline_run_leaves_its_files(tmp_path):
    t = make(tmp_path)
    assert t.active and t.run_id
    t.log({"loss": 1.0}, step=1)
    t.summary({"top1_err": 12.5})
    t.finish(0)
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].rglob("*.wandb"))


def test_disabled_does_nothing(tmp_path):
    t = make(tmp_path, mode="disabled")
    assert not t.active
    t.log({"x": 1}, step=1)
    t.finish(0)
    assert not (tmp_path / "wandb").exists()


def test_bad_mode():
    with pytest.raises(ValueError, match="wandb.mode must be one of online, offline, disabled; got 'cloud'"):
        Tracker(mode="cloud", project="p", run_dir=".", name="n")


def test_no_network_and_bad_key_is_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    with caplog.at_level(logging.WARNING):
        t = make(tmp_path, mode="online", init_timeout=3)
    assert not t.active
    assert "wandb init failed" in caplog.text
    t.log({"loss": 1.0}, step=1)  # no-ops, no exception
    t.finish(1)


def test_unwritable_wandb_dir_is_a_warning(tmp_path, caplog):
    (tmp_path / "wandb").write_text("a file where wandb wants its folder")  # mkdir fails, like a full disk
    with caplog.at_level(logging.WARNING):
        t = make(tmp_path)
    assert not t.active and "wandb init failed" in caplog.text


def test_failure_while_logging_switches_wandb_off(tmp_path, caplog):
    t = make(tmp_path)

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    t.run.log = disk_full
    run = t.run
    with caplog.at_level(logging.WARNING):
        t.log({"loss": 1.0}, step=1)
        t.log({"loss": 2.0}, step=2)
    assert not t.active
    assert caplog.text.count("No space left on device") == 1
    run.finish()
