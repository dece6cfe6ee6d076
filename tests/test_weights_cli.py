"""cbl-weights (cbl/losses/weights.py): the printed effective numbers and weights against the float64 reference
formulas of tests/reference.py, the CIFAR counts against the authors' profile, and bad input (one line, exit 2)."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cbl.losses import weights as cli
from tests import reference as ref
from tests.data_fakes import write_imagefolder, write_inat


ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BETAS = [0.0, 0.9, 0.99, 0.999, 0.9999]


def run(capsys, *argv: str) -> str:
    assert cli.main(list(argv)) == 0
    return capsys.readouterr().out


def parse(out: str, title: str) -> tuple[list[float], list[int], np.ndarray, dict[str, list[str]]]:
    """(betas, counts, values [C, betas], footer label -> values) of the table headed `title`."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    head = lines[start + 1].split()
    assert head[:2] == ["class", "n"]
    betas = [float(h.removeprefix("beta=")) for h in head[2:]]
    counts, values, footer = [], [], {}
    for line in lines[start + 2:]:
        if not line.strip():
            break
        tokens = line.split()
        if tokens[0].isdigit() and int(tokens[0]) == len(counts):
            counts.append(int(tokens[1]))
            values.append([float(v) for v in tokens[2:]])
        else:
            footer[" ".join(tokens[:-len(betas)])] = tokens[-len(betas):]
    return betas, counts, np.array(values), footer


def check_against_reference(out: str, counts: list[int], betas: list[float]) -> None:
    got_betas, got_counts, effective, footer = parse(out, "effective number E_n")
    assert got_betas == betas and got_counts == counts
    caps = [1.0 / (1.0 - b) for b in betas]
    for j, beta in enumerate(betas):
        np.testing.assert_allclose(effective[:, j], ref.effective_numbers(counts, beta), rtol=6e-6)  # printed %.6g
        at_cap = sum(1 for n in counts if beta**n <= 0.01)  # E_n >= 0.99 / (1 - beta)
        assert int(footer["classes at the cap (1%)"][j]) == at_cap
        assert float(footer["cap 1/(1-beta)"][j]) == pytest.approx(caps[j], rel=6e-6)
    got_betas, got_counts, weights, footer = parse(out, f"class-balanced weight w_i (sum {len(counts)})")
    assert got_betas == betas and got_counts == counts
    for j, beta in enumerate(betas):
        w = ref.cb_weights(counts, beta)
        np.testing.assert_allclose(weights[:, j], w, atol=5.1e-5)  # printed %.4f
        assert float(footer["largest / smallest"][j]) == pytest.approx(w.max() / w.min(), rel=6e-4)  # %.4g


@pytest.mark.parametrize("counts", [[5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50], [1, 2, 7, 40, 300, 123456],
                                    [3], [10, 10, 10]])
def test_counts_print_the_reference_numbers_over_the_default_grid(capsys, counts):
    out = run(capsys, "--counts", *map(str, counts))
    assert out.startswith(f"--counts: {len(counts)} classes, {sum(counts)} samples")
    check_against_reference(out, counts, DEFAULT_BETAS)


def test_beta_chooses_the_columns(capsys):
    out = run(capsys, "--counts", "100", "10", "1", "--beta", "0.5", "0.99999", "0")
    check_against_reference(out, [100, 10, 1], [0.5, 0.99999, 0.0])


@pytest.mark.parametrize("dataset,n_max,classes,imbalance_factor", [("cifar10_lt", 5000, 10, 100.0),
                                                                    ("cifar10_lt", 5000, 10, 10.0),
                                                                    ("cifar100_lt", 500, 100, 200.0)])
def test_dataset_counts_follow_the_authors_long_tail_profile(capsys, dataset, n_max, classes, imbalance_factor):
    out = run(capsys, "--dataset", dataset, "--imbalance-factor", f"{imbalance_factor:g}")
    counts = ref.cifar_lt_counts(n_max, classes, imbalance_factor)
    assert out.startswith(f"{dataset}, imbalance factor {imbalance_factor:g}: {classes} classes, {sum(counts)} samples")
    check_against_reference(out, counts, DEFAULT_BETAS)


def test_the_table_shows_why_small_beta_weights_every_cifar_class_alike(capsys):
    out = run(capsys, "--dataset", "cifar10_lt")  # imbalance factor 100 by default: 12406 images, as in the paper
    assert out.startswith("cifar10_lt, imbalance factor 100: 10 classes, 12406 samples")
    _, _, weights, footer = parse(out, "class-balanced weight w_i (sum 10)")
    assert np.abs(weights[:, 1] - 1.0).max() < 0.01  # beta 0.9: E_n ~ 10 for every class from 50 to 5000 images
    assert float(footer["largest / smallest"][4]) > 50  # beta 0.9999: close to inverse frequency (100)
    _, _, _, footer = parse(out, "effective number E_n")
    assert footer["classes at the cap (1%)"] == ["10", "10", "5", "1", "0"]


