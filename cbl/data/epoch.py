"""The epoch plan shared by both loaders: order, batches and distributed shards as pure functions.

* Randomness of epoch e under training seed s comes from one CPU `torch.Generator` seeded with
  `SeedSequence([s, e])` (so (s, e) = (0, 1) and (1, 0) do not collide, as they would with s + e).  A CPU
  generator gives the same numbers on every machine and device; results are moved to the device after.
* The epoch order is `epoch_order(n, generator, sampling)`: a permutation of the N training samples
  (`sampler=instance`, the paper), or, for class-aware sampling (beyond the paper), N draws with replacement
  where sample i has probability p_i ∝ n_{y_i}**(q - 1), so class c is drawn with probability
  n_c**q / sum_k n_k**q: q = 1 instance-balanced (every sample equally likely), q = 0 class-balanced
  re-sampling (every class equally likely; the alternative Cui et al. argue against), q = 1/2 square-root
  sampling (Mahajan et al., ECCV 2018; Kang et al., ICLR 2020).  Each draw picks a class, then a member of it
  uniformly.  The epoch keeps N positions, so batches, sharding and augmentation below are unchanged.
* Batches are GLOBAL: batch k covers positions [k*B, (k+1)*B) of the epoch order, B = `batch_size`.
* With world_size R, rank r takes positions r, r+R, r+2R, ... of every global batch, so each rank gets
  B/R samples and the union over ranks of batch k is exactly the single-process batch k.  Every rank has
  the same number of batches (DDP needs the ranks in step).
* In training B must be divisible by R, so every full batch gives each rank B/R samples.  The last partial
  batch (n mod B samples) may still split unevenly (some ranks get one more); `loss_scale` gives the
  factor that makes DDP's average of the ranks' mean-loss gradients the gradient of the global-batch mean.
* Evaluation batches need not divide by R (eval_batch_size 100 on 8 GPUs is fine): ranks get 12 or 13.
* Training without drop_last keeps the last partial batch, except, under R > 1, when it has fewer than R
  samples (some rank would get an empty batch): then it is dropped on every rank, so all ranks keep the
  same number of batches.  Evaluation sees every sample exactly once, never pads or drops; a rank that
  has no sample in the last partial batch skips it (evaluation needs no lock-step between ranks).

This stands in for torch's DistributedSampler and keeps its contract -- `set_epoch(e)` before each epoch,
disjoint shards, every sample once per epoch over all ranks -- without its two problems here: it pads the
evaluation set with repeated images up to a multiple of R (test counts would be wrong), and it seeds the
shuffle with seed + epoch (runs with seeds 0 and 1 would share epoch orders).  Sharding each global batch,
rather than the epoch, also keeps every optimizer step's union of samples and their augmentation identical
to the single-process run, whatever R.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch


def check_nonneg_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 0:
        raise ValueError(f"{name} must be an integer >= 0; got {value!r}")
    return int(value)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """CPU generator for epoch `epoch` of a run with training seed `seed`."""
    s = np.random.SeedSequence([check_nonneg_int("seed", seed), check_nonneg_int("epoch", epoch)])
    return torch.Generator().manual_seed(int(s.generate_state(1, np.uint64)[0] >> np.uint64(1)))


#: sampler name -> q, the exponent of p(class c) ∝ n_c**q
SAMPLERS = {"instance": 1.0, "sqrt": 0.5, "class_balanced": 0.0}


def check_sampler(sampler: str) -> str:
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
    return sampler


class ClassAwareSampling:
    """Draws of sample indices with p(class c) ∝ n_c**q and members of a class equally likely (see the module
    docstring).  Built once from the training labels; `draw(n, generator)` is a pure function of the generator."""

    def __init__(self, labels, sampler: str) -> None:
        self.sampler = check_sampler(sampler)
        self.q = SAMPLERS[sampler]
        y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels).detach().cpu()
        if y.dim() != 1 or y.numel() == 0 or y.is_floating_point() or y.dtype == torch.bool or bool((y < 0).any()):
            raise ValueError(f"class-aware sampling needs 1-D integer labels >= 0, one per training sample; got dtype {y.dtype}, shape {tuple(y.shape)}")
        y = y.long()
        self.counts = torch.bincount(y)  # classes without samples get probability 0
        present = self.counts > 0
        p = torch.zeros(len(self.counts), dtype=torch.float64)
        p[present] = self.counts[present].double().pow(self.q)
        self.class_probs = p / p.sum()
        self.members = torch.argsort(y, stable=True)  # sample indices grouped by class, in index order
        self.starts = torch.cumsum(self.counts, 0) - self.counts

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n sample indices (int64, CPU), drawn with replacement."""
        classes = torch.multinomial(self.class_probs, n, replacement=True, generator=generator)
        sizes = self.counts[classes]
        offset = (torch.rand(n, generator=generator, dtype=torch.float64) * sizes).long()
        offset = torch.minimum(offset, sizes - 1)  # rand < 1, but keep a rounding edge inside the class
        return self.members[self.starts[classes] + offset]


