"""dataset.order: "shuffled" is unchanged; "authors_stream" replays the authors' TF pipeline (class-sorted record
files, `repeat().shuffle(int(0.4 N) + 3 B)`, a fresh pipeline every 2 epochs), checked against a plain list-based
simulation of that pipeline written here, with fixed seeds so the statistical checks are deterministic."""

import random

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from cbl.training import config as cbl_config
from cbl.data import build_data
from cbl.data.epoch import AuthorsStream, authors_records, chunk_generator, epoch_generator, epoch_order
from cbl.data.long_tail import long_tail_counts, long_tail_indices
from cbl.data.tensor_loader import TensorLoader
from cbl.data.torch_loader import ArrayDataset, EpochBatchSampler, TorchLoader
from cbl.data.transforms import cifar_transform
from tests.data_fakes import write_cifar10
from tests.train_utils import compose_cfg

B = 128  # the authors' global batch
COUNTS = [40, 25, 16, 10, 6, 4, 3, 2]  # a small long tail for the loader tests
LABELS = np.repeat(np.arange(len(COUNTS)), COUNTS)[np.random.default_rng(0).permutation(sum(COUNTS))]
N = len(LABELS)


# ----------------------------------------------------------------------------- the authors' pipeline, written plainly
def source_files(num_classes: int, per_class: int, files: int, seed: int) -> list[list[int]]:
    """Labels of the official training files: every class equally often, in a random order, cut into `files`."""
    labels = np.random.default_rng(seed).permutation(np.repeat(np.arange(num_classes), per_class)).tolist()
    size = len(labels) // files
    return [labels[f * size:(f + 1) * size] for f in range(files)]


def authors_record_labels(files: list[list[int]], counts: list[int], rnd: random.Random) -> list[int]:
    """Labels of generate_cifar_tfrecords_im.py's record file: per class the (file, index) ids in source order,
    shuffled and cut to n_c; then, class by class, each id appended to its file's list; files written in order."""
    per_class = {c: [] for c in range(len(counts))}
    for f, labels in enumerate(files):
        for i, y in enumerate(labels):
            per_class[y].append((f, i))
    by_file = {f: [] for f in range(len(files))}
    for c in range(len(counts)):
        ids = per_class[c]
        rnd.shuffle(ids)
        for f, i in ids[:counts[c]]:
            by_file[f].append(i)
    return [files[f][i] for f in range(len(files)) for i in by_file[f]]


def tf_repeat_shuffle(records: list, buffer_size: int, length: int, rnd: random.Random) -> list:
    """`Dataset(records).repeat().shuffle(buffer_size)`: a list buffer filled with the first inputs; each output
    is a uniformly random slot, refilled with the next input of the endless repeated records."""
    inputs = (records[m % len(records)] for m in range(10**12))
    buffer = [next(inputs) for _ in range(buffer_size)]
    out = []
    for _ in range(length):
        k = rnd.randrange(buffer_size)
        out.append(buffer[k])
        buffer[k] = next(inputs)
    return out


def simulated_chunks(num_classes, per_class, files, imbalance_factor, reps, seed=0):
    """Label streams of `reps` independent 2-epoch chunks of the authors' pipeline (2N outputs each)."""
    counts = long_tail_counts(per_class, num_classes, imbalance_factor)
    n = sum(counts)
    rnd = random.Random(seed)
    src = source_files(num_classes, per_class, files, seed)
    return counts, [tf_repeat_shuffle(authors_record_labels(src, counts, rnd), int(0.4 * n) + 3 * B, 2 * n, rnd)
                    for _ in range(reps)]


def our_chunks(num_classes, per_class, files, imbalance_factor, seeds, subset_seed=0):
    """Label streams of epochs 1 and 2 (one chunk) of the authors_stream order, as the loaders get them."""
    counts = long_tail_counts(per_class, num_classes, imbalance_factor)
    src = np.concatenate(source_files(num_classes, per_class, files, 1 + subset_seed))
    y = src[long_tail_indices(src, counts, subset_seed)]  # our subset, in dataset (= source file) order
    records = authors_records(y, files)
    out = []
    for s in seeds:
        plan = EpochBatchSampler(len(y), B, train=True, seed=s, drop_last=False, rank=0, world_size=1, labels=y,
                                 order="authors_stream", records=records)
        stream = []
        for e in (1, 2):
            plan.set_epoch(e)
            stream += y[plan.order].tolist()
        out.append(stream)
    return counts, out