@pytest.mark.parametrize("argv,message", [
    ([], "one of the arguments --counts --dataset --list is required"),
    (["--counts", "5", "--dataset", "cifar10_lt"], "argument --dataset: not allowed with argument --counts"),
    (["--counts", "5", "0"], r"every class needs a count >= 1 \(a class without samples has no effective number\); "
                             r"class 1 has 0 \(--counts\)"),
    (["--counts", "5", "-2"], "class 1 has -2"),
    (["--counts", "5", "x"], "argument --counts: invalid int value: 'x'"),
    (["--counts", "5", "--beta", "1"], r"beta must be a number in \[0, 1\); got 1.0"),
    (["--counts", "5", "--beta", "0.9", "-0.5"], r"beta must be a number in \[0, 1\); got -0.5"),
    (["--dataset", "cifar1000"], "argument --dataset: invalid choice: 'cifar1000'"),
    (["--dataset", "cifar10_lt", "--imbalance-factor", "0.5"], "--imbalance-factor must be a finite number >= 1; got 0.5"),
    (["--dataset", "cifar10_lt", "--imbalance-factor", "nan"], "--imbalance-factor must be a finite number >= 1; got nan"),
    (["--counts", "5", "3", "--imbalance-factor", "10"], "--imbalance-factor applies only with --dataset"),
    (["--counts", "5", "3", "--num-classes", "2"], "--num-classes applies only with --list"),
    (["--list", "/nonexistent/train.txt"], "multi-label image list /nonexistent/train.txt not found"),
    (["--dataset", "cifar100_lt", "--imbalance-factor", "1000"], r"class 90 has 0 \(cifar100_lt, imbalance factor 1000\)"),
    (["--dataset", "inat2018", "--root", "/nonexistent/inat"], "iNaturalist 2018 root folder /nonexistent/inat does not exist"),
    (["--dataset", "ilsvrc2012", "--root", "/nonexistent/in"], "ILSVRC 2012 train folder not found at /nonexistent/in/train"),
    (["--dataset", "cifar10_lt", "--root", "/x"], "--root applies only with --dataset inat2017 / inat2018 / ilsvrc2012"),
    (["--dataset", "inat2017", "--imbalance-factor", "10"], "--imbalance-factor applies only to the CIFAR datasets"),
])
def test_bad_input_is_one_line_and_exit_status_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cbl-weights: error: ")
    assert re.search(message, lines[0]), lines[0]


def test_list_counts_the_images_of_each_label_single_and_multi_label(tmp_path, capsys):
    single = tmp_path / "single.txt"
    single.write_text("a.png 0\nb.png 2\nc.png 0\nd.png 1\n")
    assert cli.list_counts(str(single), None) == [2, 1, 1]
    multi = tmp_path / "multi.txt"
    multi.write_text("a.png 0,2\nb.png 2\nc.png 0,1,2\n")
    assert cli.list_counts(str(multi), 4) == [2, 1, 3, 0]  # a fourth class without images: its count is 0
    assert cli.main(["--list", str(multi), "--beta", "0.9"]) == 0
    check_against_reference(capsys.readouterr().out, [2, 1, 3], [0.9])
    with pytest.raises(SystemExit):
        cli.main(["--list", str(multi), "--num-classes", "4"])  # the zero count: one line, as for --counts
    assert "class 3 has 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--num-classes 2 is too small for .*multi.txt: it has label 2"):
        cli.list_counts(str(multi), 2)


@pytest.mark.parametrize("year", [2017, 2018])
def test_inaturalist_counts_the_train_annotations_in_sorted_category_id_order(tmp_path, capsys, year):
    # category ids unsorted and with gaps, as the label space allows: labels follow the sorted ids 2, 5, 9, 40
    train = {9: 1, 40: 3, 2: 4, 5: 2}
    write_inat(tmp_path, year, train, {9: 1, 2: 1, 5: 1, 40: 1}, {k: (k, k, k) for k in train})
    out = run(capsys, "--dataset", f"inat{year}", "--root", str(tmp_path), "--beta", "0.9", "0.999")
    counts = [train[k] for k in sorted(train)]
    assert out.startswith(f"inat{year} train split under {tmp_path}: 4 classes, 10 samples")
    check_against_reference(out, counts, [0.9, 0.999])


def test_ilsvrc2012_counts_the_images_of_each_train_class_folder(tmp_path, capsys, monkeypatch):
    per_class = {"n01440764": 3, "n01443537": 1, "n01484850": 2}
    write_imagefolder(tmp_path / "ilsvrc2012", "train", per_class, {w: (9, 9, 9) for w in per_class})
    monkeypatch.setenv("CBL_DATA_DIR", str(tmp_path))  # the default root, as in configs/dataset/ilsvrc2012.yaml
    out = run(capsys, "--dataset", "ilsvrc2012")
    assert out.startswith(f"ilsvrc2012 train split under {tmp_path / 'ilsvrc2012'}: 3 classes, 6 samples")
    check_against_reference(out, [3, 1, 2], DEFAULT_BETAS)


def test_python_m_runs_the_command():
    done = subprocess.run([sys.executable, "-m", "cbl.losses.weights", "--counts", "10", "5", "1", "--beta", "0.9"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and done.stderr == ""
    check_against_reference(done.stdout, [10, 5, 1], [0.9])
    bad = subprocess.run([sys.executable, "-m", "cbl.losses.weights", "--counts", "0"], capture_output=True, text=True,
                         cwd=ROOT)
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.startswith("cbl-weights: error: ")
    assert len(bad.stderr.splitlines()) == 1
