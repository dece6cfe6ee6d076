"""cbl.losses.class_balanced against independent float64 references (tests/reference.py) and against PyTorch's own ops."""

import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cbl.losses import (LOSS_TYPES, REDUCTIONS, ClassBalancedLoss, class_balanced_loss, class_balanced_weights, effective_number,
                        weighted_loss)
from tests import reference as ref

BETAS = [0.0, 0.9, 0.99, 0.999, 0.9999]


def random_problem(rng: np.random.Generator, batch: int, classes: int, scale: float = 4.0):
    counts = rng.integers(1, 5001, size=classes)
    z = rng.normal(0.0, scale, size=(batch, classes))
    y = rng.integers(0, classes, size=batch)
    return counts, z, y


# ----------------------------------------------------------------------------- weights
@pytest.mark.parametrize("beta", BETAS + [0.5, 0.99999])
def test_weights_match_formula_and_sum_to_num_classes(beta):
    rng = np.random.default_rng(0)
    for classes in (2, 10, 100, 1000):
        counts = rng.integers(1, 5001, size=classes)
        w = class_balanced_weights(counts.tolist(), beta)
        assert w.dtype == torch.float32 and w.shape == (classes,)
        np.testing.assert_allclose(w.double().numpy(), ref.cb_weights(counts, beta), rtol=1e-6)
        assert w.sum().item() == pytest.approx(classes, rel=1e-5)


def test_effective_number_matches_definition():
    counts = np.array([1, 2, 10, 500, 5000])
    for beta in (0.5, 0.9, 0.999, 0.9999):
        expected = (1 - beta ** counts.astype(np.float64)) / (1 - beta)
        np.testing.assert_allclose(effective_number(counts, beta).numpy(), expected, rtol=1e-12)
    # one sample is always worth exactly one; beta=0 counts every class as one sample
    assert effective_number([1], 0.9999).item() == pytest.approx(1.0)
    assert effective_number(counts, 0.0).tolist() == [1.0] * 5


def test_beta_zero_gives_ones_and_beta_to_one_gives_inverse_frequency():
    counts = [5000, 2000, 500, 50, 7]
    assert class_balanced_weights(counts, 0.0).tolist() == [1.0] * 5
    inv = 1.0 / np.asarray(counts, dtype=np.float64)
    inv = inv / inv.sum() * len(counts)
    np.testing.assert_allclose(class_balanced_weights(counts, 1 - 1e-9).numpy(), inv, rtol=1e-4)
    # monotone in beta: the tail weight grows as beta approaches 1
    tail = [class_balanced_weights(counts, b)[-1].item() for b in BETAS]
    assert all(a < b for a, b in zip(tail, tail[1:])), tail


def test_equal_counts_give_equal_weights_for_any_beta():
    for beta in BETAS:
        np.testing.assert_allclose(class_balanced_weights([500] * 10, beta).numpy(), np.ones(10), rtol=1e-6)


# ----------------------------------------------------------------------------- losses vs float64 reference
REFERENCE = {
    "softmax": lambda z, y, w, g: ref.softmax_cb(z, y, w),
    "sigmoid": lambda z, y, w, g: ref.sigmoid_cb(z, y, w),
    "focal": ref.focal_cb,
}


