"""A loader that keeps a small uint8 dataset as one tensor on the device and augments with batched tensor ops.

Training augmentation is the standard CIFAR recipe of the paper (He et al.; Cui et al. Sec. 5.1): zero-pad
4 pixels on every side, take a random 32x32 crop (offset uniform in {0..2*pad} on each axis, independently),
flip horizontally with probability 0.5 -- the same distribution as torchvision's
`RandomCrop(32, padding=4)` + `RandomHorizontalFlip()` (padding fill 0, applied to the uint8 image before
normalisation, like the authors' TF code).  Normalisation is `(x - mean) / std` per channel with mean/std in
uint8 units; the CIFAR default mean = std = 128 is the authors' `x / 128 - 1`.

Reproducibility: the epoch order and every sample's crop/flip are drawn at `set_epoch(e)` from the CPU
generator of (seed, e) (see epoch.py), indexed by position in the epoch.  So an epoch is a pure function of
(seed, epoch), a resumed run replays exactly, and under DDP each rank augments its samples exactly as a
single process would.  `batch_size` is the GLOBAL batch; each rank yields its shard of every global batch.
`sampler` picks the training order (epoch.py): a permutation ("instance") or class-aware draws; `order`
"authors_stream" replaces the permutation by the authors' TF shuffle-buffer stream over `records` (epoch.py).

The crop and flip are one gather: the padded dataset is stored once, and output pixel (i, j) of a sample
at offset (dy, dx) reads padded row dy + i and column dx + j (dx + W-1-j when flipped).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from cbl.data.epoch import (authors_stream, check_nonneg_int, check_sharding, class_aware_sampling, epoch_generator,
                            epoch_order, loss_scale, num_batches, rank_slice)


def to_nchw_uint8(images) -> Tensor:
    """uint8 images as an NCHW tensor; NHWC input (channels = 1 or 3 in the last axis) is transposed."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, Tensor) else images)
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise ValueError(f"images must be a uint8 tensor [N, H, W, C] or [N, C, H, W]; got dtype {x.dtype}, shape {tuple(x.shape)}")
    nhwc, nchw = x.shape[-1] in (1, 3), x.shape[1] in (1, 3)
    if nhwc == nchw:
        raise ValueError(f"cannot tell channels from shape {tuple(x.shape)}: need C in (1, 3) in exactly one of axes 1 and 3")
    return x.permute(0, 3, 1, 2) if nhwc else x


def channel_stats(values, channels: int, name: str) -> Tensor:
    v = torch.as_tensor(values, dtype=torch.float32).flatten()
    if v.numel() == 1:
        v = v.expand(channels)
    if v.numel() != channels or not torch.isfinite(v).all():
        raise ValueError(f"{name} must be one finite number or one per channel ({channels}); got {values!r}")
    if name == "std" and (v <= 0).any():
        raise ValueError(f"std must be > 0 for every channel; got {values!r}")
    return v.clone()


