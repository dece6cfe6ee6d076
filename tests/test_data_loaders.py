"""TensorLoader and TorchLoader: epoch plan, determinism, sharding, and each augmentation rebuilt with
torchvision's own functional ops from the crop/flip read off marker images."""

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF

from cbl.data.tensor_loader import TensorLoader
from cbl.data.torch_loader import ArrayDataset, TorchLoader
from cbl.data.transforms import cifar_transform
from tests.data_fakes import marker_images, recover_crop

N = 150
IDS = np.arange(N)  # labels = sample ids, so every output can be traced to its source image
CIFAR_STATS = dict(mean=[125.3, 123.0, 113.9], std=[63.0, 62.1, 66.7])


@pytest.fixture(scope="module")
def images():
    return marker_images(N)


def tensor_loader(images, batch_size=32, **kw):
    return TensorLoader(images, IDS[: len(images)], batch_size, **{"train": True, **kw})


def torch_loader(images, batch_size=32, train=True, mean=(128,) * 3, std=(128,) * 3, **kw):
    ds = ArrayDataset(images, IDS[: len(images)], cifar_transform(train, mean, std))
    return TorchLoader(ds, batch_size, train=train, **kw)


def epoch(loader, e=None):
    if e is not None:
        loader.set_epoch(e)
    xs, ys = zip(*list(loader))
    return torch.cat(xs), torch.cat(ys)


def to_uint8(x, mean=128.0, std=128.0):
    return (x * std + mean).round().to(torch.uint8).numpy()


@pytest.mark.parametrize("make", [tensor_loader, torch_loader])
def test_epoch_visits_every_sample_once_with_shapes_and_dtypes(images, make):
    loader = make(images, batch_size=32)
    assert len(loader) == 5  # ceil(150 / 32)
    batches = list(loader)
    assert [len(y) for _, y in batches] == [32, 32, 32, 32, 22]
    for x, y in batches:
        assert x.dtype == torch.float32 and x.shape[1:] == (3, 32, 32) and y.dtype == torch.int64
    ys = torch.cat([y for _, y in batches])
    assert sorted(ys.tolist()) == list(range(N))
    assert ys.tolist() != list(range(N))  # shuffled
    dropped = make(images, batch_size=32, drop_last=True)
    assert len(dropped) == 4 and sum(len(y) for _, y in dropped) == 128


@pytest.mark.parametrize("make", [tensor_loader, torch_loader])
def test_epoch_is_a_pure_function_of_seed_and_epoch(images, make):
    a, b = make(images, seed=5), make(images, seed=5)
    xa, ya = epoch(a, 3)
    epoch(b, 0), epoch(b, 7)  # whatever ran before, epoch 3 replays exactly (a resumed run)
    xb, yb = epoch(b, 3)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    xa2, ya2 = epoch(a)  # iterating the same epoch again gives the same data
    assert torch.equal(xa, xa2) and torch.equal(ya, ya2)
    xc, yc = epoch(b, 4)
    assert not torch.equal(ya, yc)
    _, yd = epoch(make(images, seed=6), 3)
    assert not torch.equal(ya, yd)
    # the same sample in two epochs is augmented differently somewhere
    order_a, order_c = torch.argsort(ya), torch.argsort(yc)
    assert not torch.equal(xa[order_a], xc[order_c])


def test_both_paths_visit_the_same_order(images):
    _, ya = epoch(tensor_loader(images, seed=9), 2)
    _, yb = epoch(torch_loader(images, seed=9), 2)
    assert torch.equal(ya, yb)


@pytest.mark.parametrize("make", [tensor_loader, torch_loader])
def test_each_output_is_torchvision_pad_crop_flip_of_its_source(images, make):
    """Read (dy, dx, flip) off the marker pixels, rebuild with torchvision.transforms.v2.functional, compare all pixels."""
    x, y = epoch(make(images, seed=1), 0)
    seen = set()
    for out, i in zip(to_uint8(x), y.tolist()):
        dy, dx, flipped = recover_crop(out)
        src = torch.from_numpy(images[i]).permute(2, 0, 1)
        ref = TF.crop(TF.pad(src, [4], fill=0), dy, dx, 32, 32)
        ref = TF.horizontal_flip(ref) if flipped else ref
        np.testing.assert_array_equal(out, ref.numpy())
        seen.add((dy, dx, flipped))
    assert len(seen) > 60  # offsets and flips actually vary


def test_normalisation_and_eval_pass_identical_in_both_paths(images):
    for stats in (dict(mean=(128,) * 3, std=(128,) * 3), CIFAR_STATS):
        xa, ya = epoch(TensorLoader(images, IDS, 64, train=False, **stats))
        xb, yb = epoch(torch_loader(images, 64, train=False, **stats))
        assert torch.equal(ya, torch.arange(N)) and torch.equal(yb, ya)  # sequential, every sample, no drop
        assert torch.equal(xa, xb)  # bit for bit
        ref = (images.transpose(0, 3, 1, 2).astype(np.float64) - np.reshape(stats["mean"], (1, 3, 1, 1))) / np.reshape(stats["std"], (1, 3, 1, 1))
        np.testing.assert_allclose(xa.numpy(), ref, rtol=1e-6, atol=1e-6)
    # the CIFAR default (x - 128) / 128 is the authors' x / 128 - 1, exactly
    x, _ = epoch(TensorLoader(images, IDS, 64, train=False))
    assert torch.equal(x, torch.from_numpy(images).permute(0, 3, 1, 2).double().div(128).sub(1).float())


