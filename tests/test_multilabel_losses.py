"""Multi-hot and dense targets of the class-balanced losses, and samples_per_class, against the float64
re-derivations of tests/reference.py (multilabel_cb, dense_cb, class_counts) and PyTorch's own ops."""

import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cbl.losses import (ClassBalancedLoss, DeferredReweighting, WeightedLoss, class_balanced_loss,
                        class_balanced_weights, focal_loss, samples_per_class, sigmoid_loss, softmax_loss,
                        weighted_loss)
from tests import reference as ref

BETAS = [0.0, 0.9, 0.99, 0.999, 0.9999]
BINARY = [("sigmoid", 0.0), ("focal", 0.5), ("focal", 2.0)]


def multi_hot_problem(rng: np.random.Generator, batch: int, classes: int, density: float = 0.3):
    """Counts, logits and multi-hot rows; a few rows one-hot and a few empty, the rest random."""
    counts = rng.integers(1, 5001, size=classes)
    z = rng.normal(0.0, 4.0, size=(batch, classes))
    t = (rng.random((batch, classes)) < density).astype(np.float64)
    t[0] = 0.0
    if batch > 1:
        t[1] = np.eye(classes)[rng.integers(classes)]
    return counts, z, t


# ----------------------------------------------------------------------------- multi-hot vs float64 reference
@pytest.mark.parametrize("weighting", ["sample", "class"])
@pytest.mark.parametrize("loss_type,gamma", BINARY)
def test_multi_hot_matches_float64_reference(loss_type, gamma, weighting):
    rng = np.random.default_rng(zlib.crc32(repr((loss_type, gamma, weighting)).encode()))
    for trial in range(15):
        batch, classes = int(rng.integers(1, 17)), int(rng.choice([2, 3, 10, 37]))
        counts, z, t = multi_hot_problem(rng, batch, classes, density=float(rng.uniform(0.05, 0.9)))
        beta = float(rng.choice(BETAS))
        expected = ref.multilabel_cb(z, t, ref.cb_weights(counts, beta), gamma, weighting)
        for target in (torch.from_numpy(t), torch.from_numpy(t).bool(), torch.from_numpy(t).float()):
            got = class_balanced_loss(torch.from_numpy(z), target, counts, loss_type, beta, gamma,
                                      multilabel_weighting=weighting)
            assert got.dtype == torch.float64
            assert got.item() == pytest.approx(expected, rel=2e-6), (trial, batch, classes, beta)
        got32 = class_balanced_loss(torch.from_numpy(z).float(), torch.from_numpy(t).bool(), counts, loss_type, beta,
                                    gamma, multilabel_weighting=weighting)
        assert got32.dtype == torch.float32 and got32.item() == pytest.approx(expected, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("loss_type,gamma", BINARY)
def test_multi_hot_weighted_mean_divides_by_the_sum_of_example_weights(loss_type, gamma):
    rng = np.random.default_rng(5)
    counts, z, t = multi_hot_problem(rng, 12, 6, density=0.4)
    w = class_balanced_weights(counts, 0.999)
    got = WeightedLoss(w, loss_type, gamma, reduction="weighted_mean")(torch.from_numpy(z), torch.from_numpy(t))
    expected = ref.multilabel_cb(z, t, ref.cb_weights(counts, 0.999), gamma, "sample", reduction="weighted_mean")
    assert got.item() == pytest.approx(expected, rel=2e-6)


def test_sample_weighting_is_the_mean_weight_of_the_positives():
    # three classes with weights w; row 0 has classes 0 and 2, row 1 none, row 2 class 1 only
    counts = [1000, 100, 10]
    w = ref.cb_weights(counts, 0.999)
    z = np.array([[1.0, -2.0, 0.5], [0.3, 0.1, -0.4], [-1.0, 2.0, 0.0]])
    t = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0]], dtype=np.float64)
    unweighted = [ref.multilabel_cb(z[b:b + 1], t[b:b + 1], np.ones(3), 0.0, "sample") for b in range(3)]
    expected = ((w[0] + w[2]) / 2 * unweighted[0] + 1.0 * unweighted[1] + w[1] * unweighted[2]) / 3
    got = class_balanced_loss(torch.from_numpy(z), torch.from_numpy(t), counts, "sigmoid", 0.999)
    assert got.item() == pytest.approx(expected, rel=2e-6)
    assert w.mean() == pytest.approx(1.0)  # the empty row's weight, mean(w), is 1 for normalised weights
    # for weights of another scale (WeightedLoss takes any), the empty row scales with them: the loss is linear in w
    scaled = WeightedLoss(3.0 * torch.from_numpy(w), "sigmoid")(torch.from_numpy(z), torch.from_numpy(t))
    assert scaled.item() == pytest.approx(3.0 * expected, rel=2e-6)
    assert scaled.item() == pytest.approx(ref.multilabel_cb(z, t, 3.0 * w, 0.0, "sample"), rel=2e-6)


