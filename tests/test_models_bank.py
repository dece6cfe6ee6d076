"""cbl.models.bank.CifarResNetBank against the separate networks it holds: same logits, gradients, BN
statistics and SGD steps (in float64, where kernel choice cannot hide a wrong wiring), in both memory formats."""

import copy

import pytest
import torch
from torch import nn

from cbl.models import CifarResNet, build_model
from cbl.models.bank import BankError, CifarResNetBank


def members(heads=("softmax", "focal", "cosine"), classes=10, depth_model="resnet32", dtype=torch.float64):
    out = []
    for i, head in enumerate(heads):
        torch.manual_seed(100 + i)
        out.append(build_model(depth_model, classes, loss_type=head).to(dtype))
    return out


def bank_grads(bank, index):
    """Member `index`'s gradients, keyed like the member's own parameters."""
    out = {}
    for name, p in bank.named_parameters():
        if name.startswith("fcs."):
            if name.startswith(f"fcs.{index}."):
                out["fc." + name.split(".", 2)[2]] = p.grad
        else:
            out[name] = bank.block(p.grad, index)
    return out


@pytest.mark.parametrize("channels_last", [False, True])
def test_bank_forward_backward_and_bn_statistics_equal_the_separate_networks(channels_last):
    nets = members()
    bank = CifarResNetBank(nets).double()
    x = torch.randn(6, 3, 32, 32, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
        bank = bank.to(memory_format=torch.channels_last)
        nets = [n.to(memory_format=torch.channels_last) for n in nets]
    logits = bank(x)
    assert logits.shape == (3, 6, 10)
    # a different loss per member, as in a Table 2 cell: the bank's total is their sum
    weights = torch.linspace(0.5, 2.0, 10, dtype=torch.float64)
    losses = [nn.functional.cross_entropy(logits[i] * (i + 1), labels, weight=weights) for i in range(3)]
    sum(losses).backward()
    for i, net in enumerate(nets):
        out = net(x)
        torch.testing.assert_close(logits[i], out, rtol=1e-10, atol=1e-10)
        nn.functional.cross_entropy(out * (i + 1), labels, weight=weights).backward()
        got = bank_grads(bank, i)
        for name, p in net.named_parameters():
            torch.testing.assert_close(got[name], p.grad, rtol=1e-9, atol=1e-11, msg=lambda m: f"{name}: {m}")
        state = bank.member_state_dict(i)
        for name, t in net.state_dict().items():  # running means / variances after one training forward
            torch.testing.assert_close(state[name], t, rtol=1e-10, atol=1e-12, msg=lambda m: f"{name}: {m}")
    bank.eval()
    for i, net in enumerate(nets):
        torch.testing.assert_close(bank(x)[i], net.eval()(x), rtol=1e-10, atol=1e-10)


def test_sgd_on_the_bank_equals_sgd_on_each_network():
    nets = members(heads=("softmax", "sigmoid"))
    bank = CifarResNetBank(nets).double()
    make = lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=2e-4)  # noqa: E731
    opt_bank, opts = make(bank.parameters()), [make(n.parameters()) for n in nets]
    torch.manual_seed(0)
    for _ in range(3):
        x, y = torch.randn(8, 3, 32, 32, dtype=torch.float64), torch.randint(0, 10, (8,))
        opt_bank.zero_grad()
        logits = bank(x)
        sum(nn.functional.cross_entropy(logits[i], y) for i in range(2)).backward()
        opt_bank.step()
        for net, opt in zip(nets, opts):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    for i, net in enumerate(nets):
        state = bank.member_state_dict(i)
        for name, t in net.state_dict().items():
            torch.testing.assert_close(state[name], t, rtol=1e-9, atol=1e-11, msg=lambda m: f"{name}: {m}")


def test_member_state_dicts_round_trip_into_a_plain_network_and_back():
    nets = members(dtype=torch.float32)
    bank = CifarResNetBank(nets)
    for i, net in enumerate(nets):
        fresh = build_model("resnet32", 10, loss_type=("softmax", "focal", "cosine")[i])
        fresh.load_state_dict(bank.member_state_dict(i))  # CifarResNet's own keys and shapes, strict
        for name, t in net.state_dict().items():
            assert torch.equal(fresh.state_dict()[name], t), name
    # load member 0's weights into member 2's slot: only that slot changes
    before = copy.deepcopy(bank.state_dict())
    state0 = bank.member_state_dict(0)
    state0 = {k: v for k, v in state0.items() if not k.startswith("fc.")} | {
        f"fc.{k}": v for k, v in nets[2].fc.state_dict().items()
    }
    bank.load_member_state_dict(2, state0)
    now2 = bank.member_state_dict(2)
    assert all(torch.equal(now2[k], v) for k, v in state0.items())
    torch.testing.assert_close(bank.member_state_dict(1)["conv1.weight"], nets[1].conv1.weight)
    assert not torch.equal(bank.state_dict()["conv1.weight"], before["conv1.weight"])


def test_bank_refuses_models_it_cannot_hold():
    with pytest.raises(BankError, match="at least one model"):
        CifarResNetBank([])
    with pytest.raises(BankError, match="got SmallCNN"):
        CifarResNetBank([build_model("small_cnn", 10)])
    with pytest.raises(BankError, match="same depth, input channels and classes"):
        CifarResNetBank([build_model("resnet32", 10), build_model("resnet32", 100)])
    with pytest.raises(BankError, match="same depth"):
        CifarResNetBank([CifarResNet(20, 10), CifarResNet(32, 10)])
    bank = CifarResNetBank([build_model("resnet32", 10)])
    with pytest.raises(BankError, match="missing"):
        bank.load_member_state_dict(0, {"conv1.weight": torch.zeros(16, 3, 3, 3)})
