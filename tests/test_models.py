"""cbl.models against the architecture of He et al. 2016 (parameter arithmetic written out here), torchvision's
own constructors, the authors' TensorFlow initialisation, and hand-computed shortcut outputs."""

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from cbl.models import MODEL_NAMES, ShortcutA, build_model, prior_bias_init, resnet32, use_sync_batchnorm


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def he_cifar_resnet_params(n: int, num_classes: int, in_channels: int = 3) -> int:
    """He et al. Sec. 4.2: conv3x3(16), then 3 stages of n two-conv basic blocks with 16/32/64 filters,
    a parameter-free option-A shortcut, global pooling and a dense layer.  Convs have no bias; BN has 2 per channel."""
    conv = lambda cin, cout: cin * cout * 3 * 3  # noqa: E731
    bn = lambda c: 2 * c  # noqa: E731
    total, cin = conv(in_channels, 16) + bn(16), 16
    for cout in (16, 32, 64):
        for _ in range(n):
            total += conv(cin, cout) + bn(cout) + conv(cout, cout) + bn(cout)
            cin = cout
    return total + 64 * num_classes + num_classes


# ----------------------------------------------------------------------------- ResNet-32
def test_resnet32_parameter_count_matches_he_et_al():
    model = resnet32(10)
    assert n_params(model) == he_cifar_resnet_params(5, 10) == 464_154
    assert round(n_params(model) / 1e6, 2) == 0.46  # He et al. Table 6: ResNet-32, 0.46M
    assert n_params(resnet32(100)) == he_cifar_resnet_params(5, 100)
    assert n_params(resnet32(10, in_channels=1)) == he_cifar_resnet_params(5, 10, in_channels=1)


def test_resnet32_has_31_convs_and_one_dense_layer():
    model = resnet32(10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    dense = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(convs) == 31 and len(dense) == 1 and dense[0] is model.fc
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) and c.bias is None for c in convs)
    assert sorted({c.stride for c in convs}) == [(1, 1), (2, 2)]
    assert sum(c.stride == (2, 2) for c in convs) == 2  # first conv of stages 2 and 3
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 31 and all(b.momentum == 0.1 and b.eps == 1e-5 for b in bns)
    assert [m.out_channels for m in convs[:1]] == [16] and convs[-1].out_channels == 64


def test_resnet32_output_shape_and_input_channels():
    torch.manual_seed(0)
    assert resnet32(10)(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert resnet32(100)(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    assert resnet32(10, in_channels=1)(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def option_a_reference(x: torch.Tensor, out_channels: int) -> torch.Tensor:
    """avg of each 2x2 window (TF 'SAME': a window hanging over the edge averages the pixels that exist),
    then (out - in) // 2 zero channels before and after, written as loops."""
    b, c, h, w = x.shape
    ho, wo = math.ceil(h / 2), math.ceil(w / 2)
    pad = (out_channels - c) // 2
    out = torch.zeros(b, out_channels, ho, wo, dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            window = x[:, :, 2 * i : min(2 * i + 2, h), 2 * j : min(2 * j + 2, w)]
            out[:, pad : pad + c, i, j] = window.mean(dim=(2, 3))
    return out


@pytest.mark.parametrize("size", [4, 5, 32])
def test_option_a_shortcut_is_avgpool_plus_zero_channel_pad(size):
    x = torch.arange(2 * 4 * size * size, dtype=torch.float64).reshape(2, 4, size, size) ** 1.5
    got = ShortcutA(4, 8, stride=2)(x)
    torch.testing.assert_close(got, option_a_reference(x, 8), rtol=0, atol=1e-9)
    # averaging, not the strided slice x[:, :, ::2, ::2] of common PyTorch ports
    assert not torch.allclose(got[:, 2:6], x[:, :, ::2, ::2])


def test_hand_example_of_option_a():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 6.0]]]])  # 1 channel, 2x2 -> mean 3
    out = ShortcutA(1, 3, stride=2)(x)
    assert out.shape == (1, 3, 1, 1) and out.flatten().tolist() == [0.0, 3.0, 0.0]


def test_resnet32_shortcuts_are_parameter_free_option_a():
    model = resnet32(10)
    shortcuts = [b.shortcut for stage in (model.layer1, model.layer2, model.layer3) for b in stage]
    assert len(shortcuts) == 15
    changing = [s for s in shortcuts if isinstance(s, ShortcutA)]
    assert len(changing) == 2 and changing == [model.layer2[0].shortcut, model.layer3[0].shortcut]
    assert all(isinstance(s, (ShortcutA, nn.Identity)) and not list(s.parameters()) for s in shortcuts)


def test_resnet32_block_adds_shortcut_before_the_final_relu():
    # with conv2's output zeroed (BN scale 0 -> BN output = BN shift), a block returns relu(shift + shortcut(x))
    block = resnet32(10).layer2[0].eval()
    with torch.no_grad():
        block.bn2.weight.zero_()
        block.bn2.bias.fill_(-0.25)
    x = torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(block(x), F.relu(option_a_reference(x, 32) - 0.25))


