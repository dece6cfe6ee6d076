"""ResNet-50/101/152 for the large-scale experiments (Cui et al. Table 3: iNaturalist 2017/2018, ILSVRC 2012),
built from torchvision's implementation of He et al. 2016 (bottleneck blocks, projection shortcuts, stride on
the 3x3 conv as in the authors' TPU ResNet), trained from scratch (`weights=None`).

Two initialisation details follow the authors' TPU code (tpu/models/official/resnet/resnet_model.py) rather
than torchvision's defaults, and both are torchvision-supported switches or a one-line re-init:
- `zero_init_residual=True`: the last BN of every residual block starts with scale 0 (`init_zero=True`
  there), so each block starts as the identity, which makes the 1024-batch warm-up stable (Goyal et al. 2017).
- the classifier weight ~ N(0, 0.01^2) (`random_normal_initializer(stddev=.01)`) and a zero bias (replaced by
  -log(C - 1) for sigmoid / focal heads in `cbl.models.build_model`).
Convolutions keep torchvision's Kaiming-normal init (the authors use TF's variance-scaling default); with a BN
after every conv this only changes the initial weight norm.

The networks end in adaptive average pooling, so the same model runs at 224 or 320 (or any) input size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from cbl.models.resnet_cifar import check_positive_int

if TYPE_CHECKING:
    from torchvision import models as tvm

#: the torchvision constructors (torchvision.models.<name>), looked up when a network is built: importing
#: torchvision costs about as long as importing torch, and the CIFAR networks need none of it
TORCHVISION_RESNETS = ("resnet50", "resnet101", "resnet152")


def torchvision_resnet(
    name: str,
    num_classes: int,
    in_channels: int = 3,
    *,
    zero_init_residual: bool = True,
    fc_init_std: float = 0.01,
) -> tvm.ResNet:
    """torchvision `resnet50/101/152(weights=None, num_classes=C)` with the authors' init; classifier `model.fc`."""
    if name not in TORCHVISION_RESNETS:
        raise ValueError(f"unknown torchvision ResNet {name!r}; choose one of {', '.join(TORCHVISION_RESNETS)}")
    check_positive_int("num_classes", num_classes)
    check_positive_int("in_channels", in_channels)
    if not isinstance(zero_init_residual, bool):
        raise ValueError(f"zero_init_residual must be true or false; got {zero_init_residual!r}")
    if isinstance(fc_init_std, bool) or not isinstance(fc_init_std, (int, float)) or not fc_init_std > 0:
        raise ValueError(f"fc_init_std must be a positive number; got {fc_init_std!r}")
    from torchvision import models as tvm

    model = getattr(tvm, name)(weights=None, num_classes=num_classes, zero_init_residual=zero_init_residual)
    if in_channels != 3:
        # same geometry as torchvision's stem, re-initialised the way torchvision initialises it
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    with torch.no_grad():
        nn.init.normal_(model.fc.weight, mean=0.0, std=float(fc_init_std))
        nn.init.zeros_(model.fc.bias)
    return model


def resnet50(num_classes: int, in_channels: int = 3, **options) -> tvm.ResNet:
    return torchvision_resnet("resnet50", num_classes, in_channels, **options)


def resnet101(num_classes: int, in_channels: int = 3, **options) -> tvm.ResNet:
    return torchvision_resnet("resnet101", num_classes, in_channels, **options)


def resnet152(num_classes: int, in_channels: int = 3, **options) -> tvm.ResNet:
    return torchvision_resnet("resnet152", num_classes, in_channels, **options)
