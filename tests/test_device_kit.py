"""The device kit (scripts/device_kit.py, cbl/data/partial_copy.py), dry-run on the CPU: the partial copy holds the
original's pixels for its subset and refuses others; `build` packs and size-checks the kit; `run` completes end to
end at 1 epoch with wandb missing, as on the device machine, returning at most 8 files that `ingest` turns into run
summaries; stopped runs travel back in chunks that the next call resumes from."""

import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from cbl.commands import device_kit
from cbl.data.cifar import load_cifar_lt
from cbl.data.partial_copy import pack, unpack
from tests.train_utils import LAUNCHER_VARS, ROOT

N_MAX = 100  # the packed IF 100 subset: 100, 59, 35, 21, 12, 7, 4, 2, 1, 1 training images


@pytest.fixture(scope="module")
def lossy_npz(tmp_path_factory):
    """A CIFAR-10-shaped .npz of 100 training and 10 test images per class, grouped by class like the lossy copy."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("npz") / "cifar10_jpeg_lossy.npz"
    y_train, y_test = np.repeat(np.arange(10), 100), np.repeat(np.arange(10), 10)
    np.savez_compressed(path, x_train=rng.integers(0, 256, (1000, 32, 32, 3), dtype=np.uint8), y_train=y_train,
                        x_test=rng.integers(0, 256, (100, 32, 32, 3), dtype=np.uint8), y_test=y_test,
                        class_names=np.array([f"c{i}" for i in range(10)]))
    return path


def test_a_partial_copy_reads_the_original_pixels_under_its_id_and_refuses_other_subsets(lossy_npz, tmp_path):
    packed = pack(lossy_npz, tmp_path / "p.npz", imbalance_factor=100, subset_seed=0, n_max=N_MAX)
    whole = unpack(packed, tmp_path / "data")
    assert whole.name == lossy_npz.name  # the original's file name: the same run names
    a = load_cifar_lt("cifar10", npz=lossy_npz, imbalance_factor=100, n_max=N_MAX)
    b = load_cifar_lt("cifar10", npz=whole, imbalance_factor=100, n_max=N_MAX)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert b.source.id == a.source.id and "partial copy" in b.source.detail
    with pytest.raises(ValueError, match=r"is a partial copy of npz:cifar10_jpeg_lossy.npz@sha256:\w+ holding 242 "
                                         r"training images; imbalance_factor=100 subset_seed=1 needs \d+ it lacks"):
        load_cifar_lt("cifar10", npz=whole, imbalance_factor=100, subset_seed=1, n_max=N_MAX)
    damaged = dict(np.load(packed))
    damaged["pixels_sha256"] = np.str_("0" * 64)
    np.savez(tmp_path / "bad.npz", **damaged)
    with pytest.raises(ValueError, match="do not match the original's sha256"):
        unpack(tmp_path / "bad.npz", tmp_path / "bad")


def test_build_run_and_ingest_end_to_end_on_the_cpu_without_wandb(lossy_npz, tmp_path):
    kit, out = tmp_path / "kit", tmp_path / "out"
    assert device_kit.main(["--kit", str(kit), "build", "--npz", str(lossy_npz), "--n-max", str(N_MAX), "--no-wheels"]) == 0
    manifest = json.loads((kit / "manifest.json").read_text())
    assert manifest["kit_bytes"] + manifest["tree_bytes"] < device_kit.LIMIT - device_kit.HEADROOM

    blocker = tmp_path / "blocked" / "wandb"  # the device machine has no wandb: importing it must not be needed
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'wandb'\", name='wandb')\n")
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    env.update(PYTHONPATH=str(tmp_path / "blocked"), OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "device_kit.py"), "--kit", str(kit), "run", "--out",
                        str(out), "--device", "cpu", "--epochs", "1", "--n-max", str(N_MAX), "--bench-seconds", "120",
                        "--bench-args", "--npz synthetic --paths tensor --steps 2 --rounds 1 --warmup 1 --eval-batches 1 "
                        "--max-other-load 1"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    report = json.loads((out / "kit.json").read_text())
    assert p.returncode == 0, (report, (out / "kit.log").read_text()[-3000:])
    assert set(report["steps"]) == {"cuda tests", "runs", "bench"} and len(report["runs"]["finished"]) == 6
    files = [f for f in out.iterdir()]
    assert len(files) <= 8 and all(f.is_file() and f.stat().st_size < 16 * 2**20 for f in files)
    with tarfile.open(out / "runs.tar.gz") as tar:
        names = tar.getnames()
    assert sum(n.endswith("predictions_last.npz") for n in names) == 6 and not any(n.endswith(".pt") for n in names)

    got = tmp_path / "evidence_gpu"
    assert device_kit.main(["--kit", str(kit), "ingest", str(out), "--to", str(got), "--bench-to",
                            str(tmp_path / "gpu.json"), "--readme", str(readme_with_marker(tmp_path))]) == 0
    runs = sorted(got.iterdir())
    assert len(runs) == 6 and all((r / "metrics.json").is_file() for r in runs)
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert metrics["data_source"]["id"].startswith("npz:cifar10_jpeg_lossy.npz@sha256:")  # the original's id
    assert "bench-cpu" in (tmp_path / "page.md").read_text() or (tmp_path / "gpu.json").is_file()


def readme_with_marker(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("x\n<!-- cbl:bench-cpu:start -->\n<!-- cbl:bench-cpu:end -->\n"
                    "<!-- cbl:bench-gpu:start -->\n<!-- cbl:bench-gpu:end -->\n")
    return page


def test_stopped_runs_travel_back_in_chunks_that_the_next_call_resumes_from(tmp_path, monkeypatch):
    runs, out, kit = tmp_path / "runs", tmp_path / "out", tmp_path / "kit"
    stopped = runs / "table2" / "cifar10_lt-if100-resnet32-softmax-b0-s0-12345678"
    (stopped / "checkpoints").mkdir(parents=True)
    (stopped / "config.yaml").write_text("seed: 0\n")
    (stopped / "checkpoints" / "epoch_0007.pt").write_bytes(os.urandom(3000))
    out.mkdir()
    monkeypatch.setattr(device_kit, "MAX_OUT_FILE", 1000)  # force several chunks
    packed = device_kit.pack_results(runs, out, env=dict(os.environ))
    assert packed["stopped"] == [stopped.name] and packed["resume_chunks"] >= 3 and not packed["finished"]
    (out / "kit.json").write_text(json.dumps({"steps": {}}))
    assert device_kit.main(["--kit", str(kit), "ingest", str(out), "--to", str(tmp_path / "got")]) == 0
    with tarfile.open(kit / "resume.tar") as tar:
        tar.extractall(tmp_path / "again", filter="data")
    again = tmp_path / "again" / "table2" / stopped.name / "checkpoints" / "epoch_0007.pt"
    assert again.read_bytes() == (stopped / "checkpoints" / "epoch_0007.pt").read_bytes()
