"""Distributed data parallel: the global-batch contract, rank-0-only outputs, resume under torchrun,
the launch checks, and the mapping of submitit / SLURM tasks to torch's environment variables.

The end-to-end tests run `torchrun --standalone --nproc_per_node=2 -m cbl.train` on CPU (gloo) with the digits
demo.  The exact-equality test uses `model.norm=none`: with BatchNorm each process normalises its own half of
the batch, so only a model without batch statistics can match the single-process run (SyncBatchNorm, which
would restore it, runs on CUDA only).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from cbl.training.config import ConfigError
from cbl.data.epoch import loss_scale, num_batches, rank_slice
from cbl.data.tensor_loader import TensorLoader
from cbl.models import build_model
from cbl.training.predictions import load_predictions
from cbl.training.checkpoint import list_checkpoints, load_latest_checkpoint
from cbl.training.distributed import DistEnv, export_submitit_env, process_rank, resolve_device
from cbl.training.run import check_distributed
from tests.train_utils import compose_cfg, demo_overrides, read_history, read_metrics, run_cli, run_torchrun

TORCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
# 403 training images (n_max=100): batch 64 leaves a last batch of 19, split 10 / 9 over two processes
UNEVEN = ["dataset.n_max=100", "optim.lr=0.5"]
RUN_FILES = {".hydra", "checkpoints", "config.yaml", "metrics.json", "metrics.jsonl", "predictions_last.npz", "train.log",
             "train.rank1.log"}


def ddp_args(tmp_path: Path, *extra: str, epochs: int = 3) -> list[str]:
    return [*demo_overrides(epochs=epochs), "deterministic=true", "device=cpu", *extra, f"output_dir={tmp_path}"]


def only_run_dir(output_dir: Path) -> Path:
    (run_dir,) = [p for p in (output_dir / "demo").iterdir() if p.is_dir() and not p.name.startswith(".")]
    return run_dir


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_latest_checkpoint(run_dir)["model"]


# ----------------------------------------------------------------------------- the global-batch contract
def test_loss_scale_makes_the_averaged_gradient_that_of_the_global_batch():
    torch.manual_seed(0)
    n, batch, world = 19, 8, 2  # the last batch (3 samples) splits 2 / 1
    x, y = torch.randn(n, 5), torch.randint(0, 3, (n,))
    model = torch.nn.Linear(5, 3)

    def grad(idx, scale=1.0):
        model.zero_grad()
        (torch.nn.functional.cross_entropy(model(x[idx]), y[idx]) * scale).backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    assert num_batches(n, batch, train=True, drop_last=False, world_size=world) == 3
    for k in range(3):
        whole = grad(torch.arange(k * batch, min((k + 1) * batch, n)))
        shards = [torch.arange(n)[rank_slice(k, n, batch, r, world)] for r in range(world)]
        scales = [loss_scale(k, n, batch, r, world) for r in range(world)]
        ddp = sum(grad(idx, s) for idx, s in zip(shards, scales)) / world  # DDP averages the ranks' gradients
        torch.testing.assert_close(ddp, whole, rtol=1e-6, atol=1e-7)
        assert scales == ([1.0, 1.0] if k < 2 else [4 / 3, 2 / 3])
    assert loss_scale(0, 403, 64, 0, 1) == 1.0 and loss_scale(6, 403, 64, 1, 2) == 18 / 19


def test_eval_batches_need_not_divide_by_the_world_size_but_training_batches_must():
    images, labels = torch.zeros(250, 1, 8, 8, dtype=torch.uint8), torch.arange(250)
    shards = [TensorLoader(images, labels, 100, train=False, rank=r, world_size=8) for r in range(8)]
    seen = torch.cat([y for loader in shards for _, y in loader])
    assert sorted(seen.tolist()) == list(range(250))  # every test image once: 100 on 8 GPUs is fine
    with pytest.raises(ValueError, match="batch_size 100 is the global batch and must be divisible by world_size 8"):
        TensorLoader(images, labels, 100, train=True, rank=0, world_size=8)


def test_launch_checks_refuse_an_indivisible_global_batch_and_sync_bn_off_cuda():
    cpu = torch.device("cpu")
    cfg = compose_cfg(*demo_overrides(), "optim.batch_size=63")
    with pytest.raises(ConfigError, match=r"optim.batch_size=63 is not allowed: it is the global batch and must be "
                                          r"divisible by the number of processes \(2\)"):
        check_distributed(cfg, DistEnv(rank=0, world_size=2, local_rank=0, device=cpu))
    check_distributed(cfg, DistEnv(rank=0, world_size=1, local_rank=0, device=cpu))
    sync = compose_cfg(*demo_overrides(), "distributed.sync_bn=true")
    with pytest.raises(ConfigError, match="distributed.sync_bn=true is not allowed on device cpu: torch's "
                                          "SyncBatchNorm runs on CUDA only"):
        check_distributed(sync, DistEnv(rank=1, world_size=2, local_rank=1, device=cpu))
    check_distributed(sync, DistEnv(rank=0, world_size=1, local_rank=0, device=cpu))  # one process: nothing to sync


def test_small_cnn_without_norm_has_no_batch_statistics():
    model = build_model("small_cnn", 10, in_channels=1, norm="none")
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    x = torch.randn(6, 1, 8, 8)
    torch.testing.assert_close(model(x)[:3], model(x[:3]))  # a sample's output does not depend on its batch
    with pytest.raises(ValueError, match="norm must be one of batch, none; got 'group'"):
        build_model("small_cnn", 10, norm="group")


# ----------------------------------------------------------------------------- launchers -> torch env vars
@pytest.fixture
def clean_env(monkeypatch):
    """No launcher variables; whatever a test (or export) sets is removed again afterwards."""
    for key in (*TORCH_VARS, "SUBMITIT_EXECUTOR", "SLURM_JOB_ID", "SLURM_NTASKS", "SLURM_JOB_NUM_NODES", "SLURM_NODEID",
                "SLURM_PROCID", "SLURM_LOCALID", "SLURM_JOB_NODELIST", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.setenv(key, "")  # recorded, so that teardown restores the key (absent) even after export
        monkeypatch.delenv(key)
    return monkeypatch


def fake_slurm_task(env, procid: int, ntasks: int = 16, nodes: int = 2, array_task: str | None = None):
    env.setenv("SLURM_JOB_ID", "4242")
    env.setenv("SLURM_NTASKS", str(ntasks))
    env.setenv("SLURM_JOB_NUM_NODES", str(nodes))
    env.setenv("SLURM_NODEID", str(procid // (ntasks // nodes)))
    env.setenv("SLURM_PROCID", str(procid))
    env.setenv("SLURM_LOCALID", str(procid % (ntasks // nodes)))
    env.setenv("SLURM_JOB_NODELIST", "gpu-[07-08]")
    if array_task is not None:
        env.setenv("SLURM_ARRAY_JOB_ID", "4200")
        env.setenv("SLURM_ARRAY_TASK_ID", array_task)


def test_submitit_slurm_task_exports_what_torchrun_would_set(clean_env):
    clean_env.setenv("SUBMITIT_EXECUTOR", "slurm")  # set by the sbatch script submitit writes
    fake_slurm_task(clean_env, procid=11, array_task="3")
    assert process_rank() == 11  # what the Hydra resolvers see before the job starts
    assert export_submitit_env()
    assert {k: os.environ[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR")} == {
        "RANK": "11", "WORLD_SIZE": "16", "LOCAL_RANK": "3", "LOCAL_WORLD_SIZE": "8", "MASTER_ADDR": "gpu-07"}
    port = int(os.environ["MASTER_PORT"])
    assert 20000 <= port <= 60000
    # every task of the job agrees on the port (seeded by the job id); another array task gets its own
    for key in TORCH_VARS:
        clean_env.delenv(key)
    fake_slurm_task(clean_env, procid=0, array_task="3")
    export_submitit_env()
    assert int(os.environ["MASTER_PORT"]) == port and os.environ["RANK"] == "0"
    for key in TORCH_VARS:
        clean_env.delenv(key)
    fake_slurm_task(clean_env, procid=0, array_task="4")
    export_submitit_env()
    assert int(os.environ["MASTER_PORT"]) != port


def test_only_multi_task_submitit_jobs_are_mapped(clean_env):
    fake_slurm_task(clean_env, procid=5)  # bare SLURM variables: an sbatch script running python once
    assert process_rank() == 0 and not export_submitit_env() and "RANK" not in os.environ
    clean_env.setenv("SUBMITIT_EXECUTOR", "slurm")
    fake_slurm_task(clean_env, procid=0, ntasks=1, nodes=1)  # a one-GPU submitit job: a single process
    assert not export_submitit_env() and "RANK" not in os.environ
    fake_slurm_task(clean_env, procid=5)
    clean_env.setenv("RANK", "2")  # torchrun inside the job: its variables win
    assert process_rank() == 2 and not export_submitit_env() and os.environ.get("WORLD_SIZE") is None


def test_hydra_outputs_of_ranks_above_zero(clean_env):
    """configs/train.yaml: rank 0 writes .hydra/ and train.log; rank r writes no .hydra/, logs to train.rank<r>.log
    and prints warnings only (Hydra resolves these in every process of a torchrun / submitit job)."""
    raw = OmegaConf.load(Path(__file__).resolve().parents[1] / "configs" / "train.yaml").hydra
    raw.runtime = {"output_dir": "/runs/x"}
    raw.job.name = "train"

    def outputs():
        return (raw.output_subdir, raw.job_logging.handlers.file.filename, raw.job_logging.handlers.console.level,
                raw.hydra_logging.root.level)

    assert outputs() == (".hydra", "/runs/x/train.log", "INFO", "INFO")
    clean_env.setenv("RANK", "3")
    assert outputs() == (None, "/runs/x/train.rank3.log", "WARNING", "WARNING")
    clean_env.setenv("RANK", "0")
    assert outputs()[:2] == (".hydra", "/runs/x/train.log")


def test_auto_device_spreads_sweep_jobs_over_the_visible_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    assert [resolve_device("auto", job_num=j).index for j in (0, 7, 8, 13)] == [0, 7, 0, 5]
    assert resolve_device("auto", local_rank=3) == torch.device("cuda:3")  # torchrun: GPU LOCAL_RANK
    assert resolve_device("cuda:2", job_num=5) == torch.device("cuda:2")  # an explicit choice wins
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto", job_num=3) == torch.device("cpu")


# ----------------------------------------------------------------------------- torchrun, end to end
def test_two_processes_equal_one_process_on_the_same_global_batch(tmp_path):
    """norm=none and 403 images: the last batch of every epoch splits 10 / 9, so the rescaled loss is exercised."""
    single = run_cli(ddp_args(tmp_path / "one", "model.norm=none", *UNEVEN), cwd=tmp_path)
    assert single.returncode == 0, single.stderr
    ddp = run_torchrun(ddp_args(tmp_path / "two", "model.norm=none", *UNEVEN), cwd=tmp_path)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one, two = only_run_dir(tmp_path / "one"), only_run_dir(tmp_path / "two")
    assert one.name == two.name  # the number of processes is not part of the run's identity

    m1, m2 = read_metrics(one), read_metrics(two)
    assert (m1["world_size"], m2["world_size"], m2["status"]) == (1, 2, "finished")
    # the same model up to float rounding: at most one of the 500 test images may flip (0.2 %, 2 % of a class)
    for key in ("top1_err", "top5_err", "best_top1_err"):
        assert m2[key] == pytest.approx(m1[key], abs=0.2 + 1e-9), key
    assert m2["per_class_acc"] == pytest.approx(m1["per_class_acc"], abs=2.0 + 1e-9)
    h1, h2 = read_history(one), read_history(two)
    assert [r["lr"] for r in h2] == [r["lr"] for r in h1]
    assert [r["train_loss"] for r in h2] == pytest.approx([r["train_loss"] for r in h1], rel=1e-5)
    w1, w2 = final_weights(one), final_weights(two)
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], rtol=1e-5, atol=1e-5, msg=name)
    # the ranks' predictions are put back in test-set order: row by row the single process's, up to rounding
    p1, p2 = load_predictions(one / "predictions_last.npz"), load_predictions(two / "predictions_last.npz")
    assert np.array_equal(p2["labels"], p1["labels"])
    np.testing.assert_allclose(p2["logits"], p1["logits"], rtol=1e-4, atol=1e-4)
    assert m2["ece"] == pytest.approx(m1["ece"], abs=0.5) and m2["nll"] == pytest.approx(m1["nll"], rel=1e-3)

    # rank 0 alone writes the run's files; every rank has its own log file
    assert {p.name for p in two.iterdir()} == RUN_FILES
    assert {p.name for p in (two / ".hydra").iterdir()} == {"config.yaml", "hydra.yaml", "overrides.yaml"}
    for log in ("train.log", "train.rank1.log"):
        assert (two / log).read_text().count("epoch 3/3 |") == 1, log
    assert ddp.stdout.count("epoch 3/3 |") == 1  # rank 1 prints warnings only


def test_sync_bn_on_cpu_fails_before_training_with_one_line(tmp_path):
    proc = run_torchrun(ddp_args(tmp_path, "distributed.sync_bn=true"), cwd=tmp_path)
    assert proc.returncode != 0
    message = ("error: distributed.sync_bn=true is not allowed on device cpu: torch's SyncBatchNorm runs on "
               "CUDA only; use GPUs or distributed.sync_bn=false (per-process BatchNorm)")
    # each rank prints it once; the two ranks share stderr, so their lines may interleave: count, not split. On a
    # busy machine torchrun may stop the second rank (the first one failed) before it gets to print
    assert proc.stderr.count("error: ") == proc.stderr.count(message) in (1, 2)
    # refused before it started: every rank takes its part of the folder Hydra made (.hydra/, its own log) away
    assert not (tmp_path / "demo").exists(), sorted((tmp_path / "demo").rglob("*"))


@pytest.mark.slow
def test_batchnorm_ddp_run_killed_on_rank_0_resumes_to_the_uninterrupted_result(tmp_path):
    """SIGKILL rank 0 after epoch 1's checkpoint: torchrun takes the group down; resume=true finishes the run."""
    full = run_torchrun(ddp_args(tmp_path / "full", "wandb.mode=offline"), cwd=tmp_path)
    assert full.returncode == 0, full.stderr[-3000:]
    full_dir = only_run_dir(tmp_path / "full")
    assert {p.name for p in full_dir.iterdir()} == RUN_FILES | {"wandb"}
    assert len(list((full_dir / "wandb").glob("offline-run-*"))) == 1  # one wandb run, from rank 0

    killed = run_torchrun(ddp_args(tmp_path / "cut"), cwd=tmp_path, env={"CBL_KILL_AT": "epoch:1"})
    assert killed.returncode != 0 and "SIGKILL" in killed.stderr
    run_dir = only_run_dir(tmp_path / "cut")
    assert [e for e, _ in list_checkpoints(run_dir)] == [1] and not (run_dir / "metrics.json").exists()
    assert [r["epoch"] for r in read_history(run_dir)] == [1]

    resumed = run_torchrun(ddp_args(tmp_path / "cut", "resume=true"), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in (run_dir / "train.log").read_text() and "resuming" in (run_dir / "train.rank1.log").read_text()

    a, b = read_metrics(full_dir), read_metrics(run_dir)
    for key in ("top1_err", "top5_err", "best_top1_err", "per_class_acc", "world_size"):
        assert b[key] == a[key], key
    assert read_history(run_dir) == [dict(r, seconds=s["seconds"]) for r, s in
                                     zip(read_history(full_dir), read_history(run_dir))]
    wa, wb = final_weights(full_dir), final_weights(run_dir)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert b["status"] == "finished"