# ----------------------------------------------------------------------------- one-hot rows are class indices
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("weighting", ["sample", "class"])
@pytest.mark.parametrize("loss_type,gamma", BINARY)
def test_one_hot_rows_give_exactly_the_class_index_loss_and_gradient(loss_type, gamma, weighting, dtype):
    torch.manual_seed(0)
    for reduction in ("batch", "weighted_mean") if weighting == "sample" else ("batch",):
        counts = torch.randint(1, 5000, (11,)).tolist()
        y = torch.randint(0, 11, (23,))
        crit = ClassBalancedLoss(counts, loss_type, 0.999, gamma, reduction=reduction, multilabel_weighting=weighting)
        z1 = (torch.randn(23, 11) * 5).to(dtype).requires_grad_()
        z2 = z1.detach().clone().requires_grad_()
        by_index, by_rows = crit(z1, y), crit(z2, F.one_hot(y, 11).to(dtype))
        by_index.backward()
        by_rows.backward()
        assert torch.equal(by_index, by_rows) and torch.equal(z1.grad, z2.grad)
        assert torch.equal(crit(z1, F.one_hot(y, 11).bool()), by_index)


@pytest.mark.parametrize("loss_type,gamma", BINARY)
def test_class_weighting_of_class_indices_matches_the_per_class_reference(loss_type, gamma):
    rng = np.random.default_rng(6)
    counts, (_, z, _) = [5000, 500, 50, 5, 1], multi_hot_problem(rng, 9, 5)
    y = rng.integers(0, 5, size=9)
    w = ref.cb_weights(counts, 0.9999)
    expected = ref.multilabel_cb(z, np.eye(5)[y], w, gamma, "class")
    got = class_balanced_loss(torch.from_numpy(z), torch.from_numpy(y), counts, loss_type, 0.9999, gamma,
                              multilabel_weighting="class")
    assert got.item() == pytest.approx(expected, rel=2e-6)
    # ...which is not the authors' per-example weighting of the same labels
    assert got.item() != pytest.approx(ref.focal_cb(z, y, w, gamma), rel=1e-2)


def test_softmax_has_one_term_per_example_so_both_weightings_agree():
    rng = np.random.default_rng(7)
    counts, z, _ = multi_hot_problem(rng, 10, 4)
    y = torch.from_numpy(rng.integers(0, 4, size=10))
    z = torch.from_numpy(z)
    for reduction in ("batch", "weighted_mean"):
        w = class_balanced_weights(counts, 0.99)
        torch.testing.assert_close(weighted_loss(z, y, w, "softmax", reduction=reduction, multilabel_weighting="class"),
                                   weighted_loss(z, y, w, "softmax", reduction=reduction))


@pytest.mark.parametrize("weighting", ["sample", "class"])
def test_beta_zero_multi_hot_sigmoid_is_bce_summed_over_classes_divided_by_batch(weighting):
    rng = np.random.default_rng(8)
    counts, z, t = multi_hot_problem(rng, 16, 7)
    z, t = torch.from_numpy(z), torch.from_numpy(t)
    expected = F.binary_cross_entropy_with_logits(z, t, reduction="sum") / 16
    torch.testing.assert_close(class_balanced_loss(z, t, counts, "sigmoid", 0.0, multilabel_weighting=weighting), expected)
    torch.testing.assert_close(class_balanced_loss(z, t, counts, "focal", 0.0, 0.0, multilabel_weighting=weighting), expected)


# ----------------------------------------------------------------------------- dense targets
def dense_problem(rng: np.random.Generator, spatial: tuple, classes: int, ignored: float, ignore_index: int = -100):
    counts = rng.integers(1, 5001, size=classes)
    batch = int(rng.integers(1, 4))
    z = rng.normal(0.0, 4.0, size=(batch, classes, *spatial))
    y = rng.integers(0, classes, size=(batch, *spatial))
    y[rng.random(y.shape) < ignored] = ignore_index
    return counts, z, y


