"""Beyond the paper, config side: every method preset composes, checks, builds and gets its own label; the paper's
configurations keep method == loss and compute exactly what they did; the new keys are checked with one-line
messages; checkpoints saved before the new keys existed still resume."""

import json

import pytest
import torch
from omegaconf import OmegaConf

from cbl.training import config as cbl_config
from cbl.data import long_tail_counts
from cbl.losses import ClassBalancedLoss, WeightedLoss
from cbl.losses.criterion import LOSS_NAMES, build_criterion, head_type, method_label
from cbl.losses.logit_adjustment import BalancedSoftmaxLoss, LDAMLoss, LogitAdjustedLoss
from cbl.losses.weighting import DeferredReweighting
from cbl.reporting.runs import read_run
from cbl.training.run_files import run_fields
from tests.runfactory import write_run
from tests.test_configs import build_everything, sweep_params
from tests.train_utils import CONFIG_DIR, compose_cfg

METHODS = sorted(p.stem for p in (CONFIG_DIR / "method").glob("*.yaml"))

# method preset -> (label, loss, beta, gamma, sampler, settings shown in the table); written from the table of docs/beyond_the_paper.md
EXPECTED = {
    "softmax": ("softmax", "softmax", 0.0, 0.0, "instance", ""),
    "cb_softmax": ("softmax", "softmax", 0.9999, 0.0, "instance", ""),
    "cb_focal": ("focal", "focal", 0.9999, 1.0, "instance", ""),
    "inverse_freq": ("inverse_freq", "softmax", 0.0, 0.0, "instance", "weighting=inverse"),
    "inverse_sqrt_freq": ("inverse_sqrt_freq", "softmax", 0.0, 0.0, "instance", "weighting=inverse_sqrt"),
    "cb_resample": ("cb_resample", "softmax", 0.0, 0.0, "class_balanced", "sampler=class_balanced"),
    "sqrt_resample": ("sqrt_resample", "softmax", 0.0, 0.0, "sqrt", "sampler=sqrt"),
    "drw": ("drw", "softmax", 0.9999, 0.0, "instance", "drw_epoch=160, reduction=weighted_mean"),
    "ldam": ("ldam", "ldam", 0.0, 0.0, "instance", "reduction=weighted_mean, s=30, max_m=0.5"),
    "ldam_drw": ("ldam_drw", "ldam", 0.9999, 0.0, "instance", "drw_epoch=160, reduction=weighted_mean, s=30, max_m=0.5"),
    "balanced_softmax": ("balanced_softmax", "balanced_softmax", 0.0, 0.0, "instance", ""),
    "logit_adjusted": ("logit_adjusted", "logit_adjusted", 0.0, 0.0, "instance", "tau=1"),
}
CRITERIA = {"softmax": WeightedLoss, "sigmoid": WeightedLoss, "focal": WeightedLoss, "ldam": LDAMLoss,
            "balanced_softmax": BalancedSoftmaxLoss, "logit_adjusted": LogitAdjustedLoss}


def test_the_method_group_holds_every_documented_method():
    assert set(METHODS) == set(EXPECTED)
    assert set(LOSS_NAMES) == set(CRITERIA)
    assert {p.stem for p in (CONFIG_DIR / "sampler").glob("*.yaml")} == {"instance", "class_balanced", "sqrt"}