def test_resnet32_glorot_uniform_init():
    torch.manual_seed(0)
    model = resnet32(10)
    w = model.layer3[4].conv2.weight  # 64 x 64 x 3 x 3: fan_in = fan_out = 576
    fan_in = fan_out = 64 * 9
    assert w.std().item() == pytest.approx(math.sqrt(2.0 / (fan_in + fan_out)), rel=0.1)
    assert w.abs().max().item() <= math.sqrt(6.0 / (fan_in + fan_out))  # uniform on [-a, a]
    assert w.mean().abs().item() < 0.1 * w.std().item()
    fc = model.fc.weight  # 10 x 64, tf.layers.dense default is Glorot-uniform too
    assert fc.abs().max().item() <= math.sqrt(6.0 / (64 + 10))
    assert fc.std().item() == pytest.approx(math.sqrt(2.0 / (64 + 10)), rel=0.2)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


# ----------------------------------------------------------------------------- torchvision ResNets
@pytest.mark.parametrize("name", ["resnet50", "resnet101", "resnet152"])
def test_large_scale_resnets_match_torchvision(name):
    with torch.device("meta"):  # parameter shapes only: no 60M-parameter init on the CPU
        model = build_model(name, num_classes=37)
        reference = getattr(torchvision.models, name)(weights=None, num_classes=37)
    assert n_params(model) == n_params(reference)
    assert [(k, v.shape) for k, v in model.state_dict().items()] == [(k, v.shape) for k, v in reference.state_dict().items()]
    assert isinstance(model.fc, nn.Linear) and model.fc.out_features == 37


def test_resnet50_runs_at_small_input_and_uses_the_authors_init():
    torch.manual_seed(0)
    model = build_model("resnet50", num_classes=1000)
    # authors' TPU ResNet: last BN of each block starts at scale 0, dense kernel ~ N(0, 0.01)
    last_bns = [blk.bn3 for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for blk in layer]
    assert len(last_bns) == 16 and all(torch.all(bn.weight == 0) for bn in last_bns)
    assert model.fc.weight.std().item() == pytest.approx(0.01, rel=0.02) and torch.all(model.fc.bias == 0)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 1000)


def test_resnet50_in_channels_replaces_the_stem():
    with torch.device("meta"):
        one = build_model("resnet50", 10, in_channels=1)
        three = build_model("resnet50", 10)
    assert one.conv1.in_channels == 1
    assert n_params(three) - n_params(one) == 64 * 7 * 7 * 2


def test_model_options_from_configs_are_forwarded():
    assert build_model("small_cnn", 10, width=8).fc.in_features == 16
    with torch.device("meta"):
        assert build_model("resnet50", 10, zero_init_residual=False, fc_init_std=0.02).fc.out_features == 10


# ----------------------------------------------------------------------------- classifier bias
@pytest.mark.parametrize("name", ["resnet32", "small_cnn", "resnet50"])
@pytest.mark.parametrize("loss_type", ["sigmoid", "focal"])
def test_prior_bias_gives_probability_one_over_c(name, loss_type):
    for c in (2, 10, 100) if name != "resnet50" else (1000,):
        model = build_model(name, c, loss_type=loss_type)
        p = torch.sigmoid(model.fc.bias.double())
        torch.testing.assert_close(p, torch.full((c,), 1.0 / c, dtype=torch.float64), rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", ["resnet32", "small_cnn", "resnet50"])
def test_softmax_head_starts_at_zero_bias(name):
    assert torch.all(build_model(name, 10, loss_type="softmax").fc.bias == 0)


def test_prior_bias_init_rejects_bad_input():
    with pytest.raises(ValueError, match="num_classes >= 2"):
        prior_bias_init(nn.Linear(4, 1), 1)
    with pytest.raises(ValueError, match="3 outputs but num_classes is 5"):
        prior_bias_init(nn.Linear(4, 3), 5)
    with pytest.raises(ValueError, match="with a bias"):
        prior_bias_init(nn.Linear(4, 3, bias=False), 3)


# ----------------------------------------------------------------------------- registry, small CNN, SyncBN
def test_build_model_rejects_unknown_names_and_options():
    with pytest.raises(ValueError, match="unknown model 'resnet34'; choose one of resnet32, resnet50, resnet101, resnet152, small_cnn"):
        build_model("resnet34", 10)
    with pytest.raises(ValueError, match="loss_type"):
        build_model("resnet32", 10, loss_type="hinge")
    with pytest.raises(ValueError, match="unknown option"):
        build_model("resnet32", 10, width=4)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("resnet32", 0)


def test_every_registered_model_has_fc():
    for name in MODEL_NAMES:
        with torch.device("meta"):
            model = build_model(name, 7)
        assert isinstance(model.fc, nn.Linear) and model.fc.out_features == 7


def test_small_cnn_is_tiny_and_takes_digits_and_cifar_input():
    digits = build_model("small_cnn", 10, in_channels=1)
    assert 1_000 < n_params(digits) < 10_000
    assert digits(torch.randn(4, 1, 8, 8)).shape == (4, 10)
    assert build_model("small_cnn", 10)(torch.randn(4, 3, 32, 32)).shape == (4, 10)


def test_use_sync_batchnorm_converts_every_bn():
    model = use_sync_batchnorm(resnet32(10))
    assert not any(type(m) is nn.BatchNorm2d for m in model.modules())
    assert sum(isinstance(m, nn.SyncBatchNorm) for m in model.modules()) == 31
    assert n_params(model) == he_cifar_resnet_params(5, 10)
