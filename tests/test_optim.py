"""cbl.training.optim and cbl.models.parameter_groups: the schedules re-derived by hand from the paper / authors' code,
the parameter split derived here from module types, and SGD steps against the written-out update rule."""

import io
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf
from torch import nn

from cbl.models import MODEL_NAMES, build_model, parameter_groups, resnet32
from cbl.training.optim import (OPTIMIZER_NAMES, build_optimizer, build_scheduler, lr_multiplier, resolve_decay_fc_bias,
                                scaled_lr)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CIFAR = dict(warmup_epochs=5, milestones=(160, 180), factors=(0.01, 1e-4))
LARGE = dict(warmup_epochs=5, milestones=(30, 60, 80), factors=(0.1, 0.01, 0.001))


# ----------------------------------------------------------------------------- lr schedule
@pytest.mark.parametrize(
    "epoch, expected",
    [(0, 0.0), (1, 0.2), (2.5, 0.5), (4.99, 0.998), (5, 1.0), (100, 1.0), (159.99, 1.0),
     (160, 0.01), (179.99, 0.01), (180, 1e-4), (199.99, 1e-4)],
)
def test_cifar_schedule_by_hand(epoch, expected):
    spe = 100  # steps per epoch; step = epoch * 100 exactly
    assert lr_multiplier(round(epoch * spe), spe, **CIFAR) == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(
    "epoch, expected",
    [(0, 0.0), (2.5, 0.5), (5, 1.0), (29.99, 1.0), (30, 0.1), (59.99, 0.1), (60, 0.01), (79.99, 0.01), (80, 0.001), (89.99, 0.001)],
)
def test_large_scale_schedule_by_hand(epoch, expected):
    assert lr_multiplier(round(epoch * 100), 100, **LARGE) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_fractional_steps_per_epoch_as_in_the_authors_code():
    spe = 12406 / 128  # CIFAR-10-LT IF 100: the authors' epoch is global_step * batch / num_images
    assert lr_multiplier(100, spe, **CIFAR) == pytest.approx(100 / spe / 5)
    assert lr_multiplier(int(160 * spe), spe, **CIFAR) == 1.0  # 15506 steps = epoch 159.998
    assert lr_multiplier(int(160 * spe) + 1, spe, **CIFAR) == 0.01


def test_no_warmup_and_no_milestones():
    assert lr_multiplier(0, 10, 0, (), ()) == 1.0
    assert lr_multiplier(12345, 10, 0, (), ()) == 1.0


def reference_lr(step: int, spe: int, base: float, warmup: float, stages: list[tuple[float, float]]) -> float:
    """Written from the paper's description: lr ramps linearly from 0 to base over `warmup` epochs, then is
    base times the factor of the latest stage whose start epoch has been reached."""
    epoch = step / spe
    if epoch < warmup:
        return base * epoch / warmup
    current = 1.0
    for start, factor in sorted(stages):
        current = factor if epoch >= start else current
    return base * current


def toy_model() -> nn.Module:
    return build_model("small_cnn", 3, in_channels=1, width=2)


@pytest.mark.parametrize(
    "recipe, base, spe, epochs",
    [(CIFAR, 0.1, 2, 200), (LARGE, scaled_lr(0.1, 1024, 256), 3, 90)],
)
def test_scheduler_sets_the_optimizer_lr_every_step(recipe, base, spe, epochs):
    opt = build_optimizer(toy_model(), lr=base, momentum=0.9, weight_decay=1e-4, nesterov=True, decay_bn=False, decay_fc_bias=False)
    sched = build_scheduler(opt, steps_per_epoch=spe, **recipe)
    stages = list(zip(recipe["milestones"], recipe["factors"]))
    for step in range(spe * epochs):
        expected = reference_lr(step, spe, base, recipe["warmup_epochs"], stages)
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([expected] * 2, rel=1e-12, abs=1e-15), step
        opt.step()
        sched.step()