class TensorLoader:
    """Iterable of (x float32 [b, C, H, W] normalised, y int64 [b], or float32 [b, K] for multi-hot labels) on
    `device`; see the module docstring."""

    def __init__(
        self,
        images,
        labels,
        batch_size: int,
        *,
        train: bool,
        mean: float | Sequence[float] = 128.0,
        std: float | Sequence[float] = 128.0,
        pad: int = 4,
        flip: bool = True,
        seed: int = 0,
        device: str | torch.device = "cpu",
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = False,
        sampler: str = "instance",
        order: str = "shuffled",
        records=None,
    ) -> None:
        self.batch_size, self.rank, self.world_size = check_sharding(batch_size, rank, world_size, train=train)
        self.train, self.drop_last, self.channels_last = bool(train), bool(drop_last), bool(channels_last)
        self.seed = check_nonneg_int("seed", seed)
        self.pad = check_nonneg_int("pad", pad) if train else 0
        self.flip = bool(flip) and self.train
        self.device = torch.device(device)
        x = to_nchw_uint8(images)
        y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, Tensor) else labels)
        # [N, C] 0/1 rows: several labels per image (cbl/data/multilabel.py), yielded as float32 multi-hot targets
        multi_hot = y.dim() == 2 and len(y) == len(x) and bool(((y == 0) | (y == 1)).all())
        if not multi_hot and (y.dim() != 1 or len(y) != len(x) or y.is_floating_point() or y.dtype == torch.bool):
            raise ValueError(f"labels must be 1-D integers or [N, C] 0/1 rows, one per image ({len(x)}); got dtype "
                             f"{y.dtype}, shape {tuple(y.shape)}")
        self.num_samples, c, self.height, self.width = x.shape
        self.mean = channel_stats(mean, c, "mean").view(1, c, 1, 1).to(self.device)
        self.std = channel_stats(std, c, "std").view(1, c, 1, 1).to(self.device)
        p = self.pad
        # stored padded once (zeros = torchvision's default fill); an eval loader stores the images as they are
        self.images = torch.zeros((len(x), c, self.height + 2 * p, self.width + 2 * p), dtype=torch.uint8, device=self.device)
        self.images[:, :, p : p + self.height, p : p + self.width] = x.to(self.device)
        self.labels = y.to(device=self.device, dtype=torch.float32 if multi_hot else torch.int64)
        # sampler (training only): "instance" is a permutation per epoch; see epoch.py for the class-aware ones
        self.sampling = class_aware_sampling(y, sampler) if self.train else None
        # order (training only): "authors_stream" draws epochs from the authors' stream instead (epoch.py)
        self.stream = authors_stream(order, sampler, len(x), self.batch_size, y, records) if self.train else None
        self.set_epoch(0)

    def __len__(self) -> int:
        return num_batches(self.num_samples, self.batch_size, train=self.train, drop_last=self.drop_last, rank=self.rank, world_size=self.world_size)

    def loss_scale(self, k: int) -> float:
        """Factor for this rank's mean loss on batch k (1.0 unless the last batch splits unevenly; see epoch.py)."""
        return loss_scale(k, self.num_samples, self.batch_size, self.rank, self.world_size)

    def set_epoch(self, epoch: int) -> None:
        """Draw epoch `epoch`'s order and all its crop/flip parameters (position-indexed) from (seed, epoch)."""
        self.epoch = check_nonneg_int("epoch", epoch)
        n = self.num_samples
        if not self.train:
            self.order = torch.arange(n, device=self.device)
            return
        g = epoch_generator(self.seed, self.epoch)
        if self.stream is not None:  # the authors' stream: a function of (seed, 2-epoch chunk), own generator
            order = self.stream.epoch_order(self.seed, self.epoch)
        else:
            order = epoch_order(n, g, self.sampling)
        dy = torch.randint(0, 2 * self.pad + 1, (n,), generator=g)
        dx = torch.randint(0, 2 * self.pad + 1, (n,), generator=g)
        flip = torch.rand(n, generator=g) < 0.5 if self.flip else torch.zeros(n, dtype=torch.bool)
        self.order, self.dy, self.dx, self.flipped = (t.to(self.device) for t in (order, dy, dx, flip))

    def _gather(self, pos: Tensor, idx: Tensor) -> Tensor:
        """uint8 [b, C, H, W]: crop at (dy, dx) and optional flip of the padded images, as one flat gather."""
        _, c, hp, wp = self.images.shape
        h, w = self.height, self.width
        i = torch.arange(h, device=self.device)
        j = torch.arange(w, device=self.device)
        rows = self.dy[pos, None] + i  # [b, H]
        flipped = self.flipped[pos, None]
        cols = self.dx[pos, None] + torch.where(flipped, (w - 1) - j, j)  # [b, W]
        ch = torch.arange(c, device=self.device)
        flat = (
            (idx[:, None, None, None] * c + ch[None, :, None, None]) * (hp * wp)
            + rows[:, None, :, None] * wp
            + cols[:, None, None, :]
        )
        return self.images.view(-1)[flat]

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for k in range(len(self)):
            s = rank_slice(k, self.num_samples, self.batch_size, self.rank, self.world_size)
            pos = torch.arange(s.start, max(s.start, s.stop), s.step, device=self.device)
            idx = self.order[pos]
            x = self._gather(pos, idx) if self.train else self.images[idx]
            # the same two ops, in the same order, as torchvision's Normalize: results agree bit for bit
            x = x.to(torch.float32).sub_(self.mean).div_(self.std)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[idx]