@pytest.mark.parametrize("loss_type,gamma", [("softmax", 0.0), *BINARY])
@pytest.mark.parametrize("spatial", [(5,), (4, 3), (2, 3, 2)])
def test_dense_targets_match_float64_reference(loss_type, gamma, spatial):
    rng = np.random.default_rng(zlib.crc32(repr((loss_type, gamma, spatial)).encode()))
    for trial in range(6):
        classes = int(rng.choice([2, 5, 21]))
        counts, z, y = dense_problem(rng, spatial, classes, ignored=float(rng.choice([0.0, 0.3, 0.9])))
        beta = float(rng.choice(BETAS))
        expected = ref.dense_cb(z, y, ref.cb_weights(counts, beta), loss_type, gamma)
        got = class_balanced_loss(torch.from_numpy(z), torch.from_numpy(y), counts, loss_type, beta, gamma)
        assert got.item() == pytest.approx(expected, rel=2e-6, abs=1e-12), (trial, classes, beta)
        fast = WeightedLoss(class_balanced_weights(counts, beta), loss_type, gamma, validate=False)
        torch.testing.assert_close(fast(torch.from_numpy(z), torch.from_numpy(y)), got)


def test_dense_softmax_at_beta_zero_is_cross_entropy_with_ignore_index():
    rng = np.random.default_rng(9)
    counts, z, y = dense_problem(rng, (6, 5), 4, ignored=0.4, ignore_index=255)
    z, y = torch.from_numpy(z), torch.from_numpy(y)
    got = class_balanced_loss(z, y, counts, "softmax", 0.0, ignore_index=255)
    torch.testing.assert_close(got, F.cross_entropy(z, y, ignore_index=255))
    # with weights: PyTorch's weighted sum over the valid positions, divided by their number (not by sum w)
    w = class_balanced_weights(counts, 0.999).double()
    n_valid = int((y != 255).sum())
    expected = F.cross_entropy(z, y, weight=w, ignore_index=255, reduction="sum") / n_valid
    torch.testing.assert_close(class_balanced_loss(z, y, counts, "softmax", 0.999, ignore_index=255), expected)
    weighted_mean = WeightedLoss(w, "softmax", reduction="weighted_mean", ignore_index=255)(z, y)
    torch.testing.assert_close(weighted_mean, F.cross_entropy(z, y, weight=w, ignore_index=255))


@pytest.mark.parametrize("loss_type,gamma", [("softmax", 0.0), *BINARY])
@pytest.mark.parametrize("validate", [True, False])
def test_every_position_ignored_gives_zero_with_a_zero_gradient(loss_type, gamma, validate):
    z = torch.randn(2, 3, 4, 4, requires_grad=True)
    y = torch.full((2, 4, 4), -100)
    loss = WeightedLoss(torch.ones(3), loss_type, gamma, validate=validate)(z, y)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(z.grad, torch.zeros_like(z))


def test_ignored_positions_get_no_gradient_and_any_logits():
    z = torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[[0, -100], [2, -100]]])
    class_balanced_loss(z, y, [5, 3, 1], "focal", 0.9, 1.0).backward()
    assert torch.equal(z.grad[0, :, :, 1], torch.zeros(3, 2, dtype=torch.float64))
    assert bool((z.grad[0, :, :, 0] != 0).all())


# ----------------------------------------------------------------------------- gradients, modules, functional layer
@pytest.mark.parametrize("weighting", ["sample", "class"])
@pytest.mark.parametrize("loss_type,gamma", [("sigmoid", 0.0), ("focal", 0.5)])
def test_gradcheck_multi_hot_and_dense(loss_type, gamma, weighting):
    torch.manual_seed(0)
    counts = [100, 40, 10, 3, 1]
    z = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    t = (torch.rand(6, 5) < 0.4).double()
    assert torch.autograd.gradcheck(
        lambda v: class_balanced_loss(v, t, counts, loss_type, 0.99, gamma, multilabel_weighting=weighting), (z,))
    zd = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    yd = torch.tensor([[0, -100, 4], [1, 2, 2]])
    assert torch.autograd.gradcheck(
        lambda v: class_balanced_loss(v, yd, counts, loss_type, 0.99, gamma, multilabel_weighting=weighting), (zd,))


