"""scripts/sweep_summary.py: counts, the runs that need attention, and the exit status."""

import os
import time

import pytest

from tests.runfactory import load_script, run_script, write_history, write_run

sweep_summary = load_script("sweep_summary")


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "table2"
    for i in range(3):
        write_run(root / str(i), seed=i)
    write_run(root / "3", status="failed", error="non-finite loss at epoch 3 step 17", loss="focal", beta=0.9999, gamma=2.0, epochs=4)
    write_history(root / "4", 143, truncated_tail=True)
    hydra = root / "4" / ".hydra"
    hydra.mkdir()
    (hydra / "overrides.yaml").write_text("- loss=focal\n- loss.beta=0.999\n- seed=2\n")
    two_hours_ago = time.time() - 2 * 3600
    os.utime(root / "4" / "metrics.jsonl", (two_hours_ago, two_hours_ago))
    return root


def test_counts_failed_and_incomplete_runs(sweep, capsys):
    assert sweep_summary.main([str(sweep)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{sweep}: 5 runs: 3 finished, 1 failed, 1 incomplete"
    assert "  3: non-finite loss at epoch 3 step 17 (after epoch 3)" in out
    assert "      cifar10_lt IF 100 resnet32 focal beta=0.9999 gamma=2 [epochs=4] seed 0" in out
    assert "  4: last epoch 143, last written 2 h ago" in out
    assert "      overrides: loss=focal loss.beta=0.999 seed=2" in out


def test_an_interrupted_run_says_how_it_stopped(tmp_path, capsys):
    write_run(tmp_path / "stopped", status="interrupted", error="stopped by SIGTERM; resume=true goes on from its newest "
              "checkpoint (from the start if none was written)", epochs=4)  # fmt: skip
    assert sweep_summary.main([str(tmp_path)]) == 1
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("  stopped: ")]
    assert line.startswith("  stopped: last epoch 3, last written ")
    assert line.endswith("; stopped by SIGTERM; resume=true goes on from its newest checkpoint (from the start if none "
                         "was written)")


def test_exit_status_0_when_all_finished_and_2_on_errors(tmp_path):
    for i in range(2):
        write_run(tmp_path / "ok" / str(i), seed=i)
    p = run_script("sweep_summary", str(tmp_path / "ok"))
    assert p.returncode == 0 and p.stdout.strip() == f"{tmp_path / 'ok'}: 2 runs: 2 finished, 0 failed, 0 incomplete"
    (tmp_path / "empty").mkdir()
    p = run_script("sweep_summary", str(tmp_path / "empty"))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "no run directories" in p.stderr
    write_history(tmp_path / "ok" / "2", 3)
    assert run_script("sweep_summary", str(tmp_path / "ok")).returncode == 1


def test_one_sweep_across_the_group_folders_its_runs_landed_in(tmp_path, capsys):
    """--sweep picks one multirun's runs by their names, in whichever group folder each landed (a shortened recipe
    sends them to outputs/runs); folders holding none of them, or missing, are fine."""
    from cbl.training.overrides import sweep_runs

    sweep = "sweep=methods_demo optim.epochs=2"
    names = sorted(sweep_runs(sweep.split()))
    for name in names[:3]:
        write_run(tmp_path / "runs" / name)
    write_run(tmp_path / "runs" / "another-run", seed=5)  # not of this sweep: not counted
    write_history(tmp_path / "methods" / names[3], 1)
    roots = [str(tmp_path / d) for d in ("table2", "methods", "runs")]
    assert sweep_summary.main([*roots, "--sweep", sweep]) == 1
    out = capsys.readouterr().out
    assert f"{tmp_path / 'runs'}: 3 runs: 3 finished, 0 failed, 0 incomplete" in out
    assert f"{tmp_path / 'methods'}: 1 run: 0 finished, 0 failed, 1 incomplete" in out and "table2" not in out
    # the jobs without any folder are named: refused before they started, or not launched yet
    assert len(names) > 4 and f"not started ({len(names) - 4}): jobs of the sweep without a run folder" in out
    assert out.rstrip().endswith("\n".join(f"  {name}" for name in names[4:]))
    p = run_script("sweep_summary", *roots, "--sweep", "sweep=methods_demo seed=7")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "no run of --sweep" in p.stderr
    assert f"none of its {len(names)} job(s) has a run folder" in p.stderr
