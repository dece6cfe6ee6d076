"""Class-aware re-sampling (beyond the paper): class_balanced (q = 0) and sqrt (q = 1/2) epochs draw classes with
probability n_c**q / sum_k n_k**q and members of a class uniformly, in both loaders, sharded like any epoch; the
instance sampler (q = 1) is still exactly the paper's permutation.  Chi-square tests with fixed seeds, so the
statistical checks are deterministic."""

import numpy as np
import pytest
import torch

from cbl.data import build_data
from cbl.data.epoch import SAMPLERS, ClassAwareSampling, epoch_generator, epoch_order
from cbl.data.tensor_loader import TensorLoader
from cbl.data.torch_loader import ArrayDataset, TorchLoader
from cbl.data.transforms import cifar_transform
from tests import reference as ref
from tests.test_data_augmentation import chi2_sf

ALPHA = 1e-3
Q = {"instance": 1.0, "sqrt": 0.5, "class_balanced": 0.0}  # p(class c) ∝ n_c**q, written out (not cbl's table)
COUNTS = [60, 30, 15, 8, 4, 2, 1]  # a long tail with a single-image class
LABELS = np.repeat(np.arange(len(COUNTS)), COUNTS)
N = len(LABELS)


def images(n=N):
    # sample id written into the pixels, so an output can be traced to its source (labels are classes here)
    x = np.zeros((n, 4, 4, 3), dtype=np.uint8)
    x[:, 0, 0, 0], x[:, 0, 0, 1] = np.arange(n) % 256, np.arange(n) // 256
    return x


def ids(x):
    u = (x * 128 + 128).round().long()
    return (u[:, 0, 0, 0] + 256 * u[:, 1, 0, 0]).tolist()


def tensor_loader(sampler, batch_size=16, **kw):
    return TensorLoader(images(), LABELS, batch_size, train=True, pad=0, flip=False, sampler=sampler, **kw)


def dataset():
    return ArrayDataset(images(), LABELS, cifar_transform(True, [128.0] * 3, [128.0] * 3, size=4, pad=0, flip=False))


def torch_loader(sampler, batch_size=16, **kw):
    return TorchLoader(dataset(), batch_size, train=True, sampler=sampler, labels=LABELS, **kw)


def drawn(loader, epochs=range(1, 41)):
    out = []
    for e in epochs:
        loader.set_epoch(e)
        for x, _ in loader:
            out += ids(x)
    return np.asarray(out)


def goodness_of_fit(observed: np.ndarray, probs: np.ndarray) -> float:
    expected = observed.sum() * probs
    return chi2_sf(float(((observed - expected) ** 2 / expected).sum()), len(observed) - 1)


@pytest.mark.parametrize("sampler", ["class_balanced", "sqrt"])
@pytest.mark.parametrize("make", [tensor_loader, torch_loader], ids=["tensor", "torch"])
def test_class_frequencies_match_the_target_distribution(sampler, make):
    samples = drawn(make(sampler, batch_size=40), range(1, 101))  # 100 epochs x 120 draws
    assert len(samples) == 100 * N
    classes = LABELS[samples]
    probs = ref.class_sampling_probs(COUNTS, Q[sampler])
    assert goodness_of_fit(np.bincount(classes, minlength=len(COUNTS)), probs) > ALPHA
    # within a class every member is equally likely (the head class: 60 members)
    head = samples[classes == 0]
    assert goodness_of_fit(np.bincount(head, minlength=60)[:60], np.full(60, 1 / 60)) > ALPHA
    # and the check has teeth: instance-balanced frequencies are far from the target
    assert goodness_of_fit(np.bincount(LABELS[drawn(make("instance"))], minlength=len(COUNTS)), probs) < 1e-6


def test_sampling_probabilities_per_sample_follow_n_to_the_q_minus_one():
    assert set(SAMPLERS) == set(Q)
    for sampler, q in Q.items():
        s = ClassAwareSampling(LABELS, sampler)
        np.testing.assert_allclose(s.class_probs.numpy(), ref.class_sampling_probs(COUNTS, q), rtol=1e-12)
    # a class with no training sample is never drawn
    s = ClassAwareSampling([0, 0, 2, 2, 2], "class_balanced")
    assert s.class_probs.tolist() == [0.5, 0.0, 0.5]
    assert set(s.draw(1000, torch.Generator().manual_seed(0)).tolist()) == {0, 1, 2, 3, 4}


