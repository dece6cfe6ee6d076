"""ResNet-32 for CIFAR (He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016, Sec. 4.2),
as built by the class-balanced-loss authors' TensorFlow code (richardaecn/class-balanced-loss,
src/cifar_model.py `ResNetCifar(version='v1')` and src/model_base.py `_residual_v1`).

Architecture (depth = 6n + 2, n = 5 for ResNet-32):
    conv3x3(16) -> BN -> ReLU
    3 stages x n basic blocks, 16 / 32 / 64 channels, first-block strides 1 / 2 / 2
    global average pool -> dense(num_classes)                      (6n + 1 convs + 1 dense = depth weighted layers)
Basic block (v1, post-activation): conv3x3 -> BN -> ReLU -> conv3x3 -> BN, add shortcut, ReLU.
Shortcut (He et al.'s option A, parameter-free): identity, or where the channels change
    2x2 average pool with stride 2, then zero channels padded (out - in) // 2 on each side.
Initialisation: `tf.layers` defaults (Glorot-uniform kernels, zero biases), BN weight 1 / bias 0.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from cbl.models.initialization import glorot_init_

CIFAR_STAGE_CHANNELS = (16, 32, 64)
CIFAR_STAGE_STRIDES = (1, 2, 2)
STEM_CHANNELS = 16


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    # The authors pad a strided conv explicitly by 1 on each side then use VALID, and use SAME for stride 1:
    # for a 3x3 kernel both are padding=1.  No bias: every conv is followed by BN.
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def batch_norm(channels: int) -> nn.BatchNorm2d:
    # TF batch_norm decay 0.9 is PyTorch momentum 0.1; epsilon 1e-5.  Both are PyTorch's defaults, spelt out here.
    return nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)


class ShortcutA(nn.Module):
    """Option-A shortcut: average-pool spatially, then zero-pad channels symmetrically.  No parameters.

    This follows the authors' `_residual_v1`: `avg_pool(pool=stride, stride=stride, 'SAME')` then
    `pad((out - in) // 2, (out - in) // 2)` on the channel axis.  It is NOT the strided slice
    `x[:, :, ::2, ::2]` of common PyTorch ports, which keeps one pixel in four instead of averaging the four.
    `ceil_mode=True` reproduces TF's 'SAME' pooling on odd sizes (the last window averages only the
    pixels that exist); on CIFAR's even 32/16/8 sizes it makes no difference.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels or (out_channels - in_channels) % 2:
            raise ValueError(
                f"option-A shortcut pads channels equally on both sides, so out - in must be even and >= 0; "
                f"got in={in_channels}, out={out_channels}"
            )
        self.stride = stride
        self.pad = (out_channels - in_channels) // 2

    def forward(self, x: Tensor) -> Tensor:
        if self.stride != 1:
            x = F.avg_pool2d(x, kernel_size=self.stride, stride=self.stride, ceil_mode=True)
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, self.pad, self.pad))  # (W, H, C) pairs from the last dim: pads C
        return x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, channel_pad={self.pad}"


class BasicBlock(nn.Module):
    """v1 (post-activation) basic block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = batch_norm(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = batch_norm(out_channels)
        # the authors switch to the option-A path only when the channels change (which is where the stride is 2)
        changes = in_channels != out_channels or stride != 1
        self.shortcut = ShortcutA(in_channels, out_channels, stride) if changes else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet of depth 6n + 2 (20, 32, 44, 56, 110, ...).  The classifier is `self.fc`."""

    def __init__(self, depth: int, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110, ...); got {depth!r}")
        check_positive_int("num_classes", num_classes)
        check_positive_int("in_channels", in_channels)
        blocks_per_stage = (depth - 2) // 6
        self.depth = depth

        self.conv1 = conv3x3(in_channels, STEM_CHANNELS)
        self.bn1 = batch_norm(STEM_CHANNELS)
        stages, channels = [], STEM_CHANNELS
        for out_channels, stride in zip(CIFAR_STAGE_CHANNELS, CIFAR_STAGE_STRIDES):
            blocks = [BasicBlock(channels, out_channels, stride)]
            blocks += [BasicBlock(out_channels, out_channels, 1) for _ in range(blocks_per_stage - 1)]
            stages.append(nn.Sequential(*blocks))
            channels = out_channels
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        glorot_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.pool(x).flatten(1))


def check_positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")


def resnet32(num_classes: int, in_channels: int = 3) -> CifarResNet:
    """ResNet-32 for 32x32 inputs (0.46M parameters with 10 classes, He et al. Table 6)."""
    return CifarResNet(32, num_classes, in_channels)
