"""Process-group setup for `torchrun` (DistributedDataParallel) and the device choice.

`torchrun --nproc_per_node=N -m cbl.train ...` sets RANK / WORLD_SIZE / LOCAL_RANK; without them the run is a
single process.  The global batch (optim.batch_size) is split across the N processes and gradients are
averaged by DDP, so a run on N processes follows the same optimisation as one process on the global batch
(the losses divide by the local batch size, and the mean over processes of local means is the global mean).
Rank 0 alone writes files and talks to wandb.
"""

from __future__ import annotations

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


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' picks CUDA when available; under torchrun each process takes GPU `local_rank`."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device={name!r} but CUDA is not available on this machine; use device=cpu or auto")
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    raise ValueError(f"device must be one of {DEVICE_HELP}; got {name!r}")


def setup_distributed(device: str = "auto", backend: str = "auto") -> DistEnv:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if backend == "auto":
            backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistEnv(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def cleanup_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def broadcast_object(obj, src: int = 0):
    """Send a picklable object from rank `src` to every rank (identity when not distributed)."""
    if not dist.is_initialized():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]