def exposure(streams, counts, lo=0, hi=None):
    """[reps, C]: how often each class appears in positions [lo, hi) over its nominal count (n_c / N per position)."""
    n = sum(counts)
    out = []
    for s in streams:
        part = s[lo:hi]
        out.append(np.bincount(part, minlength=len(counts)) / (len(part) * np.asarray(counts) / n))
    return np.asarray(out)


def group_stats(streams, counts, lo=0, hi=None):
    """Per repetition: mean exposure of the head 10% and of the tail 10% of the classes."""
    e = exposure(streams, counts, lo, hi)
    k = max(1, len(counts) // 10)
    return {"head": e[:, :k].mean(1), "tail": e[:, -k:].mean(1)}


# ----------------------------------------------------------------------------- (2) statistics vs the simulation
@pytest.mark.parametrize("num_classes,per_class,files", [(100, 500, 1), (10, 5000, 5)], ids=["cifar100", "cifar10"])
def test_per_class_exposure_matches_a_direct_simulation(num_classes, per_class, files):
    reps = 24
    counts, sim = simulated_chunks(num_classes, per_class, files, 100, reps)
    _, ours = our_chunks(num_classes, per_class, files, 100, seeds=range(reps))
    n = sum(counts)
    rng = np.random.default_rng(0)  # the "shuffled" order: a fresh permutation per epoch
    y = np.repeat(np.arange(num_classes), counts)
    shuffled = [np.concatenate([rng.permutation(y), rng.permutation(y)]).tolist() for _ in range(reps)]
    windows = {"first 8 batches": (0, 8 * B), "whole chunk": (0, 2 * n), "second epoch": (n, 2 * n)}
    for name, (lo, hi) in windows.items():
        s, o = group_stats(sim, counts, lo, hi), group_stats(ours, counts, lo, hi)
        for group in ("head", "tail"):
            # 5 standard errors of a difference of two means, from the simulation's own spread
            tol = 5 * s[group].std(ddof=1) * np.sqrt(2 / reps) + 1e-3
            assert abs(o[group].mean() - s[group].mean()) < tol, (name, group, o[group].mean(), s[group].mean(), tol)
    # the check has teeth: the head's share of the first batches under "shuffled" is 3 tolerances away or more
    s, p = group_stats(sim, counts, 0, 8 * B)["head"], group_stats(shuffled, counts, 0, 8 * B)["head"]
    assert abs(p.mean() - s.mean()) > 3 * 5 * s.std(ddof=1) * np.sqrt(2 / reps)


def test_design_claim_cifar100_lt_head_heavy_tail_light():
    counts, ours = our_chunks(100, 500, 1, 100, seeds=range(100))
    g = group_stats(ours, counts)
    assert abs(g["head"].mean() - 1.16) < 0.02 and abs(g["tail"].mean() - 0.81) < 0.03, (g["head"].mean(), g["tail"].mean())


def test_design_claim_cifar10_lt_mild():
    counts, ours = our_chunks(10, 5000, 5, 100, seeds=range(60))
    e = exposure(ours, counts).mean(0)
    assert 1.0 < e[0] < 1.06 and 0.9 < e[-1] < 0.99, e  # simulated: head about +3%, tail about -5%


# ----------------------------------------------------------------------------- the stream itself
def test_stream_is_tf_shuffle_of_the_repeated_records_with_the_same_draws():
    records = authors_records(LABELS, 2)
    stream = AuthorsStream(records, batch_size=8)
    assert stream.buffer_size == int(0.4 * N) + 3 * 8
    # the plain buffer loop, fed the very slot draws the stream's generator makes
    slots = torch.randint(0, stream.buffer_size, (2 * N,), generator=chunk_generator(3, 5)).tolist()
    recs = records.tolist()
    buffer = [recs[m % N] for m in range(stream.buffer_size)]
    expected = []
    for t, k in enumerate(slots):
        expected.append(buffer[k])
        buffer[k] = recs[(stream.buffer_size + t) % N]
    assert stream.chunk(3, 5).tolist() == expected


def test_record_order_is_class_sorted_per_source_file():
    y = np.array([2, 0, 1, 0, 2, 0, 1, 0, 2, 0])  # class 0: 5 samples, 1: 2, 2: 3
    assert authors_records(y, 1).tolist() == [1, 3, 5, 7, 9, 2, 6, 0, 4, 8]
    # two files: each class's samples in dataset order, cut into near-equal contiguous parts (5 -> 3 + 2, 3 -> 2 + 1)
    assert authors_records(y, 2).tolist() == [1, 3, 5, 2, 0, 4, 7, 9, 6, 8]
    assert authors_records(y, 2, class_grouped=False).tolist() == list(range(10))


# ----------------------------------------------------------------------------- loaders
def images(n=N):
    x = np.zeros((n, 4, 4, 3), dtype=np.uint8)  # sample id written into the pixels
    x[:, 0, 0, 0], x[:, 0, 0, 1] = np.arange(n) % 256, np.arange(n) // 256
    return x


def ids(x):
    u = (x * 128 + 128).round().long()
    return (u[:, 0, 0, 0] + 256 * u[:, 1, 0, 0]).tolist()


def tensor_loader(batch_size=16, **kw):
    return TensorLoader(images(), LABELS, batch_size, train=True, pad=0, flip=False, **kw)


def torch_loader(batch_size=16, **kw):
    ds = ArrayDataset(images(), LABELS, cifar_transform(True, [128.0] * 3, [128.0] * 3, size=4, pad=0, flip=False))
    return TorchLoader(ds, batch_size, train=True, labels=LABELS, **kw)


def batches(loader, epoch):
    loader.set_epoch(epoch)
    return [ids(x) for x, _ in loader]


@pytest.mark.parametrize("seed,epoch", [(0, 0), (0, 1), (1, 0), (7, 13)])
def test_default_order_is_unchanged(seed, epoch):
    expected = epoch_order(N, epoch_generator(seed, epoch)).tolist()
    for kw in ({}, {"order": "shuffled"}):
        t, p = tensor_loader(seed=seed, **kw), torch_loader(seed=seed, **kw)
        t.set_epoch(epoch)
        p.set_epoch(epoch)
        assert t.order.tolist() == expected and p.sampler.order == expected
        assert sum(batches(t, epoch), []) == expected


def test_both_loaders_give_the_same_stream():
    kw = dict(order="authors_stream", seed=5)
    t, p = tensor_loader(**kw), torch_loader(**kw)
    for e in range(1, 6):
        assert batches(t, e) == batches(p, e)
    assert t.order.tolist() == p.sampler.order


def test_deterministic_from_seed_and_epoch_whatever_the_call_order():
    straight = {e: batches(tensor_loader(order="authors_stream", seed=2), e) for e in range(1, 7)}
    resumed = tensor_loader(order="authors_stream", seed=2)
    for e in (5, 2, 6, 1, 4, 3, 5):
        assert batches(resumed, e) == straight[e], e
    other = tensor_loader(order="authors_stream", seed=3)
    assert batches(other, 1) != straight[1]
    # epochs (1, 2) are the two halves of one chunk's stream, (3, 4) of the next, each restarting the records
    stream = AuthorsStream(authors_records(LABELS), 16)
    for first, chunk in ((1, 1), (3, 2)):
        assert sum(straight[first] + straight[first + 1], []) == stream.chunk(2, chunk).tolist()
    assert stream.chunk(2, 1).tolist() != stream.chunk(2, 2).tolist()
    # not a permutation: some sample repeats within an epoch
    assert len(set(sum(straight[1], []))) < N


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("world_size", [2, 4])
def test_ranks_shard_every_global_batch(world_size, drop_last):
    single = batches(tensor_loader(batch_size=16, order="authors_stream", seed=1, drop_last=drop_last), 3)
    ranks = [batches(tensor_loader(batch_size=16, order="authors_stream", seed=1, drop_last=drop_last, rank=r,
                                   world_size=world_size), 3) for r in range(world_size)]
    assert all(len(r) == len(single) for r in ranks)
    for k, batch in enumerate(single):
        merged = [None] * len(batch)
        for r in range(world_size):
            merged[r::world_size] = ranks[r][k]
        assert merged == batch


# ----------------------------------------------------------------------------- refusals, config and resume
def one_line_error(make, match):
    with pytest.raises(ValueError, match=match) as info:
        make()
    assert "\n" not in str(info.value)


def test_bad_values_are_refused_in_one_line():
    one_line_error(lambda: tensor_loader(order="random"), r"order must be one of shuffled, authors_stream; got 'random'")
    one_line_error(lambda: torch_loader(order="random"), r"order must be one of shuffled, authors_stream; got 'random'")
    one_line_error(lambda: tensor_loader(order="authors_stream", sampler="sqrt"), r"needs sampler 'instance'; got sampler 'sqrt'")
    one_line_error(lambda: torch_loader(order="authors_stream", sampler="class_balanced"), r"needs sampler 'instance'")
    one_line_error(lambda: tensor_loader(order="authors_stream", records=np.arange(N - 1)),
                   rf"the record order has {N - 1} entries but the training set has {N} samples")
    one_line_error(lambda: tensor_loader(order="authors_stream", records=np.zeros(N, int)), rf"permutation of the {N} training")
    build = dict(seed=0, device="cpu", batch_size=32, eval_batch_size=50)
    one_line_error(lambda: build_data({"name": "digits_lt", "order": "bogus"}, **build),
                   r"dataset.order must be one of shuffled, authors_stream; got 'bogus'")
    one_line_error(lambda: build_data({"name": "digits_lt", "order": "authors_stream"}, sampler="sqrt", **build),
                   r"dataset.order='authors_stream' .* needs sampler 'instance'; got sampler 'sqrt'")
    one_line_error(lambda: build_data({"name": "inat2017", "order": "authors_stream"}, **build),
                   r"dataset.order='authors_stream' is not supported for inat2017: only 'shuffled'")


def test_config_check_and_resume_keys():
    for overrides, match in ((["dataset.order=bogus"], "dataset.order='bogus' is not allowed: choose one of shuffled, authors_stream"),
                             (["experiment=table3", "dataset=inat2018", "dataset.order=authors_stream"], "inat2018 allows only shuffled"),
                             (["sampler=sqrt", "dataset.order=authors_stream"], "needs sampler=instance")):
        with pytest.raises(cbl_config.ConfigError, match=match) as info:
            cbl_config.check(compose_cfg(*overrides))
        assert "\n" not in str(info.value)
    cbl_config.check(compose_cfg("dataset=cifar100_lt", "dataset.order=authors_stream"))
    assert "dataset.order" not in cbl_config.RUNTIME_KEYS  # it changes what is computed
    for dataset in ("cifar10_lt", "inat2018"):  # a checkpoint saved before the key existed resumes, on every dataset
        new = cbl_config.comparable(OmegaConf.to_container(compose_cfg(f"dataset={dataset}"), resolve=True))
        old = {**new, "dataset": {k: v for k, v in new["dataset"].items() if k != "order"}}
        assert cbl_config.first_difference(old, new) is not None
        assert cbl_config.first_difference(cbl_config.with_added_keys(old), new) is None


@pytest.mark.parametrize("loader", ["tensor", "torch"])
def test_build_data_wires_the_record_files(loader, tmp_path):
    def train_labels(train):
        return train.labels if loader == "tensor" else torch.as_tensor(train.loader.dataset.dataset.labels)

    def stream(train):
        return train.stream if loader == "tensor" else train.sampler.stream

    opts = dict(seed=0, device="cpu", batch_size=32, eval_batch_size=50)
    digits = build_data({"name": "digits_lt", "order": "authors_stream", "loader": loader, "num_workers": 0}, **opts)
    s, y = stream(digits.train), train_labels(digits.train)
    assert torch.equal(y[s.records], y.sort().values)  # one source: one class-sorted record file
    assert s.buffer_size == int(0.4 * len(y)) + 3 * 32
    digits.train.set_epoch(1)
    assert sum(len(b) for _, b in digits.train) == len(y)
    write_cifar10(tmp_path, 12, 3)
    cifar = {"name": "cifar10_lt", "root": str(tmp_path), "n_max": 12, "order": "authors_stream", "loader": loader,
             "num_workers": 0}
    for imbalance_factor, files in ((4, 5), (1, None)):  # five class-sorted files; IF 1: source order
        train = build_data({**cifar, "imbalance_factor": imbalance_factor}, **opts).train
        y = train_labels(train)
        expected = authors_records(y, files) if files else torch.arange(len(y))
        assert stream(train).records.tolist() == expected.tolist()
