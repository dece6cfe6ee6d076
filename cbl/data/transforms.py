"""Per-image torchvision transforms: the standard CIFAR recipe and the Inception-style large-scale recipe.

CIFAR (He et al. 2016; Cui et al. Sec. 5.1): RandomCrop(32, padding=4) (zero fill) + RandomHorizontalFlip(),
then float and Normalize.  Normalisation is `(x - mean) / std` with mean/std in uint8 units (0..255) for
every dataset in cbl: `ToDtype(float32, scale=False)` + `Normalize(mean, std)` is the same map as
`ToTensor()` + `Normalize(mean/255, std/255)`, but computed with the same two float ops as TensorLoader, so
the two CIFAR paths agree bit for bit (and mean = std = 128 gives the authors' x/128 - 1 exactly).

Large scale (Cui et al. Sec. 5.2; the authors' TPU ResNet input pipeline):
  train: RandomResizedCrop(size, scale=(0.08, 1), ratio=(3/4, 4/3), bicubic) + RandomHorizontalFlip
  eval:  Resize(size + crop_padding, bicubic) + CenterCrop(size), crop_padding 32 at 224 and 46 at 320,
         i.e. the central size/(size + crop_padding) of the short side, resized to size.
Both then normalise with the ImageNet mean/std (given here in uint8 units).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2

CIFAR_MEAN = (128.0, 128.0, 128.0)  # authors' CIFAR code: x / 128 - 1
CIFAR_STD = (128.0, 128.0, 128.0)
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
EVAL_CROP_PADDING = {224: 32, 320: 46}


def _normalise(mean: Sequence[float], std: Sequence[float]) -> list:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=False), v2.Normalize(list(mean), list(std)), v2.ToPureTensor()]


def cifar_transform(
    train: bool,
    mean: Sequence[float] = CIFAR_MEAN,
    std: Sequence[float] = CIFAR_STD,
    *,
    size: int = 32,
    pad: int = 4,
    flip: bool = True,
) -> v2.Compose:
    """Transform of one uint8 image (CHW tensor, HWC array or PIL); training adds pad-crop (pad > 0) and flip."""
    steps = [v2.ToImage()]  # a tv_tensors.Image from here on, so v2 never has to guess what a plain tensor is
    if train and pad > 0:
        steps.append(v2.RandomCrop(size, padding=pad, fill=0, padding_mode="constant"))
    if train and flip:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    return v2.Compose(steps + _normalise(mean, std))


def check_input_size(input_size) -> int:
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size not in EVAL_CROP_PADDING:
        raise ValueError(f"input_size must be one of {', '.join(map(str, EVAL_CROP_PADDING))} for the large-scale datasets; got {input_size!r}")
    return int(input_size)


def inception_transform(
    train: bool,
    input_size: int = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """Transform of one PIL image for iNaturalist / ILSVRC (see the module docstring); the geometric steps
    run on the PIL image (PIL's bicubic resampling, as usual for ImageNet), the rest on the tensor."""
    size = check_input_size(input_size)
    bicubic = InterpolationMode.BICUBIC
    if train:
        steps = [
            v2.RandomResizedCrop(size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), interpolation=bicubic, antialias=True),
            v2.RandomHorizontalFlip(p=0.5),
        ]
    else:
        steps = [v2.Resize(size + EVAL_CROP_PADDING[size], interpolation=bicubic, antialias=True), v2.CenterCrop(size)]
    return v2.Compose(steps + _normalise(mean, std))