@pytest.mark.parametrize("method", METHODS)
def test_every_method_preset_composes_checks_builds_and_is_labelled(method, tmp_path):
    cfg = compose_cfg(f"method={method}")
    cbl_config.check(cfg)
    label, loss, beta, gamma, sampler, settings = EXPECTED[method]
    assert (cfg.loss.name, cfg.loss.beta, cfg.loss.gamma, cfg.sampler.name) == (loss, beta, gamma, sampler)
    assert method_label(cfg.loss, cfg.sampler.name) == label
    counts = long_tail_counts(5000, 10, 100)
    criterion = build_criterion(cfg.loss, counts)
    inner = criterion.loss if isinstance(criterion, DeferredReweighting) else criterion
    assert type(inner) is CRITERIA[loss]
    assert isinstance(criterion, DeferredReweighting) == (cfg.loss.drw_epoch is not None)
    if cfg.loss.drw_epoch is not None:
        assert cfg.loss.drw_epoch == cfg.optim.milestones[0] == 160 and criterion.drw_epoch == 160
    net, crit = build_everything(cfg, num_classes=10)
    crit.set_epoch(200)
    value = crit(net(torch.randn(2, 3, 32, 32)), torch.tensor([0, 9]))
    assert torch.isfinite(value)
    assert head_type(loss) == ("cosine" if loss == "ldam" else "softmax" if loss != "focal" else "focal")
    # the fields a run records, read back by cbl.reporting.runs as the table's settings column
    fields = run_fields(cfg, num_classes=10)
    write_run(tmp_path / method, loss=loss, beta=beta, gamma=gamma, method=fields["method"])
    metrics = tmp_path / method / "metrics.json"
    data = json.loads(metrics.read_text())
    data["run"].update(fields)
    metrics.write_text(json.dumps(data))
    assert read_run(tmp_path / method).settings == settings
    assert read_run(tmp_path / method).method == label


@pytest.mark.parametrize("sweep", ["methods", "methods_demo"])
def test_the_methods_sweeps_enumerate_every_method_once(sweep):
    params = sweep_params(sweep)
    assert list(params) == ["method"] and sorted(params["method"]) == METHODS and len(params["method"]) == len(METHODS)
    cfg = compose_cfg(f"sweep={sweep}")
    if sweep == "methods":
        # each job goes where its configuration belongs: the paper's losses to Table 2's folder, the others to methods
        groups = {m: compose_cfg(f"sweep={sweep}", f"method={m}").name for m in params["method"]}
        assert groups == {m: "table2" if m in ("softmax", "cb_softmax", "cb_focal") else "methods" for m in METHODS}
        assert (cfg.dataset.name, cfg.dataset.imbalance_factor, cfg.model.name, cfg.optim.epochs) == ("cifar10_lt", 100, "resnet32", 200)
    else:
        assert cfg.name == sweep and (cfg.dataset.name, cfg.model.name) == ("digits_lt", "small_cnn")


def test_paper_configurations_keep_their_label_and_compute_exactly_as_before():
    counts = long_tail_counts(5000, 10, 50)
    torch.manual_seed(0)
    z, y = torch.randn(64, 10), torch.randint(0, 10, (64,))
    for name in ("table2_softmax_sigmoid", "table2_focal"):
        params = sweep_params(name)
        for loss in params["loss"]:
            for beta in params["loss.beta"]:
                for gamma in params.get("loss.gamma", ["0.0"]):
                    cfg = compose_cfg(f"sweep={name}", f"loss={loss}", f"loss.beta={beta}", f"loss.gamma={gamma}")
                    assert method_label(cfg.loss, cfg.sampler.name) == loss
                    assert (cfg.loss.weighting, cfg.loss.drw_epoch, cfg.loss.reduction, cfg.sampler.name) == (
                        "effective_number", None, "batch", "instance")
                    new = build_criterion(cfg.loss, counts)
                    old = ClassBalancedLoss(counts, loss, float(beta), float(gamma), validate=False)
                    a, b = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
                    new.set_epoch(1)
                    la, lb = new(a, y), old(b, y)
                    la.backward(), lb.backward()
                    assert torch.equal(la, lb) and torch.equal(a.grad, b.grad), (loss, beta, gamma)
    for overrides in (["experiment=table3"], ["sweep=table3_cb_focal"], ["sweep=demo"]):
        cfg = compose_cfg(*overrides)
        assert method_label(cfg.loss, cfg.sampler.name) == cfg.loss.name


def test_labels_of_combinations():
    base = {"name": "softmax", "beta": 0.0, "gamma": 0.0, "weighting": "effective_number", "drw_epoch": None, "reduction": "batch"}
    cases = [
        ({}, "instance", "softmax"),
        ({"beta": 0.999, "name": "focal"}, "instance", "focal"),
        ({"weighting": "inverse", "drw_epoch": 160}, "instance", "inverse_freq+drw"),
        ({"name": "balanced_softmax"}, "sqrt", "balanced_softmax+sqrt_resample"),
        ({"name": "ldam", "beta": 0.9999, "drw_epoch": 160}, "class_balanced", "ldam_drw+cb_resample"),
        ({"beta": 0.9999, "reduction": "weighted_mean"}, "instance", "weighted_mean"),
        ({"name": "sigmoid"}, "class_balanced", "cb_resample"),
    ]
    for change, sampler, label in cases:
        assert method_label({**base, **change}, sampler) == label
    # configs recorded before these keys existed are paper configurations
    assert method_label({"name": "focal", "beta": 0.9, "gamma": 1.0}) == "focal"