@pytest.mark.parametrize("loss_type", list(LOSS_TYPES))
def test_losses_match_float64_reference_on_random_inputs(loss_type):
    rng = np.random.default_rng(zlib.crc32(loss_type.encode()))  # the same inputs in every process
    for trial in range(40):
        batch = int(rng.integers(1, 65))
        classes = int(rng.choice([2, 3, 10, 37, 100, 1000]))
        counts, z, y = random_problem(rng, batch, classes)
        beta = float(rng.choice(BETAS + [float(rng.uniform(0, 0.99999))]))
        gamma = float(rng.uniform(0, 3)) if loss_type == "focal" else 0.0
        expected = REFERENCE[loss_type](z, y, ref.cb_weights(counts, beta), gamma)

        got64 = class_balanced_loss(torch.from_numpy(z), torch.from_numpy(y), counts, loss_type, beta, gamma)
        assert got64.dtype == torch.float64
        # weights are float32 by contract, so agreement is to float32 precision even in float64
        assert got64.item() == pytest.approx(expected, rel=2e-6), (trial, batch, classes, beta, gamma)

        got32 = class_balanced_loss(torch.from_numpy(z).float(), torch.from_numpy(y), counts, loss_type, beta, gamma)
        assert got32.dtype == torch.float32
        assert got32.item() == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_beta_zero_softmax_equals_cross_entropy():
    rng = np.random.default_rng(1)
    counts, z, y = random_problem(rng, 32, 10)
    z, y = torch.from_numpy(z), torch.from_numpy(y)
    got = class_balanced_loss(z, y, counts, "softmax", beta=0.0)
    torch.testing.assert_close(got, F.cross_entropy(z, y))


def test_beta_zero_sigmoid_equals_bce_with_logits_summed_over_classes():
    rng = np.random.default_rng(2)
    counts, z, y = random_problem(rng, 16, 7)
    z, y = torch.from_numpy(z), torch.from_numpy(y)
    onehot = F.one_hot(y, 7).double()
    expected = F.binary_cross_entropy_with_logits(z, onehot, reduction="sum") / 16  # / B, not / (B*C)
    torch.testing.assert_close(class_balanced_loss(z, y, counts, "sigmoid", beta=0.0), expected)


def test_gamma_zero_focal_equals_sigmoid():
    rng = np.random.default_rng(3)
    counts, z, y = random_problem(rng, 20, 12)
    z, y = torch.from_numpy(z), torch.from_numpy(y)
    for beta in BETAS:
        torch.testing.assert_close(
            class_balanced_loss(z, y, counts, "focal", beta, gamma=0.0),
            class_balanced_loss(z, y, counts, "sigmoid", beta),
        )


def test_softmax_normalises_by_batch_size_not_by_sum_of_weights():
    rng = np.random.default_rng(4)
    counts, z, y = random_problem(rng, 24, 10)
    z, y = torch.from_numpy(z), torch.from_numpy(y)
    w = class_balanced_weights(counts, 0.9999).double()
    got = class_balanced_loss(z, y, counts, "softmax", 0.9999)
    torch.testing.assert_close(got, F.cross_entropy(z, y, weight=w, reduction="sum") / 24)
    # ...which is not what F.cross_entropy(weight=w) (normalised by sum w[y]) returns
    assert not torch.allclose(got, F.cross_entropy(z, y, weight=w))


def test_each_example_gets_the_weight_of_its_true_class_on_every_term():
    # two examples of the same class contribute with the same weight whatever their logits
    counts = [1000, 10]
    w = ref.cb_weights(counts, 0.999)
    z = np.array([[3.0, -1.0], [0.5, 2.0]])
    y = np.array([1, 1])
    for loss_type in LOSS_TYPES:
        gamma = 1.5 if loss_type == "focal" else 0.0
        got = class_balanced_loss(torch.from_numpy(z), torch.from_numpy(y), counts, loss_type, 0.999, gamma).item()
        unweighted = REFERENCE[loss_type](z, y, np.ones(2), gamma)
        assert got == pytest.approx(w[1] * unweighted, rel=1e-6)


@pytest.mark.parametrize("loss_type,gamma", [("softmax", 0.0), ("sigmoid", 0.0), ("focal", 0.5), ("focal", 2.0)])
def test_gradcheck_float64(loss_type, gamma):
    torch.manual_seed(0)
    z = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 5, (6,))
    counts = [100, 40, 10, 3, 1]
    assert torch.autograd.gradcheck(lambda t: class_balanced_loss(t, y, counts, loss_type, 0.99, gamma), (z,))
    assert torch.autograd.gradgradcheck(lambda t: class_balanced_loss(t, y, counts, loss_type, 0.99, gamma), (z,))