def epoch_order(n: int, generator: torch.Generator, sampling: ClassAwareSampling | None = None) -> torch.Tensor:
    """The N positions of an epoch: a permutation (instance sampling, `sampling=None`, the paper) or N class-aware
    draws with replacement."""
    if sampling is None or sampling.q == 1.0:
        return torch.randperm(n, generator=generator)
    return sampling.draw(n, generator)


def class_aware_sampling(labels, sampler: str) -> ClassAwareSampling | None:
    """None for the instance sampler (a plain permutation: exactly the paper's order), else a ClassAwareSampling."""
    if check_sampler(sampler) == "instance":
        return None
    if labels is None:
        raise ValueError(f"sampler={sampler!r} needs the training labels")
    return ClassAwareSampling(labels, sampler)


def check_sharding(batch_size, rank, world_size, *, train: bool = True) -> tuple[int, int, int]:
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1 (the global batch over all ranks); got {batch_size!r}")
    if isinstance(world_size, bool) or not isinstance(world_size, numbers.Integral) or world_size < 1:
        raise ValueError(f"world_size must be an integer >= 1; got {world_size!r}")
    if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be an integer in [0, {world_size}); got {rank!r}")
    if train and batch_size % world_size:
        raise ValueError(f"batch_size {batch_size} is the global batch and must be divisible by world_size {world_size}")
    return int(batch_size), int(rank), int(world_size)


def num_batches(n: int, batch_size: int, *, train: bool, drop_last: bool, rank: int = 0, world_size: int = 1) -> int:
    """Batches this rank yields per epoch (in training the same on every rank)."""
    full, rest = divmod(n, batch_size)
    if not train:
        return full + (rest > rank)
    if drop_last or rest < world_size:  # rest < R: the partial batch cannot give every rank a sample
        return full
    return full + 1


def rank_slice(k: int, n: int, batch_size: int, rank: int, world_size: int) -> slice:
    """Positions of the epoch order that rank `rank` gets for global batch k."""
    return slice(k * batch_size + rank, min((k + 1) * batch_size, n), world_size)


def loss_scale(k: int, n: int, batch_size: int, rank: int, world_size: int) -> float:
    """Factor for rank `rank`'s mean loss on training batch k: b_r * R / b, with b_r its share of the b samples
    of global batch k.

    The losses divide by the local batch size and DDP averages the gradients over the R ranks, so the update
    is (1/R) sum_r grad(L_r / b_r); scaling rank r's loss by b_r * R / b turns it into grad(sum_r L_r / b), the
    gradient of the single-process mean over the global batch.  1.0 whenever the shards are equal (every full
    batch, and every batch of a single process); the scaled losses also average over ranks to the global mean.
    """
    s = rank_slice(k, n, batch_size, rank, world_size)
    b = min((k + 1) * batch_size, n) - k * batch_size
    b_r = len(range(s.start, s.stop, s.step))
    return 1.0 if b_r * world_size == b else b_r * world_size / b