BAD = [
    (["loss.weighting=inv"], "loss.weighting='inv' is not allowed: choose one of effective_number, inverse, inverse_sqrt"),
    (["loss.weighting=inverse", "loss.beta=0.9"], "loss.beta=0.9 is not allowed: beta applies only to loss.weighting=effective_number"),
    (["loss.reduction=sum"], "loss.reduction='sum' is not allowed: choose one of batch, weighted_mean"),
    (["sampler.name=uniform"], "sampler.name='uniform' is not allowed: choose one of instance, sqrt, class_balanced"),
    (["loss.beta=0.9", "loss.drw_epoch=0"], "loss.drw_epoch=0 is not allowed: must be null or an integer in 1..199"),
    (["loss.beta=0.9", "loss.drw_epoch=200"], "loss.drw_epoch=200 is not allowed: must be null or an integer in 1..199"),
    (["loss.beta=0.9", "loss.drw_epoch=1.5"], "loss.drw_epoch=1.5 is not allowed"),
    (["loss.beta=0.9", "loss.drw_epoch=soon"], "loss.drw_epoch='soon' is not allowed"),
    (["loss.drw_epoch=160"], "loss.drw_epoch=160 is not allowed: deferred re-weighting needs weights to defer"),
    (["method=drw", "optim.milestones=[]", "optim.factors=[]"],
     "loss.drw_epoch=${optim.milestones.0} is not allowed: it follows the first lr milestone, and optim.milestones=[] has none"),
    (["loss=logit_adjusted", "loss.tau=-1"], "loss.tau=-1 is not allowed: tau (the logit-adjustment temperature) must be a finite number >= 0"),
    (["loss=ldam", "loss.max_m=0"], "loss.max_m=0 is not allowed: max_m (the largest LDAM margin) must be a finite number > 0"),
    (["loss=ldam", "loss.s=-30"], "loss.s=-30 is not allowed: s (the LDAM logit scale) must be a finite number > 0"),
    (["loss=ldam", "loss.gamma=2.0"], "loss.gamma=2.0 is not allowed: gamma applies only to loss=focal (this run uses loss=ldam)"),
    (["loss=softmax", "+loss.tau=1.0"], "loss.tau=1.0 is not allowed: not a loss key; loss 'softmax' has"),
    (["loss=balanced_softmax", "+loss.max_m=0.5"], "loss.max_m=0.5 is not allowed: not a loss key"),
]


@pytest.mark.parametrize("overrides,message", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_values_of_the_new_keys_are_one_line_errors(overrides, message):
    with pytest.raises(cbl_config.ConfigError) as e:
        cbl_config.check(compose_cfg(*overrides))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_checkpoints_saved_before_the_new_keys_resume():
    new = cbl_config.comparable(OmegaConf.to_container(compose_cfg("loss=focal", "loss.beta=0.999"), resolve=True))
    old = {k: (dict(v) if isinstance(v, dict) else v) for k, v in new.items() if k != "sampler"}
    old["loss"] = {k: v for k, v in new["loss"].items() if k not in ("weighting", "drw_epoch", "reduction")}
    assert cbl_config.first_difference(old, new) is not None  # what an upgrade would otherwise refuse
    assert cbl_config.first_difference(cbl_config.with_added_keys(old), new) is None
    # a real difference is still reported, and keys the old config has are kept
    changed = cbl_config.with_added_keys({**old, "loss": {**old["loss"], "beta": 0.9}})
    assert cbl_config.first_difference(changed, new) == ("loss.beta", 0.9, 0.999)
    drw = compose_cfg("method=drw")
    saved = cbl_config.comparable(OmegaConf.to_container(drw, resolve=True))
    assert cbl_config.with_added_keys(saved) == saved
