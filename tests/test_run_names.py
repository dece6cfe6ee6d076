"""Run folders are named by the resolved configuration: one configuration, one folder, however it was typed or
launched; anything that changes what is computed (or the data file) gives another folder."""

import re

import pytest
from omegaconf import OmegaConf

from cbl.training.config import run_group, run_name
from cbl.training.overrides import sweep_runs
from tests.train_utils import compose_cfg


def name(*overrides: str) -> str:
    return run_name(OmegaConf.to_container(compose_cfg(*overrides), resolve=True))


def test_the_name_reads_as_what_the_tables_group_by():
    assert re.fullmatch(r"cifar10_lt-if100-resnet32-softmax-b0-s0-[0-9a-f]{8}", name())
    assert re.fullmatch(r"cifar100_lt-if50-resnet32-focal-b0\.9999-g2-s3-[0-9a-f]{8}",
                        name("dataset=cifar100_lt", "dataset.imbalance_factor=50", "loss=focal", "loss.beta=0.9999",
                             "loss.gamma=2.0", "seed=3"))  # fmt: skip
    assert name("method=ldam_drw").startswith("cifar10_lt-if100-resnet32-ldam_drw-b0.9999-s0-")
    assert name("experiment=table3").startswith("inat2018-resnet50-focal-b0.999-g0.5-s0-")


@pytest.mark.parametrize("spelling", [
    ["loss.beta=0"], ["loss.beta=0.0"], ["seed=0"], ["dataset.imbalance_factor=100.0"], ["optim.epochs=200"],
    ["optim.factors=[0.01,0.0001]"], ["device=cpu", "resume=true", "compile=true", "channels_last=true"],
    ["wandb.mode=disabled", "progress=false", "loss_check_every=20", "keep_checkpoints=5", "eval_batch_size=500"],
    ["dataset.root=/elsewhere", "dataset.num_workers=0", "dataset.download=false"], ["name=table2"],
    ["sweep=table2_softmax_sigmoid", "dataset=cifar10_lt", "dataset.imbalance_factor=100", "loss=softmax",
     "loss.beta=0.0"],
])  # fmt: skip
def test_the_default_run_however_spelled_or_launched_has_one_name(spelling):
    assert name(*spelling) == name()


@pytest.mark.parametrize("change", [
    ["seed=1"], ["dataset.subset_seed=1"], ["loss.beta=0.9"], ["optim.epochs=20"], ["optim.milestones=[100,150]"],
    ["precision=bf16"], ["dataset.order=authors_stream"], ["sampler=sqrt"], ["deterministic=true"],
    ["dataset.npz=/data/cifar10_jpeg_lossy.npz"], ["eval_every=2"],
])  # fmt: skip
def test_what_changes_the_computation_or_the_data_changes_the_name(change):
    assert name(*change) != name()


def test_another_copy_of_the_same_data_file_elsewhere_is_the_same_run():
    assert name("dataset.npz=/a/c.npz") == name("dataset.npz=/b/c.npz") != name("dataset.npz=/b/d.npz")


def test_the_folder_is_the_table_the_run_belongs_to():
    def group(*overrides):
        return run_group(OmegaConf.to_container(compose_cfg(*overrides), resolve=True))

    assert group() == group("loss=focal", "loss.beta=0.999") == group("dataset=cifar100_lt") == "table2"
    assert group("dataset.imbalance_factor=1") == group("device=cpu", "compile=true", "eval_every=2") == "table2"
    assert group("experiment=table3") == group("experiment=table3", "dataset=ilsvrc2012") == "table3"
    assert group("method=ldam") == group("sampler=sqrt") == group("loss.weighting=inverse") == "methods"
    assert group("dataset=digits_lt") == "runs"
    assert compose_cfg().name == "table2" and compose_cfg("experiment=demo").name == "demo"
    assert compose_cfg("experiment=table3").name == "table3" and compose_cfg("name=mine").name == "mine"


@pytest.mark.parametrize("change", [
    ["optim.epochs=2"], ["dataset.npz=/data/cifar10.npz"], ["precision=bf16"], ["dataset.order=authors_stream"],
    ["optim.lr=0.2"], ["optim.batch_size=256"], ["optim=large_scale"], ["model=resnet50"], ["method=ldam", "optim.epochs=20"],
    ["experiment=table3", "optim=cifar"],
])  # fmt: skip
def test_a_run_of_another_recipe_than_the_papers_goes_to_runs(change):
    """Not among the paper's runs (which tables 2 and 3 fill their cells from), even for the paper's losses."""
    cfg = compose_cfg(*change)
    assert cfg.name == "runs" and compose_cfg(*change, "name=table2").name == "table2"


def test_the_sweeps_of_another_recipe_name_their_folder():
    """The bf16 pairs of the precision check and the lossy-copy evidence stay in outputs/table2, where their make
    targets read them; every other sweep's jobs go where their recipe puts them."""
    assert {compose_cfg("sweep=precision", f"precision={p}").name for p in ("fp32", "bf16")} == {"table2"}
    assert compose_cfg("sweep=evidence_lossy").name == compose_cfg("sweep=evidence_lossy", "precision=fp32").name == "table2"
    assert compose_cfg("sweep=table2_focal").name == compose_cfg("sweep=methods").name == "table2"
    assert compose_cfg("sweep=table3_softmax").name == "table3"


def test_hydra_resolves_the_run_folder_to_output_dir_group_name():
    cfg = compose_cfg("output_dir=/tmp/o", "loss=sigmoid", return_hydra_config=True)
    assert cfg.hydra.run.dir == f"/tmp/o/table2/{name('loss=sigmoid')}"
    assert cfg.hydra.sweep.subdir == name("loss=sigmoid")


def test_your_own_data_elsewhere_is_another_run(tmp_path):
    a = name("dataset=imagefolder", f"dataset.root={tmp_path / 'a'}")
    assert a == name("dataset=imagefolder", f"dataset.root={tmp_path / 'x' / '..' / 'a'}")  # the same folder
    assert a != name("dataset=imagefolder", f"dataset.root={tmp_path / 'b'}")


def test_values_on_the_command_line_narrow_a_sweep_to_the_jobs_that_match():
    # `make evidence-lossy ARGS="loss=softmax loss.beta=0.9999"` trains (and collects) that one configuration only
    six = sweep_runs(["sweep=evidence_lossy"])
    one = sweep_runs(["sweep=evidence_lossy", "loss=softmax", "loss.beta=0.9999"])
    assert len(six) == 6 and len(one) == 1 and one <= six
    assert one == {name("sweep=evidence_lossy", "loss=softmax", "loss.beta=0.9999")}
