"""Starting `cbl-train` imports torchvision only where a run needs it (the image-file datasets, the large-scale
ResNets, per-image transforms, CIFAR's official md5 list): importing it costs about as long as importing torch, and
a refused configuration or a run on arrays (digits, a CIFAR .npz) needs none of it."""

import subprocess
import sys

from tests.train_utils import ROOT

PROBE = """
import sys
import cbl.train, cbl.training.run, cbl.data, cbl.models, cbl.losses
from cbl.data import build_data
from cbl.models import build_model
print(sorted(m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")))
"""


def test_the_entrypoint_and_the_array_datasets_do_not_import_torchvision():
    p = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip() == "[]"


def test_the_image_file_datasets_and_large_resnets_still_find_torchvision_when_used():
    from cbl.data.transforms import file_image_transform
    from cbl.models.resnet_imagenet import resnet50

    assert type(file_image_transform(False, 32)).__module__.startswith("torchvision.")
    assert type(resnet50(num_classes=3)).__module__.startswith("torchvision.")
