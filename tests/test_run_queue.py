"""scripts/run_queue.py (make evidence-queue): a queue of configurations trained in order through the real CLI,
each finished run collected, committed ones skipped, a failing line reported while the others go on."""

import os
import subprocess
import sys

from tests.runfactory import SCRIPTS
from tests.train_utils import LAUNCHER_VARS, QUIET, ROOT


def run_queue(tmp_path, queue: str, *extra: str) -> subprocess.CompletedProcess:
    (tmp_path / "queue.txt").write_text(queue)
    base = " ".join(["experiment=demo", "optim.epochs=2", "optim.milestones=[]", "optim.factors=[]",
                     f"output_dir={tmp_path / 'outputs'}", *QUIET])
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", HYDRA_FULL_ERROR="0")
    return subprocess.run(
        [sys.executable, str(SCRIPTS / "run_queue.py"), str(tmp_path / "queue.txt"), "--base", base,
         "--runs", str(tmp_path / "outputs" / "demo"), "--to", str(tmp_path / "kept"), *extra],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )


def test_lines_train_in_order_finished_ones_are_collected_and_skipped_and_a_failure_does_not_stop_the_queue(tmp_path):
    queue = "# a comment line\nloss=softmax seed=0\nloss=focal loss.beta=1.0  # refused: beta must be < 1\n" \
            "loss=focal loss.beta=0.999 seed=1\n"
    first = run_queue(tmp_path, queue)
    assert first.returncode == 1, first.stderr[-2000:]
    assert first.stderr.strip().splitlines()[-1] == "run_queue.py: 1 of 3 line(s) failed: 3"
    kept = sorted(p.name for p in (tmp_path / "kept").iterdir())
    assert len(kept) == 2 and kept[0].startswith("digits_lt-if10-small_cnn-focal-b0.999-g1-s1-")
    assert kept[1].startswith("digits_lt-if10-small_cnn-softmax-b0-s0-")
    assert all((tmp_path / "kept" / k / "metrics.json").is_file() for k in kept)
    assert all((tmp_path / "kept" / k / "predictions_last.npz").is_file() for k in kept)
    assert not list((tmp_path / "kept").rglob("*.pt"))  # summaries only
    order = [line for line in first.stdout.splitlines() if line.startswith("[queue]") and "finished" in line]
    assert [line.split(":")[0] for line in order] == ["[queue] line 2", "[queue] line 4"]

    again = run_queue(tmp_path, queue, "--dry-run")  # what is committed is never trained again
    assert again.returncode == 0, again.stderr
    assert "line 2: done" in again.stdout and "line 4: done" in again.stdout and "line 3: to train" in again.stdout


def test_a_line_stopped_by_sigterm_stops_the_queue_and_a_rerun_continues_it(tmp_path, monkeypatch):
    queue = "loss=softmax seed=0\nloss=softmax seed=1\n"
    monkeypatch.setenv("CBL_KILL_AT", "epoch:1:TERM")  # the first line's run gets SIGTERM after its first epoch
    stopped = run_queue(tmp_path, queue)
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    assert stopped.stderr.strip().splitlines()[-1] == ("run_queue.py: stopped at line 1 (exit status 143); run the "
                                                       "queue again to continue where it stopped")
    assert "[queue] line 2" not in stopped.stdout and not (tmp_path / "kept").exists()
    monkeypatch.delenv("CBL_KILL_AT")
    again = run_queue(tmp_path, queue)
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(list((tmp_path / "kept").iterdir())) == 2


def test_a_line_hydra_cannot_compose_is_one_error_naming_the_line_and_nothing_trains(tmp_path):
    result = run_queue(tmp_path, "loss=softmax\nloss=nonesuch\n")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("run_queue.py: error: ") and "queue.txt:2: loss=nonesuch" in line
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "kept").exists()


def test_the_committed_evidence_queue_composes_and_each_line_names_runs_of_its_own():
    """benchmarks/evidence_queue.txt (make evidence-queue): every line composes with the evidence sweep, and no two
    lines name the same run (a duplicated line would be skipped silently as already done)."""
    from cbl.commands.run_queue import read_queue

    entries = read_queue(ROOT / "benchmarks" / "evidence_queue.txt", ["sweep=evidence_lossy"])
    names = [name for entry in entries for name in entry.names]
    assert len(entries) >= 10 and all(len(entry.names) == 1 for entry in entries)
    assert len(names) == len(set(names)) and all(name.startswith("cifar10_lt-if") for name in names)