# ----------------------------------------------------------------------------- numerical stability
@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("magnitude", [100.0, 1000.0, 1e4])
def test_focal_is_finite_with_the_right_limits_at_huge_logits(gamma, magnitude):
    # Row 0: confidently wrong (true class very negative, other class very positive): every term is
    # -log p_t = |z| with modulator -> 1, so the loss is 2|z| and d/dz = -1 (true), +1 (other).
    # Row 1: confidently right: the loss and its gradient vanish.
    z = torch.tensor([[-magnitude, magnitude], [magnitude, -magnitude]], dtype=torch.float32, requires_grad=True)
    y = torch.tensor([0, 0])
    w = torch.ones(2)
    loss = weighted_loss(z, y, w, "focal", gamma)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()
    assert loss.item() == pytest.approx(2 * magnitude / 2, rel=1e-6)  # / B with B = 2
    torch.testing.assert_close(z.grad[0], torch.tensor([-0.5, 0.5]))
    torch.testing.assert_close(z.grad[1], torch.zeros(2))


def test_true_class_at_minus_100_where_the_authors_form_fails():
    # True class with z = -100 in float32: (1 - p_t)^g = (1 - sigmoid(-100))^g = 1 and -log p_t = 100.
    # The authors' exp(-g*y*z - g*log1p(exp(-z))) gives exp(50 - inf) = 0 here, losing the example.
    z = torch.tensor([[-100.0, -100.0]])
    authors = torch.exp(-0.5 * 1.0 * z[0, 0] - 0.5 * torch.log1p(torch.exp(-z[0, 0])))
    assert authors.item() == 0.0
    loss = weighted_loss(z, torch.tensor([0]), torch.ones(2), "focal", 0.5)
    # true-class term 100 * 1; other class: -log(1 - sigmoid(-100)) ~ 3.7e-44 with modulator ~ 1e-22
    assert loss.item() == pytest.approx(100.0, rel=1e-6)


@pytest.mark.parametrize("loss_type", list(LOSS_TYPES))
def test_half_precision_and_autocast(loss_type):
    torch.manual_seed(0)
    counts = [500, 100, 20, 5]
    gamma = 1.0 if loss_type == "focal" else 0.0
    x = torch.randn(16, 8)
    y = torch.randint(0, 4, (16,))
    layer = torch.nn.Linear(8, 4)
    full = class_balanced_loss(layer(x), y, counts, loss_type, 0.99, gamma)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = layer(x)
        assert logits.dtype == torch.bfloat16
        mixed = class_balanced_loss(logits, y, counts, loss_type, 0.99, gamma)
    assert mixed.dtype == torch.float32
    mixed.backward()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())
    torch.testing.assert_close(mixed, full, rtol=3e-2, atol=1e-3)
    half = class_balanced_loss(layer(x).detach().half(), y, counts, loss_type, 0.99, gamma)
    torch.testing.assert_close(half, full.detach(), rtol=1e-2, atol=1e-3)


def test_integer_label_dtypes():
    z = torch.randn(5, 3, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 2, 0])
    base = class_balanced_loss(z, y, [3, 2, 1], "softmax", 0.9)
    for dtype in (torch.int32, torch.int16, torch.uint8):
        torch.testing.assert_close(class_balanced_loss(z, y.to(dtype), [3, 2, 1], "softmax", 0.9), base)


def test_empty_batch_gives_zero_with_a_graph():
    z = torch.zeros(0, 4, requires_grad=True)
    loss = class_balanced_loss(z, torch.zeros(0, dtype=torch.long), [1, 2, 3, 4], "focal", 0.9, 2.0)
    loss.backward()
    assert loss.item() == 0.0


