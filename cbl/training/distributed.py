"""Process-group setup for DistributedDataParallel, and the device choice.

Launchers.  The run learns its rank from the environment, in this order:
* `torchrun --nproc_per_node=N -m cbl.train ...` (also inside a SLURM job) sets RANK / WORLD_SIZE /
  LOCAL_RANK / MASTER_ADDR / MASTER_PORT;
* a submitit job with several tasks (hydra/launcher=slurm_ddp, or submitit_local with tasks_per_node > 1)
  sets none of them; submitit's own `TorchDistributedEnvironment` exports them from its job environment
  (SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID and the first host of the node list on SLURM);
* anything else is a single process.
Only submitit jobs are mapped, never bare SLURM_* variables: a `python -m cbl.train` line in an sbatch
script with --ntasks=8 runs once, and must not wait for 7 peers that will never come.

The global batch (optim.batch_size) is split across the N processes and gradients are averaged by DDP, so
a run on N processes follows the same optimisation as one process on the global batch (the losses divide
by the local batch size, and the mean over processes of local means is the global mean; an unevenly split
last batch is rescaled, see cbl/data/epoch.py).  Rank 0 alone writes files and talks to wandb.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

DEVICE_HELP = "auto, cpu, cuda or cuda:<index>"


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0, job_num: int | None = None) -> torch.device:
    """'auto' picks CUDA when available; under torchrun each process takes GPU `local_rank`.

    `job_num` (Hydra's job number in a multirun, single-process runs only): 'auto' then spreads the jobs of a
    sweep round-robin over the visible GPUs, so `hydra/launcher=joblib hydra.launcher.n_jobs=16` on an 8-GPU
    node runs two jobs per GPU.  With one visible GPU (a SLURM job, CUDA_VISIBLE_DEVICES=k) it is GPU 0."""
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        if job_num is not None:
            return torch.device(f"cuda:{job_num % torch.cuda.device_count()}")
        name = "cuda"
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device={name!r} but CUDA is not available on this machine; use device=cpu or auto")
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    raise ValueError(f"device must be one of {DEVICE_HELP}; got {name!r}")


def _submitit_job_env():
    """submitit's JobEnvironment when this process is a task of a submitit job, else None."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    import submitit  # a dependency through hydra-submitit-launcher; imported only inside its jobs

    try:
        return submitit.JobEnvironment()
    except RuntimeError:  # not actually inside a job
        return None


def process_rank() -> int:
    """This process's global rank as the launcher set it (0 for a single process); see the module docstring.
    Also used by the Hydra resolvers that keep ranks > 0 from writing .hydra/ and from sharing train.log."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    job = _submitit_job_env()
    return job.global_rank if job is not None and job.num_tasks > 1 else 0


def export_submitit_env() -> bool:
    """In a submitit job with several tasks and no RANK set, export RANK / WORLD_SIZE / LOCAL_RANK /
    MASTER_ADDR / MASTER_PORT with submitit's TorchDistributedEnvironment (every task gets GPU LOCAL_RANK by
    `resolve_device`, so CUDA_VISIBLE_DEVICES is left alone).  Returns whether it exported."""
    if "RANK" in os.environ:
        return False
    job = _submitit_job_env()
    if job is None or job.num_tasks <= 1:
        return False
    from submitit.helpers import TorchDistributedEnvironment

    TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    return True


def setup_distributed(device: str = "auto", backend: str = "auto", job_num: int | None = None) -> DistEnv:
    """Read (or, in a submitit job, export) the launcher's variables, pick the device, join the process group.
    `job_num`: see `resolve_device`; ignored when there are several processes (they take GPU LOCAL_RANK)."""
    export_submitit_env()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank, job_num if world_size == 1 else None)
    if world_size > 1 and not dist.is_initialized():
        if backend == "auto":
            backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        # One group for the life of the process, destroyed at exit: the jobs of a multirun under torchrun
        # (`torchrun ... -m cbl.train -m ...`) run one after the other in the same processes, and a group
        # destroyed and re-created under the same name finds the old group's addresses in torchrun's store
        # (gloo: "connectFullMesh failed ... Connection refused").
        atexit.register(cleanup_distributed)
    return DistEnv(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def cleanup_distributed() -> None:
    """Leave the process group (registered with atexit by `setup_distributed`)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean over processes of a tensor (a new tensor); the tensor itself when not distributed.  SUM then divide:
    gloo has no AVG."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.div_(dist.get_world_size())


def broadcast_object(obj, src: int = 0):
    """Send a picklable object from rank `src` to every rank (identity when not distributed)."""
    if not dist.is_initialized():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]