def test_functional_layer_takes_every_form():
    rng = np.random.default_rng(10)
    counts, z, t = multi_hot_problem(rng, 8, 4)
    w = class_balanced_weights(counts, 0.99)
    z, t = torch.from_numpy(z), torch.from_numpy(t)
    w64 = ref.cb_weights(counts, 0.99)
    assert sigmoid_loss(z, t, w).item() == pytest.approx(ref.multilabel_cb(z, t, w64, 0.0, "sample"), rel=2e-6)
    assert focal_loss(z, t, w, 2.0, multilabel_weighting="class").item() == pytest.approx(
        ref.multilabel_cb(z, t, w64, 2.0, "class"), rel=2e-6)
    _, zd, yd = dense_problem(rng, (3, 3), 4, ignored=0.2)
    assert softmax_loss(torch.from_numpy(zd), torch.from_numpy(yd), w).item() == pytest.approx(
        ref.dense_cb(zd, yd, w64, "softmax"), rel=2e-6)


def test_modules_pass_the_options_on_and_show_them():
    counts = [50, 10, 2]
    crit = ClassBalancedLoss(counts, "focal", 0.99, 1.0, multilabel_weighting="class", ignore_index=255)
    assert "multilabel_weighting='class'" in repr(crit) and "ignore_index=255" in repr(crit)
    assert "multilabel" not in repr(ClassBalancedLoss(counts, "focal", 0.99, 1.0))
    z, t = torch.randn(4, 3, dtype=torch.float64), (torch.rand(4, 3) < 0.5).double()
    torch.testing.assert_close(crit(z, t), class_balanced_loss(z, t, counts, "focal", 0.99, 1.0,
                                                                multilabel_weighting="class"))
    zd, yd = torch.randn(2, 3, 4, dtype=torch.float64), torch.tensor([[0, 255, 1, 2], [255, 255, 2, 0]])
    torch.testing.assert_close(crit(zd, yd), class_balanced_loss(zd, yd, counts, "focal", 0.99, 1.0, ignore_index=255,
                                                                  multilabel_weighting="class"))
    drw = DeferredReweighting(ClassBalancedLoss(counts, "sigmoid", 0.99), drw_epoch=1)
    drw.set_epoch(2)
    torch.testing.assert_close(drw(z, t), class_balanced_loss(z, t, counts, "sigmoid", 0.99))


@pytest.mark.parametrize("loss_type,gamma", BINARY)
def test_autocast_multi_hot_and_dense(loss_type, gamma):
    torch.manual_seed(0)
    counts = [500, 100, 20, 5]
    layer = torch.nn.Conv2d(3, 4, 1)
    x, masks = torch.randn(2, 3, 5, 5), torch.randint(0, 4, (2, 5, 5))
    rows = (torch.rand(50, 4) < 0.3).float()
    crit = ClassBalancedLoss(counts, loss_type, 0.99, gamma)
    pixels = layer(x).movedim(1, -1).reshape(-1, 4)
    full_dense, full_rows = crit(layer(x), masks), crit(pixels, rows)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = layer(x)
        assert logits.dtype == torch.bfloat16
        mixed_dense, mixed_rows = crit(logits, masks), crit(logits.movedim(1, -1).reshape(-1, 4), rows)
    assert mixed_dense.dtype == mixed_rows.dtype == torch.float32
    (mixed_dense + mixed_rows).backward()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())
    torch.testing.assert_close(mixed_dense, full_dense, rtol=3e-2, atol=1e-3)
    torch.testing.assert_close(mixed_rows, full_rows, rtol=3e-2, atol=1e-3)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_multi_hot_dense_and_counts_on_cuda():
    counts = [10, 5, 1]
    z, t = torch.randn(4, 3, dtype=torch.float64), (torch.rand(4, 3) < 0.5).double()
    zd, yd = torch.randn(2, 3, 4, dtype=torch.float64), torch.tensor([[0, -100, 1, 2], [2, 2, -100, 0]])
    for weighting in ("sample", "class"):
        crit = ClassBalancedLoss(counts, "focal", 0.9, 1.0, multilabel_weighting=weighting)
        on_gpu = crit.to("cuda")(z.cuda(), t.cuda())
        assert on_gpu.device.type == "cuda"
        torch.testing.assert_close(on_gpu.cpu(), crit.to("cpu")(z, t))
        torch.testing.assert_close(crit.to("cuda")(zd.cuda(), yd.cuda()).cpu(), crit.to("cpu")(zd, yd))
    assert samples_per_class(yd.cuda(), 3).tolist() == ref.class_counts(yd.numpy(), 3)