# ----------------------------------------------------------------------------- module wrapper
def test_module_matches_function_and_holds_weights_as_buffer():
    counts = [5000, 1000, 100, 10]
    crit = ClassBalancedLoss(counts, loss_type="focal", beta=0.999, gamma=0.5)
    assert "weights" in dict(crit.named_buffers()) and "weights" in crit.state_dict()
    torch.testing.assert_close(crit.weights, class_balanced_weights(counts, 0.999))
    z, y = torch.randn(8, 4), torch.randint(0, 4, (8,))
    torch.testing.assert_close(crit(z, y), class_balanced_loss(z, y, counts, "focal", 0.999, 0.5))
    moved = crit.to(torch.float64)  # .to() converts the buffer; the loss follows the logits' dtype
    assert moved.weights.dtype == torch.float64
    assert "focal" in repr(crit) and "0.999" in repr(crit)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_module_to_cuda():
    crit = ClassBalancedLoss([10, 5, 1], "sigmoid", 0.9).to("cuda")
    z, y = torch.randn(4, 3, device="cuda"), torch.tensor([0, 1, 2, 2], device="cuda")
    assert crit(z, y).device.type == "cuda"


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("beta", [-0.1, 1.0, 1.5, float("nan"), float("inf"), "0.9", None, True])
def test_bad_beta(beta):
    with pytest.raises(ValueError, match=r"beta must be a number in \[0, 1\); got"):
        class_balanced_weights([10, 5], beta)
    with pytest.raises(ValueError, match="beta"):
        ClassBalancedLoss([10, 5], "softmax", beta)


@pytest.mark.parametrize("gamma", [-1.0, -1e-9, float("nan"), float("inf"), "2"])
def test_bad_gamma(gamma):
    with pytest.raises(ValueError, match="gamma must be a finite number >= 0; got"):
        class_balanced_loss(torch.zeros(2, 2), torch.tensor([0, 1]), [3, 3], "focal", 0.9, gamma)


def test_gamma_with_a_non_focal_loss_is_rejected():
    with pytest.raises(ValueError, match="gamma applies only to loss_type='focal'"):
        ClassBalancedLoss([3, 3], "softmax", 0.9, gamma=2.0)


@pytest.mark.parametrize(
    "counts,match",
    [([10, 0, 5], "class 1 has 0"), ([-3, 4], "class 0 has -3"), ([], "non-empty"), ([[1, 2]], "1-D"),
     ([5, float("nan")], "class 1 has nan")],
)
def test_bad_counts(counts, match):
    with pytest.raises(ValueError, match=match):
        class_balanced_weights(counts, 0.9)


def test_bad_loss_type():
    with pytest.raises(ValueError, match="loss_type must be one of softmax, sigmoid, focal; got 'hinge'"):
        class_balanced_loss(torch.zeros(1, 2), torch.tensor([0]), [1, 1], "hinge", 0.9)
    with pytest.raises(ValueError, match="loss_type"):
        ClassBalancedLoss([1, 1], "Softmax")


@pytest.mark.parametrize("bad_label", [-1, 3, 100])
def test_label_out_of_range(bad_label):
    with pytest.raises(ValueError, match=rf"labels must lie in \[0, 3\); got {bad_label} at position 1"):
        class_balanced_loss(torch.zeros(2, 3), torch.tensor([0, bad_label]), [1, 1, 1], "softmax", 0.9)


def test_shape_mismatches():
    with pytest.raises(ValueError, match="logits must be 2-D"):
        class_balanced_loss(torch.zeros(3), torch.tensor([0, 1, 2]), [1, 1, 1], "softmax", 0.9)
    with pytest.raises(ValueError, match="one entry per logits row"):
        class_balanced_loss(torch.zeros(3, 3), torch.tensor([0, 1]), [1, 1, 1], "softmax", 0.9)
    with pytest.raises(ValueError, match="samples_per_class has 4 classes but logits have 3"):
        class_balanced_loss(torch.zeros(2, 3), torch.tensor([0, 1]), [1, 1, 1, 1], "sigmoid", 0.9)
    with pytest.raises(ValueError, match="integer class indices"):
        class_balanced_loss(torch.zeros(2, 3), torch.tensor([0.0, 1.0]), [1, 1, 1], "softmax", 0.9)
    with pytest.raises(ValueError, match="floating-point"):
        class_balanced_loss(torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, 1]), [1, 1, 1], "softmax", 0.9)


