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

Small images (your own data at input_size in SMALL_INPUT_SIZES, not a paper recipe): the short side is resized to
size (bicubic) and the centre size x size kept, then training adds the CIFAR recipe, zero-pad size // 8 + random
size x size crop + horizontal flip (pad 4 at 32, as for CIFAR).  `file_image_transform` picks the recipe from
the input size: 224 / 320 Inception-style, the small sizes this one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from torchvision.transforms import v2

# torchvision is imported inside the functions that build transforms: importing it costs about as long as importing
# torch, and the array datasets (CIFAR, digits) and every refused configuration need none of it

CIFAR_MEAN = (128.0, 128.0, 128.0)  # authors' CIFAR code: x / 128 - 1
CIFAR_STD = (128.0, 128.0, 128.0)
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
EVAL_CROP_PADDING = {224: 32, 320: 46}
#: input sizes of the small-image recipe (datasets of your own: imagefolder, listfile, ...)
SMALL_INPUT_SIZES = (16, 32, 48, 64, 96, 128)
#: every input size an image-file dataset of your own may use: the small recipe or the Inception-style one
FILE_INPUT_SIZES = SMALL_INPUT_SIZES + tuple(EVAL_CROP_PADDING)


def _normalise(mean: Sequence[float], std: Sequence[float]) -> list:
    from torchvision.transforms import v2

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
    from torchvision.transforms import v2

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
    from torchvision.transforms import InterpolationMode, v2

    bicubic = InterpolationMode.BICUBIC
    if train:
        steps = [
            v2.RandomResizedCrop(size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), interpolation=bicubic, antialias=True),
            v2.RandomHorizontalFlip(p=0.5),
        ]
    else:
        steps = [v2.Resize(size + EVAL_CROP_PADDING[size], interpolation=bicubic, antialias=True), v2.CenterCrop(size)]
    return v2.Compose(steps + _normalise(mean, std))


def small_image_transform(
    train: bool,
    input_size: int = 32,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """Transform of one PIL image of any size to input_size x input_size (see the module docstring)."""
    if isinstance(input_size, bool) or input_size not in SMALL_INPUT_SIZES:
        raise ValueError(f"input_size of the small-image recipe must be one of {', '.join(map(str, SMALL_INPUT_SIZES))}; got {input_size!r}")
    from torchvision.transforms import InterpolationMode, v2

    steps = [v2.Resize(input_size, interpolation=InterpolationMode.BICUBIC, antialias=True), v2.CenterCrop(input_size)]
    if train:
        steps += [v2.RandomCrop(input_size, padding=input_size // 8, fill=0, padding_mode="constant"), v2.RandomHorizontalFlip(p=0.5)]
    return v2.Compose(steps + _normalise(mean, std))


def check_file_input_size(input_size) -> int:
    """input_size of an image-file dataset of your own: a small size or 224 / 320."""
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size not in FILE_INPUT_SIZES:
        raise ValueError(f"input_size must be one of {', '.join(map(str, FILE_INPUT_SIZES))} (small-image recipe up to "
                         f"{SMALL_INPUT_SIZES[-1]}, Inception-style at 224 / 320); got {input_size!r}")
    return int(input_size)


def file_image_transform(
    train: bool,
    input_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """The recipe for input_size: Inception-style at 224 / 320, the small-image one at SMALL_INPUT_SIZES."""
    size = check_file_input_size(input_size)
    make = inception_transform if size in EVAL_CROP_PADDING else small_image_transform
    return make(train, size, mean, std)