def run(opt, sched, steps):
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_scheduler_state_dict_round_trip():
    kwargs = dict(lr=0.4, momentum=0.9, weight_decay=1e-4, nesterov=True, decay_bn=False, decay_fc_bias=False)
    torch.manual_seed(0)
    model = toy_model()
    opt = build_optimizer(model, **kwargs)
    sched = build_scheduler(opt, steps_per_epoch=4, **LARGE)
    straight = run(opt, sched, 137)

    torch.manual_seed(0)
    model = toy_model()
    opt = build_optimizer(model, **kwargs)
    sched = build_scheduler(opt, steps_per_epoch=4, **LARGE)
    first = run(opt, sched, 60)
    buffer = io.BytesIO()
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, buffer)
    buffer.seek(0)
    ckpt = torch.load(buffer, weights_only=True)  # plain data only: loads under the safe unpickler

    opt2 = build_optimizer(toy_model(), **kwargs)
    sched2 = build_scheduler(opt2, steps_per_epoch=4, **LARGE)
    opt2.load_state_dict(ckpt["optimizer"])
    sched2.load_state_dict(ckpt["scheduler"])
    assert first + run(opt2, sched2, 77) == straight


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(steps_per_epoch=0), "steps_per_epoch"),
        (dict(steps_per_epoch=-3), "steps_per_epoch"),
        (dict(warmup_epochs=-1), "warmup_epochs"),
        (dict(milestones=(180, 160)), "strictly increasing"),
        (dict(milestones=(160, 160)), "strictly increasing"),
        (dict(factors=(0.01,)), "same length"),
        (dict(factors=(0.01, -1.0)), "factors"),
        (dict(milestones=(3, 180)), "warm-up"),
    ],
)
def test_bad_schedules_raise(kwargs, message):
    args = dict(steps_per_epoch=100, **CIFAR) | kwargs
    with pytest.raises(ValueError, match=message):
        lr_multiplier(0, **args)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match=message):
        build_scheduler(opt, **args)  # at construction, not at the first step


def test_negative_step_raises():
    with pytest.raises(ValueError, match="step must be an integer >= 0"):
        lr_multiplier(-1, 100, **CIFAR)


def test_scaled_lr():
    assert scaled_lr(0.1, 1024, 256) == pytest.approx(0.4)
    assert scaled_lr(0.1, 128, 128) == 0.1
    assert scaled_lr(0.1, 512, 128) == pytest.approx(0.4)
    for bad in [(0.0, 128, 128), (0.1, 0, 128), (0.1, 128, 0), (0.1, 12.5, 128)]:
        with pytest.raises(ValueError):
            scaled_lr(*bad)


