"""The wheel, installed anywhere: built without network, installed into a fresh virtual environment (torch and the
other dependencies made visible from this environment, not downloaded), its console scripts run from a folder
outside the checkout, so only the packaged configs can be found; and an editable install, which reads the
checkout's configs/ as they are edited.  The core (the wheel and the demo) takes about 25 s on 2 cores; the
tests marked slow add the help, tab completion, the other console scripts and the editable install (~40 s)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.train_utils import LAUNCHER_VARS, ROOT

#: what the wheel is built from (a copy: building in the checkout would write build/ and cbl.egg-info there)
SOURCES = ("cbl", "hydra_plugins", "configs", "pyproject.toml", "README.md")


def _run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _cannot_build() -> str | None:
    """Why no wheel can be built here without network, or None."""
    if importlib.util.find_spec("setuptools") is None:
        return "setuptools is not installed (pip wheel --no-build-isolation needs it)"
    from importlib.metadata import version

    from packaging.version import Version

    if Version(version("setuptools")) < Version("77"):
        return f"setuptools {version('setuptools')} < 77 (pyproject.toml's build requirement)"
    if Version(version("pip")) < Version("22.3"):
        return f"pip {version('pip')} has no --python option to install into another environment"
    return None


class Installed:
    def __init__(self, root: Path, venv: Path, wheel: Path) -> None:
        self.root, self.venv, self.wheel = root, venv, wheel
        self.bin = venv / ("Scripts" if os.name == "nt" else "bin")
        self.elsewhere = root / "elsewhere"  # the working folder: no configs/, no cbl/ beside it
        self.elsewhere.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in (*LAUNCHER_VARS, "PYTHONPATH", "PYTHONHOME")}
        self.env = {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0", "MPLBACKEND": "Agg"}

    def run(self, script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return _run([self.bin / script, *args], cwd=self.elsewhere, env={**self.env, **(env or {})})


def copy_sources(dst: Path) -> Path:
    for name in SOURCES:
        if (ROOT / name).is_dir():  # symlinks=True: cbl/configs stays the link to ../configs that a checkout has
            shutil.copytree(ROOT / name, dst / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, dst / name)
    return dst


def fresh_venv(tmp: Path, *pip_args) -> Path:
    """A new virtual environment with `pip install --no-deps <pip_args>`, seeing this environment's packages."""
    venv = tmp / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp)
    if made.returncode != 0:
        pytest.skip(f"cannot create a virtual environment here: {made.stderr.strip()}")
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    # torch & co. from this environment, appended after the venv's own site-packages (a plain path line: the .pth
    # files there, such as this checkout's editable install of cbl, are not run, so cbl comes from the new install);
    # before installing, since `pip --python` builds with the new environment's setuptools
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp).stdout.strip())
    here = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "zz_test_dependencies.pth").write_text("".join(f"{p}\n" for p in here))
    install = _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
                    "--no-build-isolation", "-q", *pip_args], cwd=tmp)  # fmt: skip
    assert install.returncode == 0, install.stderr
    return venv


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    reason = _cannot_build()
    if reason:
        pytest.skip(f"cannot build the wheel here: {reason}")
    tmp = tmp_path_factory.mktemp("wheel")
    src = copy_sources(tmp / "src")
    build = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                  "-w", tmp / "dist", src], cwd=tmp)  # fmt: skip
    if build.returncode != 0:
        pytest.skip(f"cannot build the wheel here: {(build.stderr.strip().splitlines() or ['pip wheel failed'])[-1]}")
    (wheel,) = (tmp / "dist").glob("cbl-*.whl")
    return Installed(tmp, fresh_venv(tmp, wheel), wheel)


def test_the_wheel_holds_every_config_file_as_a_file(installed):
    configs = {p.relative_to(ROOT / "configs").as_posix(): p.read_bytes() for p in (ROOT / "configs").rglob("*.yaml")}
    with zipfile.ZipFile(installed.wheel) as whl:
        packaged = {n.removeprefix("cbl/configs/"): whl.read(n) for n in whl.namelist() if n.startswith("cbl/configs/")}
    assert packaged == configs and "train.yaml" in packaged

    where = _run([installed.bin / "python", "-c", "import cbl, cbl.training.config as c, torch; "
                  "print(cbl.__file__); print(c.CONFIG_DIR); print(torch.__version__)"],
                 cwd=installed.elsewhere, env=installed.env).stdout.split()  # fmt: skip
    package, config_dir, _ = where
    assert Path(package).is_relative_to(installed.venv) and not Path(package).is_relative_to(ROOT)
    assert Path(config_dir) == Path(package).parent / "configs" and not Path(config_dir).is_symlink()