@pytest.mark.parametrize("make", [tensor_loader, torch_loader])
@pytest.mark.parametrize("world_size", [2, 4])
def test_ddp_shards_union_to_the_single_process_batches(images, make, world_size):
    single = make(images, batch_size=40, seed=3)
    single.set_epoch(2)
    ranks = [make(images, batch_size=40, seed=3, rank=r, world_size=world_size) for r in range(world_size)]
    for r in ranks:
        r.set_epoch(2)
    assert {len(r) for r in ranks} == {len(single)}  # all ranks in lock-step
    for k, ((x, y), *shards) in enumerate(zip(single, *ranks)):
        for r, (xr, yr) in enumerate(shards):
            # rank r holds positions r, r+R, ... of global batch k, with the very same augmentation
            assert torch.equal(yr, y[r::world_size]) and torch.equal(xr, x[r::world_size]), (k, r)
            assert len(yr) == 40 // world_size or k == len(single) - 1


def test_ddp_tiny_last_batch_is_dropped_on_every_rank_and_eval_sees_everything_once(images):
    # 150 = 2 * 72 + 6: the partial batch gives each of 4 ranks a sample, so training keeps it
    ranks = [tensor_loader(images, batch_size=72, rank=r, world_size=4) for r in range(4)]
    assert [len(r) for r in ranks] == [3] * 4
    assert sorted(torch.cat([y for loader in ranks for _, y in loader]).tolist()) == list(range(N))
    # 146 = 2 * 72 + 2: 2 samples cannot feed 4 ranks, so training drops that batch on every rank
    ranks = [tensor_loader(images[:146], batch_size=72, rank=r, world_size=4) for r in range(4)]
    assert [len(r) for r in ranks] == [2] * 4
    # evaluation never drops: ranks 0 and 1 get one more (1-sample) batch, every example is seen once
    evals = [TensorLoader(images[:146], IDS[:146], 72, train=False, rank=r, world_size=4) for r in range(4)]
    assert [len(r) for r in evals] == [3, 3, 2, 2]
    seen = torch.cat([y for loader in evals for _, y in loader])
    assert sorted(seen.tolist()) == list(range(146))
    tl = [torch_loader(images[:146], 72, train=False, rank=r, world_size=4) for r in range(4)]
    assert sorted(torch.cat([y for loader in tl for _, y in loader]).tolist()) == list(range(146))


def test_torch_path_augmentation_does_not_depend_on_num_workers(images):
    xa, ya = epoch(torch_loader(images[:40], 16, seed=2, num_workers=0), 1)
    xb, yb = epoch(torch_loader(images[:40], 16, seed=2, num_workers=2), 1)
    assert torch.equal(ya, yb) and torch.equal(xa, xb)


def test_torch_path_leaves_the_global_rng_alone(images):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    epoch(torch_loader(images[:20], 8), 0)
    assert torch.equal(torch.rand(3), expected)


def test_nchw_input_channels_last_and_no_augmentation(images):
    nchw = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    xa, ya = epoch(TensorLoader(images, IDS, 50, train=True, seed=4), 1)
    xb, yb = epoch(TensorLoader(torch.from_numpy(nchw), torch.from_numpy(IDS), 50, train=True, seed=4, channels_last=True), 1)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert xb.is_contiguous(memory_format=torch.channels_last)
    x, y = epoch(TensorLoader(images, IDS, 50, train=True, pad=0, flip=False), 0)
    np.testing.assert_array_equal(to_uint8(x), images[y.numpy()].transpose(0, 3, 1, 2))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(images=np.zeros((4, 32, 32, 3), np.float32)), "images must be a uint8 tensor"),
        (dict(images=np.zeros((4, 3, 32, 3), np.uint8)), "cannot tell channels from shape"),
        (dict(labels=np.zeros(3, np.int64)), "one per image"),
        (dict(batch_size=0), "batch_size must be an integer >= 1"),
        (dict(batch_size=10, world_size=4), "batch_size 10 is the global batch and must be divisible by world_size 4"),
        (dict(rank=2, world_size=2), r"rank must be an integer in \[0, 2\); got 2"),
        (dict(std=[1.0, 0.0, 1.0]), "std must be > 0"),
        (dict(mean=[1.0, 2.0]), r"mean must be one finite number or one per channel \(3\)"),
        (dict(seed=-1), "seed must be an integer >= 0; got -1"),
    ],
)
def test_tensor_loader_rejects_bad_arguments(kwargs, match):
    args = dict(images=np.zeros((4, 32, 32, 3), np.uint8), labels=np.zeros(4, np.int64), batch_size=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        TensorLoader(args.pop("images"), args.pop("labels"), args.pop("batch_size"), train=True, **args)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_loader_matches_cpu(images):
    for train in (True, False):
        xa, ya = epoch(TensorLoader(images, IDS, 32, train=train, seed=1), 2)
        xb, yb = epoch(TensorLoader(images, IDS, 32, train=train, seed=1, device="cuda"), 2)
        assert xb.is_cuda and yb.is_cuda
        assert torch.equal(xa, xb.cpu()) and torch.equal(ya, yb.cpu())
    xc, _ = epoch(torch_loader(images, 32, seed=1, device="cuda"), 2)
    assert xc.is_cuda
