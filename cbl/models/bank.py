"""A bank of K CIFAR ResNets trained as one network: K configurations of Table 2 in one pass over the batch.

The runs of one Table 2 cell (same dataset, seed, schedule; different loss / beta / gamma) see the very same
batches, so their K networks can share every kernel launch.  `CifarResNetBank` is K `CifarResNet`s laid side by
side along the channel axis:

    stem conv      3 -> K*16 channels, one ordinary conv: output block k is member k's conv of the shared image
    block convs    K*c_in -> K*c_out with groups=K: output block k only sees input block k (member k's weights)
    batch norm     K*c channels: per-channel statistics, so block k is member k's BN exactly
    option-A pad   per member: (B, K*c, H, W) -> (B, K, c, H, W), zero-pad c, back
    classifier     K separate heads (each member's own `fc`, any head type), logits stacked to (K, B, C)

Every tensor of the body is the concatenation along dim 0 of the members' tensors (a grouped conv weight
(K*c_out, c_in, 3, 3) is the members' (c_out, c_in, 3, 3) weights one after another), so member k's forward,
gradients, SGD update and BN statistics are those of the separate network, up to float rounding (the kernels
differ).  `member_state_dict(k)` returns member k's state dict in `CifarResNet`'s own format, so each member
checkpoints, resumes and evaluates like a separate run (cbl/training/bank.py).

Public API: `CifarResNetBank`, `BankError`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cbl.models.resnet_cifar import CifarResNet, batch_norm


class BankError(ValueError):
    """The models cannot share one bank (different architectures, or not a CIFAR ResNet)."""


class _GroupedShortcutA(nn.Module):
    """Option-A shortcut of each member: average-pool, then zero-pad each member's channel block."""

    def __init__(self, members: int, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.members, self.in_channels, self.stride = members, in_channels, stride
        self.pad = (out_channels - in_channels) // 2

    def forward(self, x: Tensor) -> Tensor:
        if self.stride != 1:
            x = F.avg_pool2d(x, kernel_size=self.stride, stride=self.stride, ceil_mode=True)
        if self.pad:
            channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
            b, _, h, w = x.shape
            x = F.pad(x.reshape(b, self.members, self.in_channels, h, w), (0, 0, 0, 0, self.pad, self.pad))
            x = x.reshape(b, -1, h, w)
            if channels_last:  # keep the layout of the residual branch it is added to
                x = x.contiguous(memory_format=torch.channels_last)
        return x


class _GroupedBlock(nn.Module):
    """K v1 basic blocks side by side (same attribute names as cbl.models.resnet_cifar.BasicBlock)."""

    def __init__(self, members: int, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        k = members
        self.conv1 = nn.Conv2d(k * in_channels, k * out_channels, 3, stride, 1, groups=k, bias=False)
        self.bn1 = batch_norm(k * out_channels)
        self.conv2 = nn.Conv2d(k * out_channels, k * out_channels, 3, 1, 1, groups=k, bias=False)
        self.bn2 = batch_norm(k * out_channels)
        changes = in_channels != out_channels or stride != 1
        self.shortcut = _GroupedShortcutA(k, in_channels, out_channels, stride) if changes else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNetBank(nn.Module):
    """K `CifarResNet`s of the same depth, classes and input channels, as one grouped network.

    `forward(x)` maps a batch (B, C_in, H, W) to logits (K, B, num_classes): member k's logits are
    `members[k](x)`.  The members are copied (they are not modified, and the bank does not track them).
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        members = list(members)
        _check_members(members)
        first: CifarResNet = members[0]
        k = self.members = len(members)
        blocks_per_stage = len(first.layer1)
        self.depth = first.depth
        in_channels = first.conv1.in_channels

        self.conv1 = nn.Conv2d(in_channels, k * first.conv1.out_channels, 3, 1, 1, bias=False)
        self.bn1 = batch_norm(k * first.conv1.out_channels)
        stages = []
        for stage in (first.layer1, first.layer2, first.layer3):
            blocks = [_GroupedBlock(k, b.conv1.in_channels, b.conv1.out_channels, b.conv1.stride[0]) for b in stage]
            stages.append(nn.Sequential(*blocks))
        assert all(len(s) == blocks_per_stage for s in stages)
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fcs = nn.ModuleList(copy.deepcopy(m.fc) for m in members)
        for i, m in enumerate(members):
            self.load_member_state_dict(i, m.state_dict())

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        features = self.pool(x).flatten(1).unflatten(1, (self.members, -1))  # (B, K, features)
        return torch.stack([fc(features[:, i]) for i, fc in enumerate(self.fcs)])

    # ------------------------------------------------------------------ members in and out
    def _body(self) -> dict[str, Tensor]:
        return {name: t for name, t in self.state_dict(keep_vars=True).items() if not name.startswith("fcs.")}

    def member_state_dict(self, index: int) -> dict[str, Tensor]:
        """Member `index`'s state dict, with `CifarResNet`'s keys and shapes (detached copies)."""
        out = {}
        for name, t in self._body().items():
            out[name] = t.detach().clone() if name.endswith("num_batches_tracked") else self.block(t, index).clone()
        out.update({f"fc.{n}": t.detach().clone() for n, t in self.fcs[index].state_dict().items()})
        return out

    def load_member_state_dict(self, index: int, state: dict[str, Tensor]) -> None:
        """Copy a `CifarResNet` state dict into member `index` (strict: the keys and shapes must match)."""
        body = self._body()
        expected = set(body) | {f"fc.{n}" for n in self.fcs[index].state_dict()}
        if set(state) != expected:
            missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
            raise BankError(f"member state dict does not fit the bank: missing {missing[:3]}, unexpected {extra[:3]}")
        with torch.no_grad():
            for name, t in body.items():
                if name.endswith("num_batches_tracked"):
                    t.copy_(state[name])  # one counter for all: the members step together
                else:
                    self.block(t, index).copy_(state[name])
        self.fcs[index].load_state_dict({n[3:]: v for n, v in state.items() if n.startswith("fc.")})

    def block(self, tensor: Tensor, index: int) -> Tensor:
        """Member `index`'s block (a view) of a body tensor, its parameter or its gradient or optimizer state."""
        return tensor.detach().chunk(self.members, dim=0)[index]


def _check_members(members: list[nn.Module]) -> None:
    if not members:
        raise BankError("a model bank needs at least one model")
    for m in members:
        if type(m) is not CifarResNet:
            raise BankError(f"a model bank holds CIFAR ResNets (model resnet32); got {type(m).__name__}")
    shapes = [(m.depth, m.conv1.in_channels, m.fc.in_features, m.fc.out_features) for m in members]
    if len(set(shapes)) > 1:
        raise BankError(
            f"the models of a bank must have the same depth, input channels and classes; got {sorted(set(shapes))}"
        )
