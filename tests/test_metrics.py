"""cbl.evaluation.metrics against brute-force references: a stable sort of every row for top-k, Python loops for the
per-class accuracies, and the many / medium / few boundaries spelt out (Liu et al. 2019: > 100, 20..100, < 20)."""

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cbl.evaluation.metrics import EvalAccumulator, shot_accuracy, topk_correct


def brute_force_rank(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Position of the true class when each row is sorted by decreasing score, ties by class index."""
    order = np.argsort(-z, axis=1, kind="stable")
    return np.array([int(np.where(order[i] == y[i])[0][0]) for i in range(len(y))])


def problem(seed: int, batch: int = 300, classes: int = 7, ties: bool = True):
    rng = np.random.default_rng(seed)
    # integer scores in {0, 1, 2} tie constantly; normal scores almost never do
    z = rng.integers(0, 3, size=(batch, classes)).astype(np.float32) if ties else rng.normal(size=(batch, classes)).astype(np.float32)
    y = rng.integers(0, classes, size=batch)
    return z, y


@pytest.mark.parametrize("ties", [True, False])
def test_topk_matches_brute_force(ties):
    z, y = problem(0, ties=ties)
    rank = brute_force_rank(z, y)
    got = topk_correct(torch.from_numpy(z), torch.from_numpy(y), ks=(1, 2, 3, 5))
    assert got == {k: int((rank < k).sum()) for k in (1, 2, 3, 5)}


def test_top1_is_argmax_under_ties():
    z, y = problem(1)
    logits, labels = torch.from_numpy(z), torch.from_numpy(y)
    assert topk_correct(logits, labels, ks=(1,))[1] == int((logits.argmax(dim=1) == labels).sum())


def test_k_larger_than_num_classes_is_clipped():
    z, y = problem(2, classes=3)
    assert topk_correct(torch.from_numpy(z), torch.from_numpy(y), ks=(1, 5, 100)) == {
        1: int((brute_force_rank(z, y) < 1).sum()), 5: len(y), 100: len(y)
    }


def test_topk_bad_input():
    with pytest.raises(ValueError, match="ks"):
        topk_correct(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), ks=(0,))
    with pytest.raises(ValueError, match="labels"):
        topk_correct(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        topk_correct(torch.zeros(2, 3), torch.zeros(2))


def loop_reference(z: np.ndarray, y: np.ndarray, classes: int, ks=(1, 5)) -> dict:
    rank = brute_force_rank(z, y)
    per_class = []
    for c in range(classes):
        members = [i for i in range(len(y)) if y[i] == c]
        per_class.append(100.0 * sum(rank[i] == 0 for i in members) / len(members) if members else None)
    out = {f"top{k}_err": 100.0 * (1 - np.mean(rank < k)) for k in ks}
    return out | {"per_class_acc": per_class, "n": len(y)}


def assert_same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys() and got["n"] == want["n"]
    for key in want:
        if key.endswith("_err"):
            assert got[key] == pytest.approx(want[key], abs=1e-9)
    assert [a is None for a in got["per_class_acc"]] == [a is None for a in want["per_class_acc"]]
    assert [a for a in got["per_class_acc"] if a is not None] == pytest.approx([a for a in want["per_class_acc"] if a is not None])


@pytest.mark.parametrize("ties", [True, False])
def test_accumulator_matches_loops_over_batches(ties):
    classes = 12
    z, y = problem(3, batch=500, classes=classes, ties=ties)
    y[y == 11] = 10  # class 11 never appears: its accuracy is None
    acc = EvalAccumulator(classes)
    for start in range(0, len(y), 64):  # uneven last batch
        acc.update(torch.from_numpy(z[start : start + 64]), torch.from_numpy(y[start : start + 64]).int())
    result = acc.compute()
    assert_same(result, loop_reference(z, y, classes))
    assert result["per_class_acc"][11] is None


def test_accumulator_errors_are_percent():
    acc = EvalAccumulator(3, ks=(1,))
    acc.update(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]), torch.tensor([0, 1, 2, 2]))
    result = acc.compute()
    assert result == {"top1_err": 25.0, "per_class_acc": [100.0, 100.0, 50.0], "n": 4}


def test_accumulator_bad_input():
    acc = EvalAccumulator(5)
    with pytest.raises(ValueError, match="no examples"):
        acc.compute()
    with pytest.raises(ValueError, match="4 classes but the accumulator was built for 5"):
        acc.update(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="num_classes"):
        EvalAccumulator(0)


def _reduce_worker(rank: int, world: int, init_file: str, z: np.ndarray, y: np.ndarray, queue) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        acc = EvalAccumulator(z.shape[1])
        shard = slice(rank, None, world)  # disjoint shards covering every example once
        acc.update(torch.from_numpy(z[shard]), torch.from_numpy(y[shard]))
        queue.put((rank, acc.all_reduce().compute()))
    finally:
        dist.destroy_process_group()


def test_all_reduce_sums_over_processes(tmp_path):
    z, y = problem(4, batch=101, classes=6)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_reduce_worker, args=(r, 2, str(tmp_path / "init"), z, y, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    want = loop_reference(z, y, 6)
    for rank in (0, 1):
        assert_same(results[rank], want)


def test_all_reduce_without_a_process_group_is_a_no_op():
    z, y = problem(5)
    acc = EvalAccumulator(7)
    acc.update(torch.from_numpy(z), torch.from_numpy(y))
    assert_same(acc.all_reduce().compute(), loop_reference(z, y, 7))


# ----------------------------------------------------------------------------- shot groups
def test_shot_groups_boundaries():
    counts = [101, 100, 20, 19, 5000, 1, 50]
    acc = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]
    # many: n > 100 -> {101, 5000}; medium: 20 <= n <= 100 -> {100, 20, 50}; few: n < 20 -> {19, 1}
    assert shot_accuracy(acc, counts) == pytest.approx({"many": 30.0, "medium": 40.0, "few": 50.0})


def test_shot_groups_empty_and_missing():
    assert shot_accuracy([80.0, 60.0], [500, 300]) == {"many": 70.0, "medium": None, "few": None}
    # a class without eval images (None) does not count; a group left with none is None
    assert shot_accuracy([80.0, None, 10.0], [500, 10, 50]) == {"many": 80.0, "medium": 10.0, "few": None}


def test_shot_custom_thresholds_and_errors():
    assert shot_accuracy([1.0, 2.0, 3.0], [10, 5, 1], many_threshold=5, few_threshold=2) == {"many": 1.0, "medium": 2.0, "few": 3.0}
    with pytest.raises(ValueError, match="2 classes but samples_per_class has 3"):
        shot_accuracy([1.0, 2.0], [1, 2, 3])
    with pytest.raises(ValueError, match="few_threshold"):
        shot_accuracy([1.0], [1], many_threshold=10, few_threshold=20)
