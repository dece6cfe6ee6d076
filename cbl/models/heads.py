"""Classifier heads by the loss they serve: "softmax" (zero bias), "sigmoid" / "focal" (bias -log(C - 1), see
initialization.py) and "cosine" for LDAM (Cao et al., NeurIPS 2019): the authors' `NormedLinear`, whose
output is the cosine between the feature and each class weight, z_j = <x / |x|, w_j / |w_j|> in [-1, 1],
without bias; the LDAM loss multiplies it by its scale s.

Public API: `HEAD_TYPES`, `check_head_type`, `NormedLinear`, `cosine_head_`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HEAD_TYPES = ("softmax", "sigmoid", "focal", "cosine")


def check_head_type(head: str) -> str:
    if head not in HEAD_TYPES:
        raise ValueError(f"head type (loss_type) must be one of {', '.join(HEAD_TYPES)}; got {head!r}")
    return head


class NormedLinear(nn.Linear):
    """Cosine classifier: F.normalize(x) @ F.normalize(W).T, no bias.  An nn.Linear (so `model.fc` keeps its
    type for the parameter groups) whose rows start as unit vectors in random directions, like the authors'
    `uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5)` (LDAM-DRW, models/resnet_cifar.py; their weight is W.T)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features, bias=False)

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.uniform_(-1.0, 1.0)
            self.weight.div_(self.weight.norm(dim=1, keepdim=True).clamp_min(1e-12))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))


def cosine_head_(model: nn.Module) -> nn.Module:
    """Replace `model.fc` (an nn.Linear) by a NormedLinear of the same shape, in place; returns `model`."""
    fc = getattr(model, "fc", None)
    if not isinstance(fc, nn.Linear):
        raise ValueError(f"a cosine head replaces model.fc (an nn.Linear); {type(model).__name__} has none")
    model.fc = NormedLinear(fc.in_features, fc.out_features).to(fc.weight.device)
    return model
