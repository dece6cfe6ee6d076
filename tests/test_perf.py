"""The fast training path computes what the plain path computes (docs/performance.md).

- the on-device loader's channels_last batch is, bit for bit, the batch torchvision's per-image ops make from
  the same crops and flips (that both paths draw the same crop/flip distribution is tests/test_data_augmentation.py);
- channels_last gives the same class-balanced loss and gradients as NCHW up to float rounding;
- reading the loss back every k steps and the host allocator tuning leave training bit for bit unchanged;
- torch.compile gives the same loss and gradients up to float rounding, and checkpoints the plain module (slow);
- runs trained side by side by Hydra's joblib launcher equal the same runs trained one at a time.
"""

import copy
import platform
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from omegaconf import OmegaConf

from cbl.training.config import ConfigError, check, run_name
from cbl.data.tensor_loader import TensorLoader
from cbl.data.transforms import cifar_transform
from cbl.losses import ClassBalancedLoss
from cbl.models import build_model
from cbl.models.resnet_cifar import CifarResNet
from cbl.training.engine import train_one_epoch
from cbl.training.optim import build_optimizer, build_scheduler
from cbl.training.perf import compile_options, tune_host_allocator
from tests.train_utils import QUIET, ROOT, compose_cfg, demo_overrides, read_history, run_cli

COUNTS = [500, 250, 120, 60, 30, 15, 8, 4, 2, 1]


def images(n=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)


def resnet(seed=0, loss_type="softmax", depth=32):
    torch.manual_seed(seed)
    if depth == 32:
        return build_model("resnet32", 10, loss_type=loss_type, in_channels=3)
    return CifarResNet(depth, 10)


def loss_and_grads(model, criterion, x, y, forward=None):
    model.zero_grad(set_to_none=True)
    loss = criterion((model if forward is None else forward)(x), y)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_tensor_loader_batch_is_the_torchvision_batch_bit_for_bit():
    x_np, y_np = images()
    loader = TensorLoader(x_np, y_np, 48, train=True, seed=5, channels_last=True)
    loader.set_epoch(3)
    x, y = next(iter(loader))
    assert x.is_contiguous(memory_format=torch.channels_last)
    normalise = cifar_transform(False)  # the plain path's ToDtype + Normalize, after its crop and flip
    ref = []
    for k, i in enumerate(loader.order.tolist()):
        img = torch.from_numpy(x_np[i]).permute(2, 0, 1)
        img = TF.crop(TF.pad(img, [4], fill=0), int(loader.dy[k]), int(loader.dx[k]), 32, 32)
        ref.append(normalise(TF.horizontal_flip(img) if loader.flipped[k] else img))
    assert torch.equal(x, torch.stack(ref)) and torch.equal(y, torch.from_numpy(y_np[loader.order.numpy()]))


def flat(grads: dict) -> torch.Tensor:
    return torch.cat([g.double().flatten() for _, g in sorted(grads.items())])


def assert_as_accurate(loss, grads, plain_loss, plain_grads, exact_loss, exact_grads):
    """A float32 variant agrees with the plain float32 computation up to rounding: the same loss to 1e-5
    (relative), and gradients as close to the float64 ones as float32 rounding allows, < 1e-2 relative.

    Through 30+ layers of backward at initialisation float32 rounding alone puts the plain path's gradients
    3e-4 .. 1.5e-3 (relative) from float64.  PyTorch's CPU batch norm accumulates its statistics less precisely
    in channels_last than in NCHW (about 1e-6 vs 1e-7 relative on the activations), which puts channels_last
    gradients 4e-3 .. 5e-3 from float64 here: float rounding, not the plain path's rounding bit for bit.
    A wrong computation (a layout mix-up, a missed term) is off by O(1).
    """
    torch.testing.assert_close(loss.double(), plain_loss.double(), rtol=1e-5, atol=0)
    torch.testing.assert_close(loss.double(), exact_loss, rtol=1e-5, atol=0)
    exact = flat(exact_grads)
    err = float((flat(grads) - exact).norm() / exact.norm())
    plain_err = float((flat(plain_grads) - exact).norm() / exact.norm())
    assert plain_err < 1e-2 and err < 1e-2, (err, plain_err)


