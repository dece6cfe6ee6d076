"""Models of Cui et al., "Class-Balanced Loss Based on Effective Number of Samples" (CVPR 2019), by name.

- `resnet32`: He et al.'s CIFAR ResNet-32 (option-A shortcuts) used for long-tailed CIFAR (Table 2).
- `resnet50`, `resnet101`, `resnet152`: torchvision ResNets for iNaturalist / ImageNet (Table 3).
- `small_cnn`: a few-thousand-parameter CNN for the offline demo (not in the paper).

`build_model(name, num_classes, loss_type)` also initialises the classifier for the loss, as the authors'
code does: bias -log(C - 1) for sigmoid / focal heads (prior 1 / C per class), 0 for softmax; "cosine" (the
LDAM loss, beyond the paper) replaces it by a cosine classifier (heads.py).  Every model's final nn.Linear is
`model.fc`.

Example:
    >>> model = build_model("resnet32", num_classes=10, loss_type="focal")
    >>> groups = parameter_groups(model, 2e-4, decay_bn=True, decay_fc_bias=False)
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from cbl.models.heads import HEAD_TYPES, NormedLinear, check_head_type, cosine_head_
from cbl.models.initialization import glorot_init_, prior_bias_init
from cbl.models.param_groups import NORM_TYPES, parameter_groups, unwrap, use_sync_batchnorm
from cbl.models.resnet_cifar import CifarResNet, ShortcutA, resnet32
from cbl.models.resnet_imagenet import resnet50, resnet101, resnet152
from cbl.models.small_cnn import SmallCNN, small_cnn

MODEL_NAMES = ("resnet32", "resnet50", "resnet101", "resnet152", "small_cnn")

_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "resnet32": resnet32,
    "resnet50": resnet50,
    "resnet101": resnet101,
    "resnet152": resnet152,
    "small_cnn": small_cnn,
}

#: keyword options each model accepts beyond (num_classes, in_channels); the configs/model/*.yaml fields
MODEL_OPTIONS: dict[str, tuple[str, ...]] = {
    "resnet32": (),
    "resnet50": ("zero_init_residual", "fc_init_std"),
    "resnet101": ("zero_init_residual", "fc_init_std"),
    "resnet152": ("zero_init_residual", "fc_init_std"),
    "small_cnn": ("width", "norm"),
}


def build_model(name: str, num_classes: int, loss_type: str = "softmax", in_channels: int = 3, **options: Any) -> nn.Module:
    """The model `name` (one of MODEL_NAMES) with a `num_classes`-way `fc` initialised for `loss_type`.

    `options` are the model-specific fields of configs/model/<name>.yaml (see MODEL_OPTIONS), so a Hydra
    config builds with `build_model(**cfg.model, num_classes=C, loss_type=cfg.loss.type)`.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    check_head_type(loss_type)
    unknown = sorted(set(options) - set(MODEL_OPTIONS[name]))
    if unknown:
        allowed = ", ".join(MODEL_OPTIONS[name]) or "none"
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for model {name!r}; allowed: {allowed}")
    model = _BUILDERS[name](num_classes, in_channels, **options)
    if loss_type in ("sigmoid", "focal"):
        prior_bias_init(model.fc, num_classes)
    elif loss_type == "cosine":
        cosine_head_(model)
    else:
        with torch.no_grad():
            model.fc.bias.zero_()  # every builder already does this; kept explicit for the softmax contract
    return model


__all__ = [
    "HEAD_TYPES",
    "MODEL_NAMES",
    "MODEL_OPTIONS",
    "NORM_TYPES",
    "CifarResNet",
    "NormedLinear",
    "ShortcutA",
    "SmallCNN",
    "build_model",
    "check_head_type",
    "cosine_head_",
    "glorot_init_",
    "parameter_groups",
    "prior_bias_init",
    "resnet32",
    "resnet50",
    "resnet101",
    "resnet152",
    "small_cnn",
    "unwrap",
    "use_sync_batchnorm",
]