# ----------------------------------------------------------------------------- parameter groups
class Mixed(nn.Module):
    """Every normalisation type parameter_groups must recognise, plus a plain conv / linear and `fc`."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, bias=True)
        self.bn = nn.BatchNorm2d(4)
        self.gn = nn.GroupNorm(2, 4)
        self.ln = nn.LayerNorm(4)
        self.hidden = nn.Linear(4, 4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = self.gn(self.bn(self.conv(x))).mean(dim=(2, 3))
        return self.fc(self.hidden(self.ln(x)))


def expected_split(model: nn.Module, decay_bn: bool, decay_fc_bias: bool) -> tuple[set[str], set[str]]:
    norm_types = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)
    norm = {f"{m}.{p}" for m, mod in model.named_modules() if isinstance(mod, norm_types) for p, _ in mod.named_parameters(recurse=False)}
    everything = {n for n, _ in model.named_parameters()}
    no_decay = (set() if decay_bn else norm) | (set() if decay_fc_bias else {"fc.bias"})
    return everything - no_decay, no_decay


FLAGS = [(True, True), (True, False), (False, True), (False, False)]


@pytest.mark.parametrize("make", [Mixed, lambda: resnet32(10), lambda: nn.SyncBatchNorm.convert_sync_batchnorm(resnet32(10))])
@pytest.mark.parametrize("decay_bn, decay_fc_bias", FLAGS)
def test_parameter_groups_split_exactly(make, decay_bn, decay_fc_bias):
    model = make()
    names = {id(p): n for n, p in model.named_parameters()}
    groups = parameter_groups(model, 5e-4, decay_bn=decay_bn, decay_fc_bias=decay_fc_bias)
    assert [g["weight_decay"] for g in groups] == [5e-4, 0.0]
    got_decay = [names[id(p)] for p in groups[0]["params"]]
    got_none = [names[id(p)] for p in groups[1]["params"]]
    assert len(got_decay) + len(got_none) == len(names) == len(set(got_decay) | set(got_none))  # each once
    assert (set(got_decay), set(got_none)) == expected_split(model, decay_bn, decay_fc_bias)


def test_parameter_groups_through_data_parallel_and_frozen_params():
    model = Mixed()
    model.hidden.weight.requires_grad_(False)
    groups = parameter_groups(nn.DataParallel(model), 1e-4, decay_bn=False, decay_fc_bias=False)
    ids = [id(p) for g in groups for p in g["params"]]
    assert id(model.fc.bias) in {id(p) for p in groups[1]["params"]}
    assert id(model.hidden.weight) not in ids and len(ids) == len(list(model.parameters())) - 1


def test_parameter_groups_bad_input():
    with pytest.raises(ValueError, match="model.fc"):
        parameter_groups(nn.Sequential(nn.Linear(2, 2)), 1e-4, decay_bn=True, decay_fc_bias=False)
    with pytest.raises(ValueError, match="weight_decay"):
        parameter_groups(Mixed(), -1.0, decay_bn=True, decay_fc_bias=True)
    with pytest.raises(ValueError, match="decay_bn"):
        parameter_groups(Mixed(), 1e-4, decay_bn="auto", decay_fc_bias=True)


@pytest.mark.parametrize("decay_bn, decay_fc_bias", FLAGS)
def test_sgd_step_applies_weight_decay_to_exactly_the_decayed_group(decay_bn, decay_fc_bias):
    torch.manual_seed(0)
    model = Mixed()
    with torch.no_grad():  # non-trivial BN / bias values so that decaying them would show
        for n, p in model.named_parameters():
            p.add_(torch.randn_like(p))
    lr, wd = 0.1, 0.05
    opt = build_optimizer(model, lr=lr, momentum=0.0, weight_decay=wd, nesterov=False, decay_bn=decay_bn, decay_fc_bias=decay_fc_bias)
    model(torch.randn(5, 1, 6, 6)).square().sum().backward()
    before = {n: (p.detach().clone(), p.grad.clone()) for n, p in model.named_parameters()}
    opt.step()
    decayed, _ = expected_split(model, decay_bn, decay_fc_bias)
    for n, p in model.named_parameters():
        p0, g = before[n]
        expected = p0 - lr * (g + wd * p0) if n in decayed else p0 - lr * g
        torch.testing.assert_close(p.detach(), expected, rtol=1e-6, atol=1e-7, msg=n)


def test_build_optimizer_settings_and_errors():
    opt = build_optimizer(toy_model(), lr=0.4, momentum=0.9, weight_decay=1e-4, nesterov=True, decay_bn=False, decay_fc_bias=False)
    assert isinstance(opt, torch.optim.SGD) and OPTIMIZER_NAMES == ("sgd",)
    assert all(g["momentum"] == 0.9 and g["nesterov"] and g["lr"] == 0.4 for g in opt.param_groups)
    good = dict(lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=False, decay_bn=True, decay_fc_bias=True)
    for bad, message in [
        (dict(name="adam"), "unknown optimizer 'adam'; choose one of sgd"),
        (dict(lr=0.0), "lr"),
        (dict(momentum=1.0), "momentum"),
        (dict(momentum=0.0, nesterov=True), "nesterov"),
        (dict(decay_fc_bias="auto"), "resolve_decay_fc_bias"),
    ]:
        with pytest.raises(ValueError, match=message):
            build_optimizer(toy_model(), **(good | bad))


def test_resolve_decay_fc_bias():
    assert resolve_decay_fc_bias("auto", "softmax") is True
    assert resolve_decay_fc_bias("auto", "sigmoid") is False
    assert resolve_decay_fc_bias("auto", "focal") is False
    assert resolve_decay_fc_bias(False, "softmax") is False and resolve_decay_fc_bias(True, "focal") is True
    with pytest.raises(ValueError, match="true, false or 'auto'"):
        resolve_decay_fc_bias("yes", "softmax")


# ----------------------------------------------------------------------------- configs
# the paper's and the authors' scripts' values, transcribed here independently of the YAML files
DESIGN = {
    "cifar": dict(name="sgd", lr=0.1, reference_batch=128, batch_size=128, epochs=200, momentum=0.9, nesterov=False,
                  weight_decay=2e-4, decay_bn=True, decay_fc_bias="auto", warmup_epochs=5, milestones=[160, 180], factors=[0.01, 1e-4]),
    "large_scale": dict(name="sgd", lr=0.1, reference_batch=256, batch_size=1024, epochs=90, momentum=0.9, nesterov=True,
                        weight_decay=1e-4, decay_bn=False, decay_fc_bias=False, warmup_epochs=5, milestones=[30, 60, 80], factors=[0.1, 0.01, 0.001]),
}


@pytest.mark.parametrize("recipe", sorted(DESIGN))
@pytest.mark.parametrize("loader", [lambda p: yaml.safe_load(p.read_text()), lambda p: OmegaConf.to_container(OmegaConf.load(p))])
def test_optim_configs_hold_the_design_values(recipe, loader):
    cfg = loader(CONFIGS / "optim" / f"{recipe}.yaml")
    if recipe == "cifar":  # the factors follow the imbalance factor (below)
        assert cfg.pop("factors") == "${cbl_cifar_lr_factors:${oc.select:dataset.imbalance_factor,null}}"
        cfg["factors"] = DESIGN[recipe]["factors"]
    assert cfg == DESIGN[recipe]
    assert all(type(cfg[k]) is float for k in ("lr", "momentum", "weight_decay"))  # "2e-4" would be a str in PyYAML


@pytest.mark.parametrize("recipe, top_lr", [("cifar", 0.1), ("large_scale", 0.4)])
@pytest.mark.parametrize("loss_type", ["softmax", "focal"])
def test_optim_configs_build_an_optimizer_and_schedule(recipe, top_lr, loss_type):
    cfg = OmegaConf.load(CONFIGS / "optim" / f"{recipe}.yaml")
    model = build_model("small_cnn", 10, loss_type=loss_type)
    opt = build_optimizer(
        model, name=cfg.name, lr=scaled_lr(cfg.lr, cfg.batch_size, cfg.reference_batch), momentum=cfg.momentum,
        weight_decay=cfg.weight_decay, nesterov=cfg.nesterov, decay_bn=cfg.decay_bn,
        decay_fc_bias=resolve_decay_fc_bias(cfg.decay_fc_bias, loss_type),
    )
    sched = build_scheduler(opt, steps_per_epoch=10, warmup_epochs=cfg.warmup_epochs, milestones=list(cfg.milestones), factors=list(cfg.factors))
    for _ in range(10 * cfg.warmup_epochs):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(top_lr)
    fc_bias_decayed = any(p is model.fc.bias for p in opt.param_groups[0]["params"])
    assert fc_bias_decayed == (recipe == "cifar" and loss_type == "softmax")


@pytest.mark.parametrize("path", sorted((CONFIGS / "model").glob("*.yaml")), ids=lambda p: p.stem)
def test_model_configs_build(path):
    cfg = OmegaConf.to_container(OmegaConf.load(path))
    assert cfg["name"] == path.stem
    with torch.device("meta"):
        model = build_model(**cfg, num_classes=10)
    assert model.fc.out_features == 10


def test_every_model_has_a_config():
    assert sorted(p.stem for p in (CONFIGS / "model").glob("*.yaml")) == sorted(MODEL_NAMES)


@pytest.mark.parametrize("dataset", ["cifar10_lt", "cifar100_lt"])
@pytest.mark.parametrize("imbalance_factor, factors", [(200, [0.01, 1e-4]), (100, [0.01, 1e-4]), (10, [0.01, 1e-4]),
                                                       (1, [0.1, 0.01]), (1.0, [0.1, 0.01])])
def test_cifar_schedule_is_the_authors_per_imbalance_factor(dataset, imbalance_factor, factors):
    """The long-tailed scripts pass multipliers 1 / 0.01 / 0.0001; the balanced one (IF 1) none, so cifar_main.py's
    default 1 / 0.1 / 0.01 applies: however the run is composed, a sweep's IF 1 job included."""
    from tests.train_utils import compose_cfg

    for extra in ([], ["sweep=table2_softmax_sigmoid"], ["sweep=table2_focal"]):
        cfg = compose_cfg(f"dataset={dataset}", f"dataset.imbalance_factor={imbalance_factor}", *extra)
        assert list(cfg.optim.factors) == factors and list(cfg.optim.milestones) == [160, 180]
    # the lr the optimizer sees after epoch 180 (base 0.1, one step per epoch)
    cfg = compose_cfg(f"dataset={dataset}", f"dataset.imbalance_factor={imbalance_factor}")
    model = build_model("small_cnn", 10, loss_type="softmax")
    opt = build_optimizer(model, name="sgd", lr=0.1, momentum=0.9, weight_decay=0.0, nesterov=False, decay_bn=True,
                          decay_fc_bias=True)
    sched = build_scheduler(opt, steps_per_epoch=1, warmup_epochs=5, milestones=list(cfg.optim.milestones),
                            factors=list(cfg.optim.factors))
    lrs = []
    for _ in range(200):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[170] == pytest.approx(0.1 * factors[0]) and lrs[190] == pytest.approx(0.1 * factors[1])
    # chosen explicitly, the user's factors win
    assert list(compose_cfg(f"dataset={dataset}", "dataset.imbalance_factor=1", "optim.factors=[0.5,0.25]").optim.factors) == [0.5, 0.25]