def test_instance_sampler_is_the_papers_permutation_bit_for_bit():
    for seed, epoch in ((0, 1), (3, 7)):
        expected = torch.randperm(N, generator=epoch_generator(seed, epoch))
        assert torch.equal(epoch_order(N, epoch_generator(seed, epoch)), expected)
        for make in (tensor_loader, torch_loader):
            loader = make("instance", seed=seed)
            loader.set_epoch(epoch)
            got = drawn(loader, [epoch])
            assert got.tolist() == expected.tolist()
            # the default is the instance sampler
            default = (TensorLoader(images(), LABELS, 16, train=True, pad=0, flip=False, seed=seed) if make is tensor_loader
                       else TorchLoader(dataset(), 16, train=True, seed=seed))
            assert drawn(default, [epoch]).tolist() == expected.tolist()


@pytest.mark.parametrize("sampler", ["class_balanced", "sqrt"])
def test_class_aware_epochs_are_pure_functions_of_seed_and_epoch_and_shard_like_any_epoch(sampler):
    a = drawn(tensor_loader(sampler, seed=2), [5])
    drawn(tensor_loader(sampler, seed=2), [1, 9])
    assert drawn(tensor_loader(sampler, seed=2), [5]).tolist() == a.tolist()
    assert drawn(tensor_loader(sampler, seed=3), [5]).tolist() != a.tolist()
    assert len(a) == N and len(set(a.tolist())) < N  # N draws with replacement
    # both loaders draw the same epoch, and DDP shards union to the single-process batches
    assert drawn(torch_loader(sampler, seed=2), [5]).tolist() == a.tolist()
    single = tensor_loader(sampler, batch_size=16, seed=2)
    single.set_epoch(5)
    ranks = [torch_loader(sampler, batch_size=16, seed=2, rank=r, world_size=4) for r in range(4)]
    for r in ranks:
        r.set_epoch(5)
    for (x, _), *shards in zip(single, *ranks):
        merged = [None] * len(x)
        for r, (xs, _) in enumerate(shards):
            merged[r::4] = ids(xs)
        assert merged == ids(x)


def test_eval_loaders_ignore_the_sampler_and_build_data_passes_it():
    test = TensorLoader(images(), LABELS, 16, train=False, sampler="class_balanced")
    assert drawn(test, [1]).tolist() == list(range(N))
    data = build_data({"name": "digits_lt", "loader": "torch"}, seed=0, device="cpu", batch_size=32, eval_batch_size=50,
                      sampler="class_balanced")
    ys = []
    for e in range(1, 21):
        data.train.set_epoch(e)
        ys += [y for _, yb in data.train for y in yb.tolist()]
    counts = np.asarray(data.samples_per_class)
    probs = ref.class_sampling_probs(counts, 0.0)
    assert goodness_of_fit(np.bincount(ys, minlength=len(counts)), probs) > ALPHA
    assert len(data.train) == -(-int(counts.sum()) // 32)


def test_bad_sampler_inputs():
    with pytest.raises(ValueError, match="sampler must be one of instance, sqrt, class_balanced; got 'balanced'"):
        tensor_loader("balanced")
    with pytest.raises(ValueError, match="sampler must be one of"):
        build_data({"name": "digits_lt"}, seed=0, device="cpu", batch_size=8, eval_batch_size=8, sampler="uniform")
    with pytest.raises(ValueError, match="needs the training labels"):
        TorchLoader(dataset(), 16, train=True, sampler="sqrt")
    with pytest.raises(ValueError, match="labels has 3 entries but the dataset has 120 samples"):
        TorchLoader(dataset(), 16, train=True, sampler="sqrt", labels=[0, 1, 2])
    with pytest.raises(ValueError, match="integer labels >= 0"):
        ClassAwareSampling([0.5, 1.0], "sqrt")
