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

Training order `dataset.order` (`ORDERS`): "shuffled" (the default) is the fresh per-epoch draw above;
"authors_stream" replays, deterministically, the order in which the authors' TensorFlow pipeline fed CIFAR
training examples (richardaecn/class-balanced-loss; facts read from their code, not copied):
* Record file (src/generate_cifar_tfrecords_im.py, long-tailed data): each class's ids are listed in source
  order, shuffled (`random.shuffle`, unseeded) and cut to n_c; the kept ids are gathered class by class
  (class 0, the head, first: Python 3 dicts keep insertion order, and their scripts run python3), regrouped
  by source file (data_batch_1..5 in that order), and written file by file.  So every source file is a
  class-sorted block: CIFAR-100 (one `train` file) gives one class-sorted record file, CIFAR-10 five
  blocks.  `authors_records` rebuilds this order over our arrays: file f, then class c, then the f-th of F
  near-equal contiguous blocks of class c's samples in dataset order (rank r of n_c goes to file
  floor(r * F / n_c)).  Their per-file counts came from the unseeded shuffle (unreproducible; the even split
  is its expectation), which also set the order within a class; we keep dataset order there (our subset is
  our own seeded one, and a class's images are exchangeable, so per-class exposure does not change).
  Balanced runs (IF 1, cifar_trainval.sh) read src/generate_cifar_tfrecords.py's file instead, every image
  in source order: `class_grouped=False` keeps dataset order (the source order for the official archive).
* Stream (src/cifar.py, make_batch): `TFRecordDataset(file).repeat()`, an order-keeping parallel `map`, then
  `.shuffle(buffer_size)` with buffer_size = int(0.4 * N) + 3 * B (N the training-set size, B the global
  batch, 128), then `.batch(B)`.  TF's shuffle fills a buffer with the first buffer_size inputs; each output
  takes a uniformly random slot and the slot is refilled with the next input.  The input never ends
  (repeat), so the buffer never drains, slot picks are i.i.d. uniform, and output t is the input that last
  entered its slot: input buffer_size + t' for the last earlier step t' that picked the same slot, else the
  initial fill.  `shuffle_stream` computes this without a loop; input m is record m mod N.
* Chunks (src/cifar_main.py): each `classifier.train()` call covers --eval-epochs = 2 epochs (floor(2N/B)
  steps) and rebuilds the input pipeline, so every 2-epoch chunk restarts the stream at record 0 with a
  fresh, unseeded shuffle (their RunConfig sets no tf_random_seed).  cbl.train counts epochs from 1, so chunk
  k = (e + 1) // 2 holds epochs 2k-1 and 2k (epoch 0, used only before training starts, is the second half
  of chunk 0).  A chunk's stream is a pure function of (seed, k) (`chunk_generator`, its own generator), and
  epoch e takes its positions [h * N, (h + 1) * N), h = (e - 1) mod 2: deterministic from (seed, epoch),
  whatever epoch a resumed run starts at.  Batches, DDP sharding (their towers also took positions i::R of
  each batch), augmentation draws and the steps per epoch (ceil or floor of N/B by drop_last; with drop_last
  the last N mod B positions of each half go unused) stay those above.  Kept differences: their chunk runs
  floor(2N/B) full batches (never a partial one), and their run stops after floor(epochs * N / B) steps, which
  can leave a short extra train() call at the end; ours runs our per-epoch batches over 2N stream positions.
  An epoch is not a permutation: a sample can appear twice or not at all, and the early batches of a chunk
  are head-heavy (simulated CIFAR-100-LT IF 100: head 10% of classes x1.16, tail 10% x0.81 of nominal).
Only the instance sampler combines with it (class-aware sampling is another order altogether).
"""

from __future__ import annotations

import numbers

import numpy as np
import torch


def check_nonneg_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 0:
        raise ValueError(f"{name} must be an integer >= 0; got {value!r}")
    return int(value)


def _generator(s: np.random.SeedSequence) -> torch.Generator:
    return torch.Generator().manual_seed(int(s.generate_state(1, np.uint64)[0] >> np.uint64(1)))


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """CPU generator for epoch `epoch` of a run with training seed `seed`."""
    return _generator(np.random.SeedSequence([check_nonneg_int("seed", seed), check_nonneg_int("epoch", epoch)]))


#: sampler name -> q, the exponent of p(class c) ∝ n_c**q
SAMPLERS = {"instance": 1.0, "sqrt": 0.5, "class_balanced": 0.0}


def check_sampler(sampler: str) -> str:
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
    return sampler


def class_labels(labels, what: str) -> torch.Tensor:
    """Training labels as a 1-D int64 CPU tensor of class indices >= 0 (checked; `what` names the user)."""
    y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels).detach().cpu()
    if y.dim() != 1 or y.numel() == 0 or y.is_floating_point() or y.dtype == torch.bool or bool((y < 0).any()):
        raise ValueError(f"{what} needs 1-D integer labels >= 0, one per training sample; got dtype {y.dtype}, shape {tuple(y.shape)}")
    return y.long()


class ClassAwareSampling:
    """Draws of sample indices with p(class c) ∝ n_c**q and members of a class equally likely (see the module
    docstring).  Built once from the training labels; `draw(n, generator)` is a pure function of the generator."""

    def __init__(self, labels, sampler: str) -> None:
        self.sampler = check_sampler(sampler)
        self.q = SAMPLERS[sampler]
        y = class_labels(labels, "class-aware sampling")
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


#: training orders, `dataset.order` (module docstring): a fresh draw per epoch, or the authors' TF stream
ORDERS = ("shuffled", "authors_stream")
#: epochs per `classifier.train()` call of the authors' cifar_main.py (--eval-epochs default; no script changes it)
CHUNK_EPOCHS = 2
_STREAM_KEY = 0x5712EA  # spawn key: a chunk's generator never coincides with an epoch generator


def check_order(order: str, sampler: str = "instance", name: str = "order") -> str:
    """The one check of an order and the sampler it goes with (the loaders, build_data and the config check call it)."""
    if order not in ORDERS:
        raise ValueError(f"{name} must be one of {', '.join(ORDERS)}; got {order!r}")
    if order == "authors_stream" and sampler != "instance":
        raise ValueError(f"{name}='authors_stream' replays the authors' instance-sampled stream and needs sampler "
                         f"'instance'; got sampler {sampler!r}")
    return order


def chunk_generator(seed: int, chunk: int) -> torch.Generator:
    """CPU generator of the authors' stream for 2-epoch chunk `chunk` (one `classifier.train()` call)."""
    s = np.random.SeedSequence([check_nonneg_int("seed", seed), check_nonneg_int("chunk", chunk)], spawn_key=(_STREAM_KEY,))
    return _generator(s)


