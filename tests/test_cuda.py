"""On a CUDA device (skipped without one; the device kit runs these with `pytest -m cuda`): a short run trains, saves
predictions that reproduce its metrics.json, and cbl-evaluate gives the same numbers again on the GPU; a tiny
ResNet-32 run on a fake CIFAR archive finishes in float32 and bf16 with the data held on the GPU."""

import numpy as np
import pytest
import torch

from cbl.evaluate import main as evaluate_main
from cbl.training.predictions import LAST, load_predictions
from cbl.training.run import train
from tests import reference
from tests.train_utils import compose_cfg, demo_overrides, read_metrics, tiny_cifar_overrides

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
# deterministic=true would need CUBLAS_WORKSPACE_CONFIG on CUDA; these checks need no bit-exact kernels
ON_GPU = ["device=cuda", "progress=false", "wandb.mode=disabled"]


def test_a_run_on_the_gpu_saves_predictions_that_reproduce_its_metrics(tmp_path):
    run_dir = tmp_path / "run"
    train(compose_cfg(*demo_overrides(epochs=3), *ON_GPU, "optim.lr=0.3", "loss=focal", "loss.beta=0.999"), run_dir)
    final, saved = read_metrics(run_dir), load_predictions(run_dir / LAST)
    assert 100.0 * np.mean(saved["logits"].argmax(1) != saved["labels"]) == pytest.approx(final["top1_err"], abs=1e-9)
    ece, nll = reference.ece_nll(saved["logits"], saved["labels"], "sigmoid")
    assert final["ece"] == pytest.approx(ece, abs=1e-6) and final["nll"] == pytest.approx(nll, rel=1e-6)
    assert evaluate_main([str(run_dir), "device=cuda"]) == 0
    again = load_predictions(run_dir / "eval" / "epoch_0003" / "predictions.npz")
    # the same device and precision: the same predictions, up to a tie broken by non-deterministic kernels
    assert np.mean(again["logits"].argmax(1) == saved["logits"].argmax(1)) >= 0.99


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resnet32_trains_on_the_gpu_with_the_data_on_the_gpu(tmp_path, precision):
    cfg = compose_cfg(*tiny_cifar_overrides(tmp_path / "data"), *ON_GPU, f"precision={precision}", "channels_last=true")
    final = train(cfg, tmp_path / "run")
    assert final["status"] == "finished" and 0 <= final["top1_err"] <= 100 and np.isfinite(final["nll"])
