"""Which parameters get weight decay, and SyncBatchNorm conversion for multi-GPU training.

The authors' recipes (richardaecn/class-balanced-loss) add `wd * sum(v**2) / 2` to the loss, i.e. SGD weight
decay `wd`, over different parameter sets:
- CIFAR (src/cifar_main.py): every trainable variable, BN included; for sigmoid / focal heads every variable
  except the classifier bias ('dense/bias'), whose -log(C - 1) prior init decay would pull back to 0.
- Large scale (tpu/.../resnet_main.py): every variable except BN ('batch_normalization') and the classifier
  bias ('dense/bias'), for every loss.
`parameter_groups(model, wd, decay_bn=..., decay_fc_bias=...)` expresses both.
"""

from __future__ import annotations

import numbers

from torch import nn
from torch.nn.modules.batchnorm import _NormBase

#: modules whose parameters count as normalisation parameters ("BN" in `decay_bn`): batch norm (SyncBatchNorm
#: included), instance norm, group norm, layer norm, RMS norm
NORM_TYPES: tuple[type[nn.Module], ...] = (_NormBase, nn.GroupNorm, nn.LayerNorm, nn.RMSNorm)


def unwrap(model: nn.Module) -> nn.Module:
    """The user's model inside DistributedDataParallel / DataParallel (`.module`) or torch.compile (`._orig_mod`)."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def parameter_groups(model: nn.Module, weight_decay: float, *, decay_bn: bool, decay_fc_bias: bool) -> list[dict]:
    """Split the trainable parameters into `[{"params": decayed, "weight_decay": wd},
    {"params": not_decayed, "weight_decay": 0.0}]` (always two groups, possibly one empty, so optimizer
    checkpoints keep the same layout whatever the flags).

    Not decayed: parameters of `NORM_TYPES` modules unless `decay_bn`, and `model.fc.bias` unless
    `decay_fc_bias`.  Frozen parameters (requires_grad=False) are left out; shared parameters appear once.
    """
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, numbers.Real) or not 0.0 <= weight_decay < float("inf"):
        raise ValueError(f"weight_decay must be a finite number >= 0; got {weight_decay!r}")
    for flag, value in (("decay_bn", decay_bn), ("decay_fc_bias", decay_fc_bias)):
        if not isinstance(value, bool):
            raise ValueError(f"{flag} must be True or False; got {value!r}")
    inner = unwrap(model)
    skip: set[int] = set()
    if not decay_fc_bias:
        fc = getattr(inner, "fc", None)
        if not isinstance(fc, nn.Linear):
            raise ValueError(f"decay_fc_bias=False needs the classifier at model.fc (an nn.Linear); {type(inner).__name__} has none")
        if fc.bias is not None:
            skip.add(id(fc.bias))

    decay, no_decay, seen = [], [], set()
    for module in inner.modules():
        is_norm = isinstance(module, NORM_TYPES)
        for p in module.parameters(recurse=False):
            if id(p) in seen or not p.requires_grad:
                continue
            seen.add(id(p))
            excluded = id(p) in skip or (is_norm and not decay_bn)
            (no_decay if excluded else decay).append(p)
    return [
        {"params": decay, "weight_decay": float(weight_decay)},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def use_sync_batchnorm(model: nn.Module, process_group=None) -> nn.Module:
    """Replace every BatchNorm*d by SyncBatchNorm (batch statistics over all processes) for distributed
    training: 1024 images over 8 GPUs otherwise normalises per 128-image shard.  Call before wrapping in DDP."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(model, process_group)