def test_every_registered_loss_type_is_tested():
    assert set(LOSS_TYPES) == set(REFERENCE) == {"softmax", "sigmoid", "focal"}


# ----------------------------------------------------------------------------- what a user of the library runs into
def test_the_module_needs_beta_as_the_function_does():
    with pytest.raises(ValueError, match=r"^ClassBalancedLoss needs beta, a number in \[0, 1\) \(beta=0 gives the unweighted loss\)$"):
        ClassBalancedLoss([10, 5, 1], loss_type="focal", gamma=2.0)
    with pytest.raises(TypeError, match="beta"):
        class_balanced_loss(torch.zeros(2, 3), torch.tensor([0, 1]), [10, 5, 1], "softmax")


def test_beta_may_be_a_0d_tensor_and_means_the_value_it_holds():
    counts = [100, 10, 1]
    for beta in (torch.tensor(0.9999), torch.tensor(0.9999, dtype=torch.float64)):  # float32 holds 0.99989998...
        assert torch.equal(ClassBalancedLoss(counts, beta=beta).weights,
                           ClassBalancedLoss(counts, beta=float(beta)).weights)
    with pytest.raises(ValueError, match=r"beta must be a number in \[0, 1\)"):
        ClassBalancedLoss(counts, beta=torch.tensor(1.0))


def test_the_function_takes_reduction_and_validate_as_the_module_does():
    g = torch.Generator().manual_seed(0)
    z, y, counts = torch.randn(6, 3, generator=g), torch.tensor([0, 1, 2, 0, 0, 1]), [50, 10, 2]
    for reduction in REDUCTIONS:
        module = ClassBalancedLoss(counts, "softmax", 0.99, reduction=reduction)(z, y)
        assert torch.equal(class_balanced_loss(z, y, counts, "softmax", 0.99, reduction=reduction), module)
    # weighted_mean is PyTorch's weighted cross-entropy (an independent reference)
    w = class_balanced_weights(counts, 0.99)
    torch.testing.assert_close(class_balanced_loss(z, y, counts, "softmax", 0.99, reduction="weighted_mean"),
                               F.cross_entropy(z, y, weight=w))
    with pytest.raises(ValueError, match="labels must lie in"):
        class_balanced_loss(z, torch.tensor([0, 1, 2, 0, 0, 3]), counts, "softmax", 0.99)
    # validate=False skips the label check (no host sync): the bad label then fails inside torch, not here
    with pytest.raises((IndexError, RuntimeError)):
        class_balanced_loss(z, torch.tensor([0, 1, 2, 0, 0, 3]), counts, "softmax", 0.99, validate=False)


def test_padding_labels_in_class_indices_get_a_pointer_to_drop_them():
    z = torch.zeros(4, 3)
    crit = ClassBalancedLoss([5, 3, 1], beta=0.9)
    with pytest.raises(ValueError, match=r"got -100 at position 2 \(ignore_index applies to dense targets \[B, d1, \.\.\.\] "
                                         r"only: drop the ignored rows first"):
        crit(z, torch.tensor([0, 1, -100, 0]))
    keep = torch.tensor([0, 1, -100, 0]) != -100  # the recipe the message gives
    assert torch.isfinite(crit(z[keep], torch.tensor([0, 1, -100, 0])[keep]))
    with pytest.raises(ValueError, match=r"got -1 at position 0$"):  # not padding: no pointer
        crit(z, torch.tensor([-1, 1, 2, 0]))


def test_logits_and_labels_on_two_devices_get_one_line():
    z = torch.zeros(2, 3, device="meta")  # stands for a GPU: any device other than the labels'
    for labels in (torch.tensor([0, 1]), torch.tensor([[1.0, 0, 0], [0, 1, 0]])):
        loss_type = "softmax" if labels.dim() == 1 else "sigmoid"
        with pytest.raises(ValueError, match=r"^logits are on meta but labels on cpu; move both to one device$"):
            ClassBalancedLoss([5, 3, 1], loss_type, beta=0.9)(z, labels)