def test_cbl_train_runs_the_demo_from_any_folder_and_cbl_evaluate_reproduces_it(installed):
    out = installed.root / "out"
    train = installed.run("cbl-train", "experiment=demo", "optim.epochs=1", "device=cpu", "deterministic=true",
                          f"output_dir={out}")  # fmt: skip
    assert train.returncode == 0, train.stderr
    (run_dir,) = (out / "demo").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["epochs_completed"] == 1 and 0 <= metrics["top1_err"] <= 100
    assert list(installed.elsewhere.iterdir()) == []  # everything went to output_dir

    evaluated = installed.run("cbl-evaluate", str(run_dir))
    assert evaluated.returncode == 0, evaluated.stderr
    again = json.loads((run_dir / "eval" / "epoch_0001" / "evaluation.json").read_text())
    assert (again["top1_err"], again["top5_err"], again["per_class_acc"]) == (
        metrics["top1_err"], metrics["top5_err"], metrics["per_class_acc"])

    summary = installed.run("cbl-sweep-summary", str(out))
    assert summary.returncode == 0 and "1 run: 1 finished, 0 failed, 0 incomplete" in summary.stdout, summary.stderr
    table = installed.run("cbl-make-table", "--runs", str(out), "--table", "methods")
    assert table.returncode == 0 and "Generated by `cbl-make-table --runs" in table.stdout, table.stderr


@pytest.mark.slow  # four processes that each import torch (~25 s here); tests/test_packaging.py checks the same in-process
def test_cbl_train_help_lists_the_groups_and_tab_completion_works(installed):
    helped = installed.run("cbl-train", "--help")
    assert helped.returncode == 0 and helped.stdout.startswith("cbl-train (python -m cbl.train): train one configuration")
    assert "== Configuration groups ==" in helped.stdout
    assert "loss: balanced_softmax, focal, ldam, logit_adjusted, sigmoid, softmax" in helped.stdout
    assert "Hydra (" in installed.run("cbl-train", "--hydra-help").stdout

    script = installed.run("cbl-train", "-sc", "install=bash")
    assert script.returncode == 0
    assert script.stdout.rstrip().endswith("complete -o nospace -o default -F hydra_bash_completion cbl-train")
    # what bash asks when the user presses tab after `cbl-train loss=`
    query = installed.run("cbl-train", "-sc", "query=bash", env={"COMP_LINE": "cbl-train loss=", "COMP_POINT": "15"})
    assert {"loss=focal", "loss=softmax", "loss=sigmoid"} <= set(query.stdout.split()), query.stdout + query.stderr


@pytest.mark.slow
@pytest.mark.parametrize("script,args,expected", [
    ("cbl-plot", ["--help"], "usage: cbl-plot"),
    ("cbl-bench", ["--paths", "list"], "standard"),
    ("cbl-dashboard", ["--help"], "usage: cbl-dashboard"),
    ("cbl-evaluate", ["--help"], "usage: cbl-evaluate"),
])  # fmt: skip
def test_the_other_console_scripts_start(installed, script, args, expected):
    proc = installed.run(script, *args)
    assert proc.returncode == 0 and expected in proc.stdout, proc.stderr


@pytest.mark.slow  # ~10 s; the fast suite covers the editable case through this checkout's own .venv (test_packaging)
def test_an_editable_install_reads_the_checkouts_configs_as_they_are_edited(tmp_path):
    reason = _cannot_build()
    if reason:
        pytest.skip(f"cannot install editable here: {reason}")
    src = copy_sources(tmp_path / "checkout")
    installed = Installed(tmp_path, fresh_venv(tmp_path, "-e", src), wheel=Path())
    where = _run([installed.bin / "python", "-c", "import cbl.training.config as c; print(c.CONFIG_DIR)"],
                 cwd=installed.elsewhere, env=installed.env)  # fmt: skip
    assert Path(where.stdout.strip()) == (src / "configs").resolve(), where.stderr
    # an edit to configs/ (the one copy) is what cbl-train composes next, without reinstalling
    demo = src / "configs" / "experiment" / "demo.yaml"
    demo.write_text(demo.read_text().replace("name: demo", "name: edited_demo"))
    composed = installed.run("cbl-train", "experiment=demo", "--cfg", "job")
    assert composed.returncode == 0 and "\nname: edited_demo\n" in composed.stdout, composed.stderr
