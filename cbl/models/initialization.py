"""Weight initialisation matching the authors' TensorFlow code (richardaecn/class-balanced-loss).

- `glorot_init_`: the `tf.layers.conv2d` / `tf.layers.dense` defaults the CIFAR ResNet relies on:
  Glorot/Xavier-uniform kernels (Glorot & Bengio 2010, U(-a, a) with a = sqrt(6 / (fan_in + fan_out))),
  zero biases, batch-norm scale 1 and shift 0.
- `prior_bias_init`: the classifier bias of sigmoid / focal heads (Lin et al., "Focal Loss for Dense Object
  Detection", ICCV 2017, Sec. 3.3; Cui et al. Sec. 4): b = -log(C - 1), so that sigmoid(b) = 1 / C, the prior
  probability of each class, and the loss does not start dominated by the C - 1 negatives of every example.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@torch.no_grad()
def glorot_init_(model: nn.Module) -> nn.Module:
    """Glorot-uniform conv/linear weights, zero biases, BN weight 1 and bias 0 (in place; returns `model`)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            # PyTorch's fans for a conv kernel (in * k * k, out * k * k) are TF's, so the bound is the same
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (_BatchNorm, nn.GroupNorm, nn.LayerNorm)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


@torch.no_grad()
def prior_bias_init(fc: nn.Linear, num_classes: int) -> None:
    """Set `fc.bias` to -log(C - 1) in place, so every class starts with sigmoid probability 1 / C."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"prior_bias_init needs num_classes >= 2 (the bias is -log(C - 1)); got {num_classes!r}")
    if not isinstance(fc, nn.Linear) or fc.bias is None:
        raise ValueError(f"prior_bias_init needs an nn.Linear with a bias; got {type(fc).__name__}")
    if fc.out_features != num_classes:
        raise ValueError(f"prior_bias_init: fc has {fc.out_features} outputs but num_classes is {num_classes}")
    fc.bias.fill_(-math.log(num_classes - 1))
