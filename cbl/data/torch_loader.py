"""The plain `torch.utils.data` path: per-image torchvision transforms in DataLoader workers.

Used for the large-scale datasets (JPEG files) and, for CIFAR, as the "standard recipe" the tensor path is
benchmarked against.  It has TensorLoader's interface and the same epoch plan (epoch.py): the same order
for a given (seed, epoch) -- "shuffled" or the authors' stream --, GLOBAL `batch_size`, rank r taking
positions r::R of every global batch.

Reproducible augmentation: at `set_epoch` every position of the epoch also gets a 63-bit seed drawn from
the (seed, epoch) generator, and the torch CPU generator is re-seeded with it around that sample's
transform (torchvision's random transforms draw from it).  Augmentation is then a pure function of
(seed, epoch, position), whatever `num_workers` is, and identical under DDP sharding.  We use our own batch
sampler rather than DistributedSampler because the latter pads the evaluation set with repeated examples
(so some test images would count twice) and seeds with seed + epoch, which collides across runs.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from cbl.data.arrays import check_images
from cbl.data.epoch import (authors_stream, check_nonneg_int, check_sharding, class_aware_sampling, epoch_generator,
                            epoch_order, loss_scale, num_batches, rank_slice)
from cbl.data.images import DamagedImageError, unwrap_worker_error


class ArrayDataset(Dataset):
    """uint8 images [N, H, W, C] + labels as a Dataset of (transform(CHW uint8 tensor), int label)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform=None) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(check_images("images", images))).permute(0, 3, 1, 2)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        x = self.images[i]
        return (self.transform(x) if self.transform is not None else x), int(self.labels[i])


class _Seeded(Dataset):
    """Wraps a dataset: item (index, seed) is dataset[index] computed with the CPU generator seeded by seed."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        index, seed = key
        if seed is None:
            return self.dataset[index]
        # only the CPU generator: torch.manual_seed would also re-seed every CUDA device of the main process
        state = torch.default_generator.get_state()
        torch.default_generator.manual_seed(seed)
        try:
            return self.dataset[index]
        finally:
            torch.default_generator.set_state(state)


class EpochBatchSampler(Sampler):
    """Yields this rank's [(index, sample_seed), ...] for every global batch of the epoch (see epoch.py)."""

    def __init__(self, n: int, batch_size: int, *, train: bool, seed: int, drop_last: bool, rank: int, world_size: int,
                 sampler: str = "instance", labels=None, order: str = "shuffled", records=None) -> None:
        self.n, self.train, self.drop_last = int(n), bool(train), bool(drop_last)
        self.batch_size, self.rank, self.world_size = check_sharding(batch_size, rank, world_size, train=train)
        self.seed = check_nonneg_int("seed", seed)
        self.sampling = class_aware_sampling(labels, sampler) if self.train else None
        if self.sampling is not None and len(self.sampling.members) != self.n:
            raise ValueError(f"labels has {len(self.sampling.members)} entries but the dataset has {self.n} samples")
        self.stream = authors_stream(order, sampler, self.n, self.batch_size, labels, records) if self.train else None
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = check_nonneg_int("epoch", epoch)
        if self.train:
            g = epoch_generator(self.seed, self.epoch)
            if self.stream is not None:  # the authors' stream (epoch.py), from its own generator
                self.order = self.stream.epoch_order(self.seed, self.epoch).tolist()
            else:
                self.order = epoch_order(self.n, g, self.sampling).tolist()
            self.sample_seeds = torch.randint(0, 2**63 - 1, (self.n,), generator=g).tolist()
        else:
            self.order, self.sample_seeds = list(range(self.n)), [None] * self.n

    def __len__(self) -> int:
        return num_batches(self.n, self.batch_size, train=self.train, drop_last=self.drop_last, rank=self.rank, world_size=self.world_size)

    def __iter__(self) -> Iterator[list]:
        for k in range(len(self)):
            s = rank_slice(k, self.n, self.batch_size, self.rank, self.world_size)
            yield list(zip(self.order[s], self.sample_seeds[s]))


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker from the loader's generator; give numpy / random (third-party transforms) the same
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


class TorchLoader:
    """DataLoader over `dataset` (items (x, label)) with TensorLoader's interface: set_epoch, len, (x, y) on device."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        train: bool,
        seed: int = 0,
        device: str | torch.device = "cpu",
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        persistent_workers: bool = False,
        prefetch_factor: int | None = None,
        channels_last: bool = False,
        sampler: str = "instance",
        labels=None,
        order: str = "shuffled",
        records=None,
    ) -> None:
        """`sampler` (training only): "instance" (a permutation), "class_balanced" or "sqrt" (epoch.py), which
        need `labels`, the class of every dataset item.  `order` (training only): "shuffled", or
        "authors_stream", the authors' TF stream over `records` (default: `labels` as one class-sorted file)."""
        self.device = torch.device(device)
        self.channels_last = bool(channels_last)
        self.num_samples = len(dataset)
        self.sampler = EpochBatchSampler(
            len(dataset), batch_size, train=train, seed=seed, drop_last=drop_last, rank=rank, world_size=world_size,
            sampler=sampler, labels=labels, order=order, records=records,
        )
        num_workers = check_nonneg_int("num_workers", num_workers)
        self.loader = DataLoader(
            _Seeded(dataset),
            batch_sampler=self.sampler,
            num_workers=num_workers,
            pin_memory=self.device.type == "cuda" if pin_memory is None else bool(pin_memory),
            persistent_workers=bool(persistent_workers) and num_workers > 0,
            prefetch_factor=prefetch_factor if num_workers > 0 else None,
            worker_init_fn=_seed_worker,
            generator=torch.Generator(),
        )
        self.set_epoch(0)

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        # the loader draws the workers' base seed (numpy / random there) from this: make it a function of the epoch too
        self.loader.generator.manual_seed(epoch_generator(self.sampler.seed, self.sampler.epoch).initial_seed())

    def __len__(self) -> int:
        return len(self.sampler)

    def loss_scale(self, k: int) -> float:
        """Factor for this rank's mean loss on batch k (1.0 unless the last batch splits unevenly; see epoch.py)."""
        s = self.sampler
        return loss_scale(k, s.n, s.batch_size, s.rank, s.world_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        batches = iter(self.loader)
        while True:
            try:
                x, y = next(batches)
            except StopIteration:
                return
            except DamagedImageError as e:  # from a worker: its traceback wraps the one line naming the file
                raise unwrap_worker_error(e) from None
            x = x.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y.to(self.device, non_blocking=True)
