"""Beyond the paper: weighting schemes, the weighted-mean reduction, LDAM, balanced softmax, logit adjustment,
deferred re-weighting and the cosine head, against the float64 references of tests/reference.py and PyTorch's
own ops."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cbl.losses import LOSS_TYPES, ClassBalancedLoss, WeightedLoss, class_balanced_weights, weighted_loss
from cbl.losses.logit_adjustment import (BalancedSoftmaxLoss, LDAMLoss, LogitAdjustedLoss, balanced_softmax_loss,
                                         ldam_loss, ldam_margins, logit_adjusted_loss)
from cbl.losses.weighting import (WEIGHTINGS, DeferredReweighting, class_weights, deferred_weights,
                                  inverse_frequency_weights)
from cbl.models import NormedLinear, build_model, parameter_groups
from cbl.training.optim import lr_multiplier, resolve_decay_fc_bias
from tests import reference as ref


def problem(seed: int, batch: int = None, classes: int = None, scale: float = 3.0):
    rng = np.random.default_rng(seed)
    batch = batch or int(rng.integers(1, 65))
    classes = classes or int(rng.choice([2, 3, 10, 37, 100]))
    counts = rng.integers(1, 5001, size=classes)
    z = rng.normal(0.0, scale, size=(batch, classes))
    y = rng.integers(0, classes, size=batch)
    return counts, z, y


def t(z, y):
    return torch.from_numpy(z), torch.from_numpy(y)


# ----------------------------------------------------------------------------- weighting schemes
@pytest.mark.parametrize("weighting,power", [("inverse", 1.0), ("inverse_sqrt", 0.5)])
def test_inverse_weights_match_formula_and_sum_to_num_classes(weighting, power):
    rng = np.random.default_rng(0)
    for classes in (2, 10, 100, 1000):
        counts = rng.integers(1, 5001, size=classes)
        w = class_weights(counts.tolist(), weighting)
        assert w.dtype == torch.float32 and w.shape == (classes,)
        np.testing.assert_allclose(w.double().numpy(), ref.inverse_weights(counts, power), rtol=1e-6)
        assert w.sum().item() == pytest.approx(classes, rel=1e-5)
    np.testing.assert_allclose(class_weights([7] * 5, weighting).numpy(), np.ones(5), rtol=1e-6)


def test_weighting_registry_and_effective_number_is_the_cb_weights():
    assert set(WEIGHTINGS) == {"effective_number", "inverse", "inverse_sqrt"}
    counts = [5000, 2000, 500, 50, 7]
    for beta in (0.0, 0.9, 0.9999):
        assert torch.equal(class_weights(counts, "effective_number", beta), class_balanced_weights(counts, beta))
    # inverse is the beta -> 1 limit of the class-balanced weights; inverse_sqrt lies between it and all ones
    np.testing.assert_allclose(class_weights(counts, "inverse").numpy(), class_balanced_weights(counts, 1 - 1e-9).numpy(), rtol=1e-4)
    inv, sq = class_weights(counts, "inverse"), class_weights(counts, "inverse_sqrt")
    assert inv[-1] > sq[-1] > 1.0 > sq[0] > inv[0]
    assert torch.equal(inverse_frequency_weights(counts, 0.0), torch.ones(5))


def test_bad_weighting_inputs():
    with pytest.raises(ValueError, match="weighting must be one of effective_number, inverse, inverse_sqrt; got 'inv'"):
        class_weights([3, 2], "inv")
    with pytest.raises(ValueError, match="beta applies only to weighting='effective_number'; got beta=0.9 with weighting='inverse'"):
        class_weights([3, 2], "inverse", 0.9)
    with pytest.raises(ValueError, match="class 1 has 0"):
        class_weights([3, 0], "inverse_sqrt")
    with pytest.raises(ValueError, match="power must be a finite number >= 0"):
        inverse_frequency_weights([3, 2], -1.0)


# ----------------------------------------------------------------------------- reduction
@pytest.mark.parametrize("loss_type", list(LOSS_TYPES))
@pytest.mark.parametrize("reduction", ["batch", "weighted_mean"])
def test_reductions_match_the_reference(loss_type, reduction):
    for trial in range(15):
        counts, z, y = problem(100 + trial)
        w = ref.inverse_weights(counts, 0.5)
        gamma = 1.5 if loss_type == "focal" else 0.0
        onehot = np.eye(z.shape[1])[y]
        p_t = np.where(onehot == 1, 1 / (1 + np.exp(-z)), 1 - 1 / (1 + np.exp(-z)))
        per_example = {
            "softmax": ref.cross_entropy(z, y),
            "sigmoid": (-np.log(p_t)).sum(axis=1),
            "focal": ((1 - p_t) ** gamma * -np.log(p_t)).sum(axis=1),
        }[loss_type]
        expected = ref.reduce(per_example, w[y], reduction)
        got = weighted_loss(*t(z, y), torch.from_numpy(w), loss_type, gamma, reduction=reduction)
        assert got.item() == pytest.approx(expected, rel=1e-9)


def test_weighted_mean_is_pytorch_weighted_cross_entropy_and_batch_is_the_default():
    counts, z, y = problem(5, batch=24, classes=10)
    w = class_balanced_weights(counts, 0.9999).double()
    zt, yt = t(z, y)
    torch.testing.assert_close(weighted_loss(zt, yt, w, "softmax", reduction="weighted_mean"), F.cross_entropy(zt, yt, weight=w))
    torch.testing.assert_close(weighted_loss(zt, yt, w, "softmax"), F.cross_entropy(zt, yt, weight=w, reduction="sum") / 24)
    ones = torch.ones(10, dtype=torch.float64)
    torch.testing.assert_close(weighted_loss(zt, yt, ones, "focal", 2.0, reduction="weighted_mean"),
                               weighted_loss(zt, yt, ones, "focal", 2.0))
    with pytest.raises(ValueError, match="reduction must be one of batch, weighted_mean; got 'mean'"):
        weighted_loss(zt, yt, w, "softmax", reduction="mean")


def test_weighted_loss_module_is_class_balanced_loss_bit_for_bit():
    # the criterion a Table 2 run builds (WeightedLoss on the CB weights) computes exactly what it did before
    counts, z, y = problem(6, batch=32, classes=10)
    for loss_type, beta, gamma in [("softmax", 0.999, 0.0), ("sigmoid", 0.0, 0.0), ("focal", 0.9999, 0.5)]:
        a = ClassBalancedLoss(counts, loss_type, beta, gamma)
        b = WeightedLoss(class_balanced_weights(counts, beta), loss_type, gamma)
        za = torch.tensor(z, dtype=torch.float32, requires_grad=True)
        zb = za.detach().clone().requires_grad_(True)
        la, lb = a(za, torch.from_numpy(y)), b(zb, torch.from_numpy(y))
        la.backward(), lb.backward()
        assert torch.equal(la, lb) and torch.equal(za.grad, zb.grad)
    with pytest.raises(ValueError, match="weights must be a non-empty 1-D vector"):
        WeightedLoss([1.0, float("nan")])


# ----------------------------------------------------------------------------- LDAM
def test_ldam_margins_formula():
    counts = [5000, 1000, 100, 10]
    for max_m in (0.5, 0.25, 1.0):
        m = ldam_margins(counts, max_m)
        assert m.dtype == torch.float32
        np.testing.assert_allclose(m.numpy(), ref.ldam_margins(counts, max_m), rtol=1e-6)
        assert m.max().item() == pytest.approx(max_m) and m.argmax().item() == 3
    # m_i / m_j = (n_j / n_i)**(1/4)
    m = ldam_margins(counts, 0.5).double()
    assert (m[2] / m[0]).item() == pytest.approx(50 ** 0.25, rel=1e-6)


@pytest.mark.parametrize("reduction", ["batch", "weighted_mean"])
@pytest.mark.parametrize("weighted", [False, True])
def test_ldam_matches_the_reference(reduction, weighted):
    for trial in range(20):
        counts, z, y = problem(200 + trial, scale=0.5)  # cosine-sized logits
        z = np.clip(z, -1, 1)
        max_m, s = [(0.5, 30.0), (0.3, 10.0), (1.0, 1.0)][trial % 3]
        w = ref.cb_weights(counts, 0.9999) if weighted else None
        expected = ref.ldam(z, y, counts, max_m, s, w, reduction)
        wt = None if w is None else torch.from_numpy(w)
        got64 = ldam_loss(*t(z, y), ldam_margins(counts, max_m).double(), wt, s=s, reduction=reduction)
        assert got64.dtype == torch.float64
        assert got64.item() == pytest.approx(expected, rel=1e-5)  # margins are float32 by contract
        module = LDAMLoss(counts, max_m, s, wt, reduction)
        got32 = module(torch.from_numpy(z).float(), torch.from_numpy(y))
        assert got32.dtype == torch.float32 and got32.item() == pytest.approx(expected, rel=1e-4)


def test_ldam_is_the_authors_weighted_cross_entropy_and_cross_entropy_without_margins():
    # Cao et al.'s LDAMLoss: output = where(onehot, x - m[y], x); F.cross_entropy(s * output, y, weight=w)
    counts, z, y = problem(7, batch=20, classes=6, scale=0.4)
    zt, yt = t(z, y)
    m = ldam_margins(counts, 0.5).double()
    w = class_balanced_weights(counts, 0.9999).double()
    output = torch.where(F.one_hot(yt, 6).bool(), zt - m[yt][:, None], zt)
    torch.testing.assert_close(ldam_loss(zt, yt, m, w, s=30.0, reduction="weighted_mean"), F.cross_entropy(30.0 * output, yt, weight=w))
    torch.testing.assert_close(ldam_loss(zt, yt, torch.zeros(6), s=1.0), F.cross_entropy(zt, yt))


def test_ldam_module_buffers_and_gradcheck():
    crit = LDAMLoss([100, 40, 10, 3], max_m=0.5, s=30)
    assert {"weights", "margins"} <= set(dict(crit.named_buffers())) and torch.equal(crit.weights, torch.ones(4))
    torch.testing.assert_close(crit.margins, ldam_margins([100, 40, 10, 3], 0.5))
    assert "max_m=0.5" in repr(crit) and "s=30" in repr(crit)
    z = torch.rand(5, 4, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 3])
    m, w = crit.margins.double(), torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: ldam_loss(a, y, m, w, s=30.0, reduction="weighted_mean"), (z,))


# ----------------------------------------------------------------------------- balanced softmax / logit adjustment
@pytest.mark.parametrize("reduction", ["batch", "weighted_mean"])
def test_balanced_softmax_and_logit_adjustment_match_the_reference(reduction):
    for trial in range(20):
        counts, z, y = problem(300 + trial)
        w = ref.inverse_weights(counts, 0.5) if trial % 2 else None
        wt = None if w is None else torch.from_numpy(w)
        expected = ref.balanced_softmax(z, y, counts, w, reduction)
        assert balanced_softmax_loss(*t(z, y), counts, wt, reduction).item() == pytest.approx(expected, rel=1e-9)
        got32 = BalancedSoftmaxLoss(counts, wt, reduction)(torch.from_numpy(z).float(), torch.from_numpy(y))
        assert got32.item() == pytest.approx(expected, rel=1e-4)
        tau = float(np.random.default_rng(trial).uniform(0, 2))
        expected = ref.logit_adjusted(z, y, counts, tau, w, reduction)
        assert logit_adjusted_loss(*t(z, y), counts, tau, wt, reduction).item() == pytest.approx(expected, rel=1e-9)
        got32 = LogitAdjustedLoss(counts, tau, wt, reduction)(torch.from_numpy(z).float(), torch.from_numpy(y))
        assert got32.item() == pytest.approx(expected, rel=1e-4)


def test_tau_one_is_balanced_softmax_and_tau_zero_is_cross_entropy():
    counts, z, y = problem(8, batch=40, classes=12)
    zt, yt = t(z, y)
    torch.testing.assert_close(logit_adjusted_loss(zt, yt, counts, 1.0), balanced_softmax_loss(zt, yt, counts))
    torch.testing.assert_close(logit_adjusted_loss(zt, yt, counts, 0.0), F.cross_entropy(zt, yt))
    # the modules agree too (their offsets are float32 buffers)
    torch.testing.assert_close(LogitAdjustedLoss(counts, 1.0)(zt.float(), yt), BalancedSoftmaxLoss(counts)(zt.float(), yt))
    # balanced softmax is CE on z + log n: shifting every logit by a constant changes nothing
    torch.testing.assert_close(balanced_softmax_loss(zt + 7.0, yt, counts), balanced_softmax_loss(zt, yt, counts))


@pytest.mark.parametrize("make,reference", [
    # (balanced softmax is the tau = 1 logit adjustment; its ratio-form reference overflows at these logits)
    (lambda c: BalancedSoftmaxLoss(c), lambda z, y, c: ref.logit_adjusted(z, y, c, 1.0)),
    (lambda c: LogitAdjustedLoss(c, 1.5), lambda z, y, c: ref.logit_adjusted(z, y, c, 1.5)),
    (lambda c: LDAMLoss(c, 0.5, 30.0), lambda z, y, c: ref.ldam(z, y, c, 0.5, 30.0))], ids=["bs", "la", "ldam"])
def test_adjusted_losses_are_stable_and_autocast(make, reference):
    counts = [5000, 500, 50, 5]
    crit = make(counts)
    big = torch.tensor([[-1000.0, 1000.0, 0.0, 0.0], [1000.0, -1000.0, 0.0, 0.0]], requires_grad=True)
    loss = crit(big, torch.tensor([0, 0]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(big.grad).all()
    # not merely finite: the value of the float64 reference (thousands, from the wrong row alone)
    expected = reference(big.detach().double().numpy(), np.array([0, 0]), counts)
    assert expected > 900 and loss.item() == pytest.approx(expected, rel=1e-5)
    torch.manual_seed(0)
    layer, x, y = torch.nn.Linear(8, 4), torch.randn(16, 8), torch.randint(0, 4, (16,))
    full = crit(torch.tanh(layer(x)), y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = crit(torch.tanh(layer(x)), y)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, full, rtol=3e-2, atol=1e-3)
    half = crit(torch.tanh(layer(x)).detach().half(), y)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, full.detach(), rtol=1e-2, atol=1e-3)


def test_bad_inputs_of_the_adjusted_losses():
    z, y = torch.zeros(2, 3), torch.tensor([0, 2])
    for bad in (0.0, -1.0, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match=r"s \(the LDAM logit scale\) must be a finite number > 0; got"):
            LDAMLoss([3, 2, 1], s=bad)
        with pytest.raises(ValueError, match=r"max_m \(the largest LDAM margin\) must be a finite number > 0; got"):
            ldam_margins([3, 2, 1], bad)
    for bad in (-0.5, float("nan"), float("inf"), "1"):
        with pytest.raises(ValueError, match=r"tau \(the logit-adjustment temperature\) must be a finite number >= 0; got"):
            logit_adjusted_loss(z, y, [3, 2, 1], bad)
    with pytest.raises(ValueError, match="margins must have one entry per class"):
        ldam_loss(z, y, torch.zeros(4))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\); got 3 at position 1"):
        balanced_softmax_loss(z, torch.tensor([0, 3]), [3, 2, 1])
    with pytest.raises(ValueError, match="class 2 has 0"):
        BalancedSoftmaxLoss([3, 2, 0])
    with pytest.raises(ValueError, match="weights must be 3 finite numbers >= 0"):
        LogitAdjustedLoss([3, 2, 1], weights=torch.ones(2))
    with pytest.raises(ValueError, match="reduction must be one of"):
        LDAMLoss([3, 2, 1], reduction="sum")
    empty = torch.zeros(0, 3, requires_grad=True)
    loss = LDAMLoss([3, 2, 1])(empty, torch.zeros(0, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0


# ----------------------------------------------------------------------------- deferred re-weighting
def test_deferred_weights_switch_after_drw_epoch_epochs():
    w = torch.tensor([0.2, 0.8, 3.0])
    for drw_epoch in (1, 3, 160):
        for epoch in range(1, drw_epoch + 3):
            np.testing.assert_array_equal(deferred_weights(w, epoch, drw_epoch).numpy(),
                                          ref.drw_weights(w.numpy(), epoch, drw_epoch).astype(np.float32))
    assert torch.equal(deferred_weights(w, 5, None), w)
    for bad in (0, -1, 1.5, "3", True):
        with pytest.raises(ValueError, match="drw_epoch must be null or an integer >= 1"):
            deferred_weights(w, 1, bad)


def test_drw_module_switches_with_the_lr_milestone_and_replays_on_resume():
    counts = [500, 100, 20, 5]
    target = class_balanced_weights(counts, 0.9999)
    crit = DeferredReweighting(WeightedLoss(target, "softmax"), drw_epoch=3)
    z, y = torch.randn(8, 4), torch.randint(0, 4, (8,))
    with pytest.raises(RuntimeError, match="call set_epoch"):
        crit(z, y)
    steps = 10
    for epoch in range(1, 7):
        crit.set_epoch(epoch)
        expected = ref.drw_weights(target.numpy(), epoch, 3)
        np.testing.assert_array_equal(crit.loss.weights.numpy(), expected.astype(np.float32))
        torch.testing.assert_close(crit(z, y), weighted_loss(z, y, torch.from_numpy(expected).float(), "softmax"))
        assert crit.active == (epoch > 3)
        # the same epochs as an lr milestone at 3: every step of epoch e (1-based) is at 0-based epoch e - 1 + k/steps
        lr = [lr_multiplier((epoch - 1) * steps + k, steps, 0, [3], [0.1]) for k in range(steps)]
        assert set(lr) == ({0.1} if crit.active else {1.0})
    # a fresh criterion (a resumed run) set to epoch 5 is in the same state as one that went through 1..5
    fresh = DeferredReweighting(WeightedLoss(target, "softmax"), drw_epoch=3)
    fresh.set_epoch(5)
    crit.set_epoch(5)
    assert torch.equal(fresh(z, y), crit(z, y))
    assert "drw_epoch=3" in repr(crit)
    with pytest.raises(ValueError, match="needs a loss with a `weights` buffer"):
        DeferredReweighting(torch.nn.CrossEntropyLoss(), 3)


def test_drw_wraps_ldam_and_moves_with_to():
    counts = [500, 100, 20, 5]
    crit = DeferredReweighting(LDAMLoss(counts, weights=class_balanced_weights(counts, 0.9999), reduction="weighted_mean"), 2)
    crit = crit.to(torch.float64)
    assert crit.deferred.dtype == torch.float64 and crit.loss.weights.dtype == torch.float64
    z, y = torch.rand(6, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 3, 2])
    crit.set_epoch(1)
    assert crit(z, y).item() == pytest.approx(ref.ldam(z.numpy(), y.numpy(), counts, 0.5, 30.0, None, "weighted_mean"), rel=1e-5)
    crit.set_epoch(3)
    w = ref.cb_weights(counts, 0.9999)
    assert crit(z, y).item() == pytest.approx(ref.ldam(z.numpy(), y.numpy(), counts, 0.5, 30.0, w, "weighted_mean"), rel=1e-5)


# ----------------------------------------------------------------------------- cosine head
def test_normed_linear_outputs_cosines_and_builds_into_every_model():
    torch.manual_seed(0)
    fc = NormedLinear(6, 4)
    assert fc.bias is None
    np.testing.assert_allclose(fc.weight.norm(dim=1).detach().numpy(), np.ones(4), rtol=1e-6)
    x = torch.randn(5, 6)
    expected = F.cosine_similarity(x[:, None, :], fc.weight[None, :, :], dim=2)
    torch.testing.assert_close(fc(x), expected)
    with torch.no_grad():
        fc.weight.mul_(7.0)  # the scale of a row never matters
    torch.testing.assert_close(fc(x), expected)
    for name in ("small_cnn", "resnet32"):
        model = build_model(name, 10, loss_type="cosine")
        assert isinstance(model.fc, NormedLinear)
        out = model(torch.randn(2, 3, 32, 32))
        assert out.shape == (2, 10) and out.abs().max() <= 1 + 1e-6
        groups = parameter_groups(model, 2e-4, decay_bn=True, decay_fc_bias=resolve_decay_fc_bias("auto", "cosine"))
        assert any(p is model.fc.weight for p in groups[0]["params"])


def test_deferred_reweighting_counts_epochs_from_1():
    drw = DeferredReweighting(ClassBalancedLoss([500, 20, 5], beta=0.999), drw_epoch=2)
    with pytest.raises(ValueError, match=r"epoch must be an integer >= 1 \(epochs count from 1: the first epoch is 1\); got 0"):
        drw.set_epoch(0)  # a 0-based loop would re-weight one epoch later than drw_epoch says
    assert [(drw.set_epoch(e), drw.active)[1] for e in (1, 2, 3)] == [False, False, True]
