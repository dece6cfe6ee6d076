"""What a run refused before it started leaves (cbl/training/refusal.py): nothing of what Hydra made for it, and
never anything another run wrote; through the CLI in tests/test_cli.py and tests/test_cli_sweeps.py."""

from pathlib import Path

from omegaconf import OmegaConf

from cbl.training import refusal
from cbl.training.refusal import RunFoldersMade, discard_unstarted


def hydra_folder(root: Path, log_text: str = "") -> tuple[Path, dict[Path, int]]:
    """A run folder as Hydra leaves it before the task runs: .hydra/ and the job's log (its size when the task began)."""
    run_dir = root / "outputs" / "table2" / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        (run_dir / ".hydra" / name).write_text("x: 1\n")
    log = run_dir / "train.log"
    log.write_text(log_text)
    return run_dir, {log: log.stat().st_size}


def test_the_folder_hydra_made_goes_and_its_group_folder_when_left_empty(tmp_path):
    run_dir, logs = hydra_folder(tmp_path)
    logs[run_dir / "train.log"] = 0
    (run_dir / "train.log").write_text("[cbl.train][INFO] - a line this job logged before it was refused\n")
    assert discard_unstarted(run_dir, logs, wrote_hydra_subdir=True)
    assert not (tmp_path / "outputs" / "table2").exists() and (tmp_path / "outputs").is_dir()


def test_a_folder_holding_a_runs_files_or_an_earlier_log_stays_as_it_was(tmp_path):
    for extra in ("config.yaml", "metrics.json", "checkpoints/epoch_0001.pt", "metrics.jsonl"):
        run_dir, logs = hydra_folder(tmp_path / extra.replace("/", "_"))
        (run_dir / extra).parent.mkdir(exist_ok=True)
        (run_dir / extra).write_text("{}")
        before = sorted(run_dir.rglob("*"))
        assert not discard_unstarted(run_dir, logs, wrote_hydra_subdir=True)
        assert sorted(run_dir.rglob("*")) == before
    run_dir, logs = hydra_folder(tmp_path / "earlier", log_text="an earlier attempt's line\n")
    assert not discard_unstarted(run_dir, logs, wrote_hydra_subdir=True) and (run_dir / ".hydra").is_dir()


def test_each_rank_takes_its_own_part(tmp_path):
    """Under torchrun rank 0 writes .hydra/ and train.log, rank 1 train.rank1.log: the last to finish removes the folder."""
    run_dir, logs = hydra_folder(tmp_path)
    rank1 = run_dir / "train.rank1.log"
    rank1.write_text("")
    assert not discard_unstarted(run_dir, logs, wrote_hydra_subdir=True)  # rank 0: rank 1's log is still there
    assert [p.name for p in run_dir.iterdir()] == ["train.rank1.log"]
    assert discard_unstarted(run_dir, {rank1: 0}, wrote_hydra_subdir=False)  # rank 1
    assert not (tmp_path / "outputs" / "table2").exists()


def refused_single_run(run_dir: Path) -> bool:
    """What a refused single run does to its folders: noted before Hydra makes them, made, then discarded."""
    RunFoldersMade().on_run_start(config=OmegaConf.create({"hydra": {"run": {"dir": str(run_dir)}}}))
    (run_dir / ".hydra").mkdir(parents=True)  # what Hydra's run_job makes next
    return discard_unstarted(run_dir, {}, wrote_hydra_subdir=True)


def test_the_output_dir_hydra_made_for_a_refused_single_run_goes_and_one_that_was_there_stays(tmp_path, monkeypatch):
    monkeypatch.setattr(refusal, "_made", [])
    (tmp_path / "existing").mkdir()
    assert refused_single_run(tmp_path / "new" / "deeper" / "table2" / "run")
    assert list(tmp_path.iterdir()) == [tmp_path / "existing"]  # new/ and new/deeper/ went with the run
    assert refused_single_run(tmp_path / "existing" / ".." / "new" / "table2" / "run")  # as written, not normalised
    assert list(tmp_path.iterdir()) == [tmp_path / "existing"]
    assert refused_single_run(tmp_path / "existing" / "table2" / "run")
    assert list(tmp_path.iterdir()) == [tmp_path / "existing"] and not list((tmp_path / "existing").iterdir())
    RunFoldersMade().on_multirun_start(config=None)  # a sweep's folders are the sweeper's: nothing noted
    assert refusal._made == []
