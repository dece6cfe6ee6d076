"""cbl/data/lossy_copy.py and scripts/lossy_copy.py: the re-encoding error finds the settings a copy was made with;
`make` writes, from a fake official archive, an .npz cbl reads, grouped by class, every image compressed once; the
committed measurement is what docs/lossy_copy.md shows."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from cbl.commands.lossy_copy import render_measurement
from cbl.data.cifar import read_cifar_npz
from cbl.data.lossy_copy import jpeg_round_trip, reencoding_errors
from tests.data_fakes import write_cifar10
from tests.runfactory import run_script

ROOT = Path(__file__).resolve().parents[1]


def smooth_images(n: int, seed: int = 0) -> np.ndarray:
    """Images with structure at several scales (gradients plus noise), so that JPEG settings matter."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    base = np.stack([np.sin(3 * xx + rng.uniform(0, 6)) * np.cos(2 * yy + rng.uniform(0, 6)) for _ in range(3 * n)])
    noise = rng.normal(0, 0.15, base.shape)
    x = (127.5 + 100 * (base + noise)).clip(0, 255).astype(np.uint8)
    return x.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1).copy()


@pytest.mark.parametrize("quality,subsampling", [(75, "4:2:0"), (60, "4:4:4")])
def test_the_re_encoding_error_is_lowest_at_the_settings_a_copy_was_made_with(quality, subsampling):
    copy = jpeg_round_trip(smooth_images(40), quality, subsampling)
    errors = reencoding_errors(copy, qualities=(55, 60, 65, 70, 75, 80), subsamplings=("4:4:4", "4:2:0"))
    assert min(errors, key=errors.get) == (quality, subsampling)
    others = sorted(v for k, v in errors.items() if k != (quality, subsampling))
    assert errors[quality, subsampling] < 0.5 * others[0]  # a sharp minimum, not a tie


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ValueError, match="subsampling must be one of 4:4:4, 4:2:2, 4:2:0; got '4:1:1'"):
        jpeg_round_trip(smooth_images(1), 75, "4:1:1")
    with pytest.raises(ValueError, match="quality must be an integer in 1..95"):
        jpeg_round_trip(smooth_images(1), 100)


def test_make_writes_a_copy_cbl_reads_and_measure_finds_its_settings(tmp_path):
    x_train, y_train, x_test, y_test, names = write_cifar10(tmp_path / "data", per_class_train=6, per_class_test=2)
    out = tmp_path / "copy.npz"
    made = run_script("lossy_copy", "make", "--root", str(tmp_path / "data"), "--out", str(out), "--quality", "70")
    assert made.returncode == 0, made.stderr
    got_x, got_y, got_xt, got_yt, got_names = read_cifar_npz(out, 10)
    assert got_names == names and got_y.tolist() == sorted(y_train.tolist()) and got_yt.tolist() == sorted(y_test.tolist())
    order = np.argsort(y_train, kind="stable")  # grouped by class, the official order within a class
    assert np.array_equal(got_x, jpeg_round_trip(x_train[order], 70, "4:2:0"))
    assert not np.array_equal(got_x, x_train[order])

    readme = tmp_path / "page.md"
    readme.write_text("x\n<!-- cbl:jpeg-quality:start -->\n<!-- cbl:jpeg-quality:end -->\n")
    measured = run_script("lossy_copy", "measure", "--npz", str(out), "--per-class", "6", "--qualities", "65", "70",
                          "75", "--json", str(tmp_path / "m.json"), "--readme", str(readme))
    assert measured.returncode == 0, measured.stderr
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["minimum"]["quality"] == 70  # (the fake archive's noise images tell subsamplings apart poorly)
    assert render_measurement(result) in readme.read_text()


def test_a_missing_copy_is_one_line(tmp_path):
    p = run_script("lossy_copy", "measure", "--npz", str(tmp_path / "none.npz"))
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0
    assert "lossy_copy.py: error: CIFAR .npz not found at" in p.stderr


def test_the_committed_measurement_is_what_the_docs_show():
    result = json.loads((ROOT / "benchmarks" / "jpeg_quality.json").read_text())
    section = re.search(r"<!-- cbl:jpeg-quality:start -->\n(.*?)\n<!-- cbl:jpeg-quality:end -->",
                        (ROOT / "docs" / "lossy_copy.md").read_text(), re.S)[1]
    assert section == render_measurement(result)
    assert (result["minimum"]["quality"], result["minimum"]["subsampling"]) == (75, "4:2:0")
