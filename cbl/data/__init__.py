"""cbl.data: long-tailed datasets and loaders for the experiments of Cui et al., CVPR 2019.

Entry point for training code: `build_data(cfg, seed=..., device=..., batch_size=..., eval_batch_size=...)`
returns a `DataBundle` with train/test loaders (iterables of (x, y) on the device with `set_epoch` and
`len`) and the training-set class counts n_i that the class-balanced weights (1-beta)/(1-beta**n_i) use.

Modules: long_tail (n_i = int(n_max * (1/IF)**(i/(C-1))) and the seeded subset), cifar, digits, inaturalist,
imagenet (sources), image_folder + list_file + custom (your own data, ImageNet-LT / Places-LT), tensor_loader (on-device CIFAR augmentation), torch_loader + transforms (DataLoader path),
epoch (order, batches and DDP shards as pure functions of (seed, epoch)), build (config -> DataBundle); multi-label
data (multi-hot targets, COCO-MLT, VOC-MLT, digits-MLT): multilabel, mlt_benchmarks, multilabel_digits.
"""

from cbl.data.arrays import ArraySplit
from cbl.data.build import DATASET_NAMES, DataBundle, Loader, build_data
from cbl.data.cifar import load_cifar_lt
from cbl.data.digits import load_digits_lt
from cbl.data.epoch import SAMPLERS
from cbl.data.long_tail import long_tail_counts, long_tail_indices
from cbl.data.tensor_loader import TensorLoader
from cbl.data.torch_loader import ArrayDataset, TorchLoader

__all__ = [
    "DATASET_NAMES",
    "ArrayDataset",
    "ArraySplit",
    "DataBundle",
    "Loader",
    "SAMPLERS",
    "TensorLoader",
    "TorchLoader",
    "build_data",
    "load_cifar_lt",
    "load_digits_lt",
    "long_tail_counts",
    "long_tail_indices",
]