def shuffle_buffer_size(n: int, batch_size: int) -> int:
    """The authors' shuffle buffer (cifar.py make_batch): int(0.4 * N) + 3 * B, with B the global batch."""
    return int(n * 0.4) + 3 * batch_size


def shuffle_stream(buffer_size: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """Input positions (int64) of the first `length` outputs of TF's shuffle buffer over an endless input.

    Step t picks slot[t] uniformly in [0, buffer_size), emits its element and refills it with input
    buffer_size + t.  So output t is input buffer_size + t' for the last t' < t with slot[t'] == slot[t], or
    input slot[t] (the initial fill) when the slot was not picked before: one stable sort, no loop."""
    slot = torch.randint(0, buffer_size, (length,), generator=generator)
    by_slot = torch.sort(slot, stable=True)  # steps grouped by slot, in time order within a slot
    steps, slots = by_slot.indices, by_slot.values
    source = slots.clone()  # the first pick of each slot reads the initial fill
    again = slots[1:] == slots[:-1]
    source[1:][again] = buffer_size + steps[:-1][again]  # a later pick reads what the previous pick put there
    out = torch.empty_like(source)
    out[steps] = source
    return out


def authors_records(labels, files: int = 1, class_grouped: bool = True) -> torch.Tensor:
    """Indices of the training samples in the order of the authors' record file (module docstring): for each of
    `files` source files, the classes in ascending order, class c contributing the f-th of `files` near-equal
    contiguous blocks of its samples in dataset order; `class_grouped=False`: dataset order (balanced data)."""
    y = class_labels(labels, "order 'authors_stream'")
    if isinstance(files, bool) or not isinstance(files, numbers.Integral) or files < 1:
        raise ValueError(f"files must be an integer >= 1 (source files of the record file); got {files!r}")
    if not class_grouped:
        return torch.arange(len(y))
    members = torch.argsort(y, stable=True)  # grouped by class, dataset order within a class
    counts = torch.bincount(y)
    cls = y[members]
    rank = torch.arange(len(y)) - (torch.cumsum(counts, 0) - counts)[cls]  # rank within its class
    file = rank * files // counts[cls]
    return members[torch.argsort(file * len(counts) + cls, stable=True)]


class AuthorsStream:
    """The authors' training stream over `records` (indices of our samples in their record-file order) with
    global batch `batch_size`; `epoch_order(seed, epoch)` gives epoch e's N sample indices (module docstring)."""

    def __init__(self, records, batch_size: int) -> None:
        self.records = torch.as_tensor(records).detach().cpu().long().reshape(-1)
        self.n = len(self.records)
        if self.n == 0 or not torch.equal(self.records.sort().values, torch.arange(self.n)):
            raise ValueError(f"records must be a permutation of the {self.n} training sample indices (the record-file order)")
        self.buffer_size = shuffle_buffer_size(self.n, batch_size)

    def chunk(self, seed: int, chunk: int) -> torch.Tensor:
        """The CHUNK_EPOCHS * N sample indices that one `classifier.train()` call's fresh pipeline emits first."""
        positions = shuffle_stream(self.buffer_size, CHUNK_EPOCHS * self.n, chunk_generator(seed, chunk))
        return self.records[positions % self.n]  # repeat(): input m is record m mod N

    def epoch_order(self, seed: int, epoch: int) -> torch.Tensor:
        epoch = check_nonneg_int("epoch", epoch)
        chunk, half = (epoch + CHUNK_EPOCHS - 1) // CHUNK_EPOCHS, (epoch - 1) % CHUNK_EPOCHS  # epochs (1, 2), (3, 4), ...
        return self.chunk(seed, chunk)[half * self.n : (half + 1) * self.n]


def authors_stream(order: str, sampler: str, n: int, batch_size: int, labels=None, records=None) -> AuthorsStream | None:
    """None for order "shuffled" (epoch_order draws each epoch), else the AuthorsStream of the n training samples
    over `records` (default: `labels` as one class-sorted record file, the CIFAR-100 layout)."""
    if check_order(order, sampler) == "shuffled":
        return None
    if records is None:
        if labels is None:
            raise ValueError("order 'authors_stream' needs the training labels (or the record order)")
        records = authors_records(labels)
    stream = AuthorsStream(records, batch_size)
    if stream.n != n:
        raise ValueError(f"the record order has {stream.n} entries but the training set has {n} samples")
    return stream


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