# ----------------------------------------------------------------------------- bad input
def test_softmax_refuses_multi_hot_targets_naming_the_shape():
    with pytest.raises(ValueError, match=r"loss_type='softmax' takes class indices \[B\] = \(4,\), not multi-hot "
                                         r"targets of shape \(4, 3\); use loss_type='sigmoid' or 'focal'"):
        class_balanced_loss(torch.zeros(4, 3), torch.zeros(4, 3), [1, 2, 3], "softmax", 0.9)


@pytest.mark.parametrize("logits_shape,target_shape,match", [
    ((4, 3), (4, 2), r"targets must be class indices \[B\] = \(4,\) or multi-hot \[B, C\] = \(4, 3\) for logits "
                     r"\(4, 3\); got shape \(4, 2\)"),
    ((4, 3), (3, 3), r"got shape \(3, 3\)"),
    ((4, 3), (4, 3, 1), r"got shape \(4, 3, 1\)"),
    ((2, 3, 5), (2, 3, 5), r"targets for logits \(2, 3, 5\) \[B, C, d1, \.\.\.\] must be dense class indices "
                           r"\[B, d1, \.\.\.\] = \(2, 5\); got shape \(2, 3, 5\)"),
    ((2, 3, 5), (2,), r"= \(2, 5\); got shape \(2,\)"),
    ((3,), (3,), r"logits must be 2-D \[batch, classes\] \(or \[batch, classes, d1, \.\.\.\] with dense targets\)"),
])
def test_target_shapes_that_fit_no_form(logits_shape, target_shape, match):
    targets = torch.zeros(target_shape, dtype=torch.long if len(target_shape) != len(logits_shape) else torch.float32)
    with pytest.raises(ValueError, match=match):
        class_balanced_loss(torch.zeros(logits_shape), targets, [1, 2, 3], "sigmoid", 0.9)


@pytest.mark.parametrize("value", [0.5, 2.0, -1.0, float("nan")])
def test_multi_hot_values_other_than_zero_and_one(value):
    t = torch.zeros(3, 4)
    t[2, 1] = value
    with pytest.raises(ValueError, match=rf"multi-hot targets must be 0 or 1; got {value:g} at \(2, 1\)"):
        class_balanced_loss(torch.zeros(3, 4), t, [1, 2, 3, 4], "focal", 0.9, 1.0)


def test_target_dtypes():
    with pytest.raises(ValueError, match=r"multi-hot targets must be float or bool 0/1; got dtype torch.int64 "
                                         r"\(integer targets are class indices \[B\]\)"):
        class_balanced_loss(torch.zeros(3, 4), torch.zeros(3, 4, dtype=torch.long), [1, 2, 3, 4], "sigmoid", 0.9)
    with pytest.raises(ValueError, match="dense targets must be integer class indices; got dtype torch.float32"):
        class_balanced_loss(torch.zeros(2, 4, 5), torch.zeros(2, 5), [1, 2, 3, 4], "softmax", 0.9)


@pytest.mark.parametrize("bad", [4, -1, 255])
def test_dense_class_index_out_of_range(bad):
    y = torch.zeros(2, 3, 3, dtype=torch.long)
    y[1, 2, 0] = bad
    with pytest.raises(ValueError, match=rf"dense targets must be class indices in \[0, 4\) or ignore_index=-100; "
                                         rf"got {bad} at \(1, 2, 0\)"):
        class_balanced_loss(torch.zeros(2, 4, 3, 3), y, [1, 2, 3, 4], "softmax", 0.9)


def test_multi_hot_class_count_mismatch():
    with pytest.raises(ValueError, match="samples_per_class has 3 classes but logits have 4"):
        class_balanced_loss(torch.zeros(2, 4), torch.zeros(2, 4), [1, 2, 3], "sigmoid", 0.9)


