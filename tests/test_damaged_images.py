"""A damaged image (a truncated JPEG) in an image-folder or list-file dataset: the run stops with one line naming the
file and its class, in worker processes and without, records it in metrics.json, and resumes once the file is fixed;
cbl-check-data lists every damaged image beforehand and exits non-zero; `num_workers: auto` follows the CPUs."""

import pytest

from cbl.data.build import MAX_AUTO_WORKERS, worker_count
from tests.data_fakes import write_image_list, write_imagefolder, write_jpeg, write_listed_images
from tests.runfactory import run_script
from tests.train_utils import QUIET, read_metrics, run_cli

COLOURS = {f"c{k}": (60 * k, 120, 220 - 60 * k) for k in range(3)}


def short_run(dataset: list[str], workers: int) -> list[str]:
    return [*dataset, "dataset.input_size=16", f"dataset.num_workers={workers}", "model=small_cnn", "optim=demo",
            "optim.epochs=2", "optim.batch_size=4", "optim.reference_batch=4", "optim.milestones=[]", "optim.factors=[]",
            "eval_batch_size=4", *QUIET]


def truncate(path):
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 3])


@pytest.mark.parametrize("workers", [0, 1])
def test_an_imagefolder_run_stops_on_a_damaged_image_with_one_line_and_resumes_once_it_is_fixed(tmp_path, workers):
    data = tmp_path / "data"
    write_imagefolder(data, "train", {c: 4 for c in COLOURS}, COLOURS)
    write_imagefolder(data, "val", {c: 2 for c in COLOURS}, COLOURS)
    bad = data / "train" / "c1" / "c1_2.JPEG"
    truncate(bad)
    args = [*short_run(["dataset=imagefolder", f"dataset.root={data}"], workers), f"hydra.run.dir={tmp_path / 'run'}"]
    failed = run_cli(args, cwd=tmp_path)
    assert failed.returncode == 2
    (line,) = failed.stderr.strip().splitlines()
    assert line.startswith(f"error: damaged image {bad} (class 1 c1): OSError: ") and "cbl-check-data" in line
    recorded = read_metrics(tmp_path / "run")
    assert recorded["status"] == "failed" and recorded["error"] == "DamagedImageError: " + line.removeprefix("error: ")
    write_jpeg(bad, COLOURS["c1"])  # fixed
    again = run_cli([*args, "resume=true"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert read_metrics(tmp_path / "run")["status"] == "finished"


def test_a_list_file_run_names_the_damaged_file_and_its_label(tmp_path):
    entries = write_listed_images(tmp_path, "img", {0: 3, 1: 2}, {0: (200, 10, 10), 1: (10, 200, 10)})
    write_image_list(tmp_path / "train.txt", entries)
    write_image_list(tmp_path / "val.txt", entries)
    (tmp_path / "img" / "class_1" / "1_0.jpg").write_bytes(b"not an image at all")
    args = short_run(["dataset=listfile", f"dataset.root={tmp_path}", "dataset.train_list=train.txt",
                      "dataset.val_list=val.txt"], workers=1)
    failed = run_cli([*args, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert failed.returncode == 2
    (line,) = failed.stderr.strip().splitlines()
    assert f"damaged image {tmp_path / 'img' / 'class_1' / '1_0.jpg'} (class 1): UnidentifiedImageError" in line


def test_check_data_lists_every_damaged_image_and_exits_non_zero(tmp_path):
    data = tmp_path / "data"
    write_imagefolder(data, "train", {c: 3 for c in COLOURS}, COLOURS)
    write_imagefolder(data, "val", {c: 1 for c in COLOURS}, COLOURS)
    damaged = [data / "train" / "c0" / "c0_1.JPEG", data / "val" / "c2" / "c2_0.JPEG"]
    for path in damaged:
        truncate(path)
    out = tmp_path / "damaged.txt"
    p = run_script("check_data", "dataset=imagefolder", f"dataset.root={data}", "--workers", "1", "--out", str(out))
    assert p.returncode == 1, p.stderr
    listed = out.read_text().splitlines()
    assert [line.split()[2] for line in listed] == [str(d) for d in damaged] and listed == p.stdout.splitlines()
    assert p.stderr.strip().splitlines()[-1] == f"check_data.py: 2 of 12 images of imagefolder are damaged, from {data}/"
    for path, colour in zip(damaged, (COLOURS["c0"], COLOURS["c2"])):
        write_jpeg(path, colour)
    fine = run_script("check_data", "dataset=imagefolder", f"dataset.root={data}", "--workers", "0")
    assert fine.returncode == 0 and "imagefolder: all 12 images decode" in fine.stdout


def test_check_data_bad_input_is_one_line_and_arrays_need_no_decoding(tmp_path):
    p = run_script("check_data", "dataset=nonesuch")
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0 and "check_data.py: error:" in p.stderr
    p = run_script("check_data", "dataset=imagefolder", f"dataset.root={tmp_path / 'none'}")
    assert p.returncode == 2 and "root folder" in p.stderr and "does not exist" in p.stderr
    p = run_script("check_data", "dataset=digits_lt")
    assert p.returncode == 0 and "no image files to decode" in p.stdout


def test_auto_workers_follow_the_cpus_and_the_processes_of_the_machine(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(12)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert worker_count("auto") == MAX_AUTO_WORKERS == 8 and worker_count(3) == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert worker_count("auto") == 3
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0}, raising=False)
    assert worker_count("auto") == 1
    for bad in (-1, "many", True):
        with pytest.raises(ValueError, match="num_workers=.* is not allowed: an integer >= 0 or auto"):
            worker_count(bad)