@pytest.mark.parametrize("loss_type", ["softmax", "focal"])
def test_channels_last_gives_the_same_loss_and_gradients(loss_type):
    x_np, y_np = images(32)
    x, y = next(iter(TensorLoader(x_np, y_np, 32, train=True, seed=1)))
    criterion = ClassBalancedLoss(COUNTS, loss_type=loss_type, beta=0.999, gamma=1.0 if loss_type == "focal" else 0.0)
    plain = resnet(loss_type=loss_type)
    fast = copy.deepcopy(plain).to(memory_format=torch.channels_last)
    exact = copy.deepcopy(plain).double()
    loss_a, grads_a = loss_and_grads(plain, criterion, x, y)
    loss_b, grads_b = loss_and_grads(fast, criterion, x.contiguous(memory_format=torch.channels_last), y)
    loss_64, grads_64 = loss_and_grads(exact, criterion, x.double(), y)
    # different convolution kernels sum in a different order: equal up to float32 rounding, not bit for bit
    assert_as_accurate(loss_b, grads_b, loss_a, grads_a, loss_64, grads_64)


def train_steps(check_every: int, steps: int = 5):
    x_np, y_np = images(16 * steps, seed=2)
    loader = TensorLoader(x_np, y_np, 16, train=True, seed=0)
    model = resnet(seed=1).to(memory_format=torch.channels_last)
    criterion = ClassBalancedLoss(COUNTS, loss_type="softmax", beta=0.99)
    opt = build_optimizer(model, lr=0.1, momentum=0.9, weight_decay=2e-4, nesterov=False, decay_bn=True, decay_fc_bias=True)
    sched = build_scheduler(opt, steps_per_epoch=len(loader), warmup_epochs=1, milestones=[], factors=[])
    stats = train_one_epoch(model, loader, criterion, opt, sched, epoch=1, device=torch.device("cpu"),
                            check_every=check_every, progress=False)
    return stats["train_loss"], model.state_dict()


def test_reading_the_loss_back_every_k_steps_changes_nothing():
    loss_1, state_1 = train_steps(check_every=1)
    loss_20, state_20 = train_steps(check_every=20)
    assert loss_1 == loss_20
    assert all(torch.equal(state_1[k], state_20[k]) for k in state_1)


