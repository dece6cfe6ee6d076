"""A tiny CNN for the offline demo and smoke tests (not in the paper): scikit-learn's 8x8 single-channel
digits (10 classes), and equally 3-channel 32x32 CIFAR-sized input, training in seconds on a CPU.

    conv3x3(in, w) -> BN -> ReLU -> conv3x3(w, 2w, stride 2) -> BN -> ReLU -> global average pool -> fc(2w, C)

With w = 16 and 10 classes: 5.2k parameters (1 input channel).  Initialised like ResNet-32 (Glorot-uniform,
zero biases), so sigmoid / focal prior-bias runs on it exercise the same code path.

`norm="none"` drops the two BNs (the convs get a bias instead).  Without batch statistics a sample's output
does not depend on the rest of its batch, so a DDP run on N processes computes exactly the single-process
gradients of the global batch -- what the distributed tests compare.  (With BN each process normalises its
own share of the batch; SyncBatchNorm restores the global statistics on CUDA.)
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from cbl.models.initialization import glorot_init_
from cbl.models.resnet_cifar import batch_norm, check_positive_int, conv3x3

NORMS = ("batch", "none")


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 16, norm: str = "batch") -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes)
        check_positive_int("in_channels", in_channels)
        check_positive_int("width", width)
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
        bn = norm == "batch"
        self.conv1 = conv3x3(in_channels, width) if bn else nn.Conv2d(in_channels, width, 3, padding=1)
        self.bn1 = batch_norm(width) if bn else nn.Identity()
        self.conv2 = conv3x3(width, 2 * width, stride=2) if bn else nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.bn2 = batch_norm(2 * width) if bn else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)  # any input size: 8x8 digits and 32x32 CIFAR alike
        self.fc = nn.Linear(2 * width, num_classes)
        glorot_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.fc(self.pool(x).flatten(1))


def small_cnn(num_classes: int, in_channels: int = 3, width: int = 16, norm: str = "batch") -> SmallCNN:
    return SmallCNN(num_classes, in_channels, width, norm)