def test_bad_options():
    with pytest.raises(ValueError, match="multilabel_weighting must be one of sample, class; got 'label'"):
        ClassBalancedLoss([1, 2], "sigmoid", 0.9, multilabel_weighting="label")
    with pytest.raises(ValueError, match="ignore_index must be an integer; got 0.5"):
        ClassBalancedLoss([1, 2], "sigmoid", 0.9, ignore_index=0.5)
    with pytest.raises(ValueError, match="ignore_index must be an integer; got '255'"):
        class_balanced_loss(torch.zeros(2, 2), torch.tensor([0, 1]), [1, 2], "softmax", 0.9, ignore_index="255")
    with pytest.raises(ValueError, match="reduction='weighted_mean' divides by the examples' weights, which "
                                         "multilabel_weighting='class' does not have; use reduction='batch'"):
        ClassBalancedLoss([1, 2], "focal", 0.9, 1.0, reduction="weighted_mean", multilabel_weighting="class")


# ----------------------------------------------------------------------------- samples_per_class
def test_samples_per_class_counts_class_indices_of_any_shape():
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 7, size=500)
    labels[labels == 3] = 2  # class 3 absent: a zero count
    got = samples_per_class(torch.from_numpy(labels), 7)
    assert got.dtype == torch.int64 and got.device.type == "cpu" and got.tolist() == ref.class_counts(labels, 7)
    assert samples_per_class(labels.tolist(), 7).tolist() == ref.class_counts(labels, 7)  # a list, or a NumPy array
    assert samples_per_class(labels.astype(np.uint8), 7).tolist() == ref.class_counts(labels, 7)
    masks = rng.integers(0, 5, size=(3, 8, 6))
    masks[rng.random(masks.shape) < 0.3] = 255
    assert samples_per_class(torch.from_numpy(masks), 5, ignore_index=255).tolist() == ref.class_counts(masks, 5, 255)
    masks[masks == 255] = -100
    assert samples_per_class(torch.from_numpy(masks), 5).tolist() == ref.class_counts(masks, 5)


def test_samples_per_class_counts_positives_of_multi_hot_rows():
    rng = np.random.default_rng(12)
    rows = (rng.random((200, 6)) < 0.2).astype(np.float32)
    assert samples_per_class(torch.from_numpy(rows), 6).tolist() == ref.multi_hot_counts(rows)
    assert samples_per_class(torch.from_numpy(rows).bool(), 6).tolist() == ref.multi_hot_counts(rows)
    # integer rows are class indices, as documented, and say so: [[1, 0, 1], [0, 1, 1]] counts 0s and 1s
    with pytest.warns(UserWarning, match=r"an integer \[N, 3\] tensor of 0 / 1 is counted as class indices"):
        assert samples_per_class(torch.tensor([[1, 0, 1], [0, 1, 1]], dtype=torch.uint8), 3).tolist() == [2, 4, 0]


@pytest.mark.parametrize("labels,num_classes,match", [
    (torch.tensor([0, 3, 1]), 3, r"labels must be class indices in \[0, 3\) or ignore_index=-100; got 3"),
    (torch.tensor([[0, -5]]), 3, r"got -5"),
    (torch.zeros(4, 2), 3, r"float / bool labels are multi-hot rows \[N, num_classes\] = \[N, 3\]; got shape \(4, 2\)"),
    (torch.zeros(4), 3, r"got shape \(4,\) \(class indices must be an integer tensor\)"),
    (torch.tensor([[0.0, 0.5, 1.0]]), 3, r"multi-hot labels must be 0 or 1; got 0.5 at \(0, 1\)"),
    (torch.tensor([0, 1]), 0, "num_classes must be an integer >= 1; got 0"),
    (torch.tensor([0, 1]), 2.0, "num_classes must be an integer >= 1; got 2.0"),
])
def test_samples_per_class_bad_input(labels, num_classes, match):
    with pytest.raises(ValueError, match=match):
        samples_per_class(labels, num_classes)


def test_a_zero_count_names_both_causes_an_absent_class_and_a_batch_count():
    batch = torch.tensor([0, 0, 2, 2, 2])  # class 1 is in the training set but not in this batch (or in neither)
    counts = samples_per_class(batch, 3)
    with pytest.raises(ValueError, match=r"class 1 has 0; a class absent from the training set has no weight to give "
                                         r"\(leave it out of the label space\), and counts must come from the whole "
                                         r"training set \(cbl\.losses\.samples_per_class\(train_labels, num_classes\)\), "
                                         r"not from a batch$"):
        ClassBalancedLoss(counts, "softmax", 0.999)
    with pytest.raises(ValueError, match=r"class 0 has -3$"):  # not a counting slip: no pointer
        class_balanced_weights([-3, 4], 0.9)