def test_host_allocator_tuning_changes_nothing():
    # in a fresh process, so that "before" really runs with glibc's default settings
    script = (
        "import torch; from tests.test_perf import train_steps; from cbl.training.perf import tune_host_allocator\n"
        "torch.set_num_threads(1)\n"
        "a = train_steps(1, steps=3); tuned = tune_host_allocator(); b = train_steps(1, steps=3)\n"
        "same = a[0] == b[0] and all(torch.equal(a[1][k], b[1][k]) for k in a[1])\n"
        "print('tuned' if tuned else 'untuned', 'same' if same else 'DIFFERENT')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["tuned", "same"]
    assert tune_host_allocator() is True and tune_host_allocator() is True  # idempotent (glibc, as on Linux CI)


def test_compile_options_and_config_check():
    assert compile_options(False) is None
    assert compile_options(True) == {"dynamic": False}
    assert compile_options("reduce-overhead") == {"mode": "reduce-overhead", "dynamic": False}
    with pytest.raises(ValueError, match="compile must be"):
        compile_options("fast")
    check(compose_cfg("compile=reduce-overhead"))
    with pytest.raises(ConfigError, match="compile='fast' is not allowed"):
        check(compose_cfg("compile=fast"))


def test_memory_format_and_compile_do_not_tie_a_run_to_them():
    # like the device: a run may resume with them changed, and they stay out of run folder names
    from cbl.training.config import comparable

    from cbl.training.config import run_name

    plain = OmegaConf.to_container(compose_cfg("channels_last=true", "compile=reduce-overhead"), resolve=False)
    assert "channels_last" not in comparable(plain) and "compile" not in comparable(plain)
    fast = compose_cfg("channels_last=true", "compile=reduce-overhead", "loss_check_every=20", "device=cpu")
    assert run_name(OmegaConf.to_container(fast, resolve=True)) == run_name(OmegaConf.to_container(compose_cfg(), resolve=True))


@pytest.mark.slow
def test_compiled_model_gives_the_same_loss_and_gradients():
    x_np, y_np = images(16)
    x, y = next(iter(TensorLoader(x_np, y_np, 16, train=True, seed=1, channels_last=True)))
    criterion = ClassBalancedLoss(COUNTS, loss_type="sigmoid", beta=0.999)
    eager = resnet(depth=8).to(memory_format=torch.channels_last)
    compiled_module = copy.deepcopy(eager)
    compiled = torch.compile(compiled_module, **compile_options(True))
    loss_a, grads_a = loss_and_grads(eager, criterion, x, y)
    loss_64, grads_64 = loss_and_grads(copy.deepcopy(eager).double(), criterion, x.double(), y)
    loss_b, grads_b = loss_and_grads(compiled_module, criterion, x, y, forward=compiled)
    assert_as_accurate(loss_b, grads_b, loss_a, grads_a, loss_64, grads_64)


@pytest.mark.slow
def test_compiled_run_checkpoints_the_plain_module_and_resumes(tmp_path):
    from cbl.training.checkpoint import load_latest_checkpoint
    from cbl.training.run import train

    train(compose_cfg(*demo_overrides(epochs=2), *QUIET, "compile=true"), tmp_path / "run")
    state = load_latest_checkpoint(tmp_path / "run")
    keys = set(build_model("small_cnn", 10, in_channels=1).state_dict())
    assert set(state["model"]) == keys  # no "_orig_mod." prefixes: loads into the plain model
    (tmp_path / "run" / "metrics.json").unlink()
    for path in sorted((tmp_path / "run" / "checkpoints").glob("*.pt"))[1:]:
        path.unlink()  # as if stopped after epoch 1
    final = train(compose_cfg(*demo_overrides(epochs=2), *QUIET, "compile=true", "resume=true"), tmp_path / "run")
    assert final["status"] == "finished" and [r["epoch"] for r in read_history(tmp_path / "run")] == [1, 2]


@pytest.mark.slow
def test_runs_side_by_side_equal_runs_one_at_a_time(tmp_path):
    """Several configurations at once (hydra/launcher=joblib, one process each) = each trained on its own."""
    sweep = ["-m", *demo_overrides(epochs=2), *QUIET, "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
             f"output_dir={tmp_path}"]
    out = run_cli(sweep, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    for seed in (0, 1):
        from cbl.training.run import train

        alone = tmp_path / f"alone{seed}"
        cfg = compose_cfg(*demo_overrides(epochs=2), *QUIET, f"seed={seed}")
        train(cfg, alone)
        together = tmp_path / "demo" / run_name(OmegaConf.to_container(cfg, resolve=True))
        strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
        assert strip(read_history(together)) == strip(read_history(alone))
        assert OmegaConf.load(together / "config.yaml").seed == seed


# ----------------------------------------------------------------------------- bf16 on a CPU without oneDNN's bf16 kernels
def _cpu_flags() -> set[str]:
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return set()
    return next((set(line.split(":", 1)[1].split()) for line in text.splitlines() if line.startswith("flags")), set())


def test_onednn_bf16_follows_the_cpu_flags():
    """Checked against the kernel's own list of the CPU's instructions: oneDNN has bf16 kernels from AVX-512
    (F, BW, VL, DQ: "avx512_core") and none on a CPU with neither AVX-512 BW nor AVX-NE-CONVERT."""
    from cbl.training.perf import onednn_bf16

    flags = _cpu_flags()
    if not flags or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("needs /proc/cpuinfo of an x86-64 CPU")
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        assert onednn_bf16() is True
    elif not {"avx512bw", "avx_ne_convert"} & flags:
        assert onednn_bf16() is False
    else:
        pytest.skip(f"a CPU between the two cases this test knows ({sorted(f for f in flags if 'avx' in f)})")


def test_slow_bf16_warning_only_for_bf16_on_a_cpu_without_the_kernels(monkeypatch):
    from cbl.training import perf

    monkeypatch.setattr(perf, "onednn_bf16", lambda: False)
    line = perf.slow_bf16_warning("cpu", torch.bfloat16)
    assert "precision=bf16" in line and perf.cpu_features()["capability"] in line and "\n" not in line
    assert perf.slow_bf16_warning("cpu", None) is None  # float32
    assert perf.slow_bf16_warning("cuda", torch.bfloat16) is None  # a GPU's bf16 is its own matter
    for known in (True, None):  # kernels present, or torch cannot tell: no claim
        monkeypatch.setattr(perf, "onednn_bf16", lambda: known)
        assert perf.slow_bf16_warning("cpu", torch.bfloat16) is None


def test_machine_records_the_cpu_features():
    from cbl.training.perf import machine, onednn_bf16

    m = machine("cpu")
    assert m["capability"] == torch.backends.cpu.get_cpu_capability() and m["onednn_bf16"] == onednn_bf16()


def test_a_bf16_run_on_such_a_cpu_warns_once_per_process(monkeypatch, caplog):
    import logging

    from cbl.training import perf, run
    from cbl.training.distributed import setup_distributed

    monkeypatch.setattr(perf, "onednn_bf16", lambda: False)
    monkeypatch.setattr(run, "_warned", set())
    env = setup_distributed("cpu")
    cfg = compose_cfg(*demo_overrides(epochs=1), "precision=bf16")
    with caplog.at_level(logging.WARNING, logger="cbl.train"):
        data = run.build_run_data(cfg, env)
        run.build_on(cfg, env, data)
        run.build_on(cfg, env, data)  # a bank's second member, a sweep's second job
    assert sum("oneDNN bf16" in r.getMessage() for r in caplog.records) == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cbl.train"):
        run.build_on(compose_cfg(*demo_overrides(epochs=1)), env, data)  # float32: nothing to say
    assert not caplog.records
