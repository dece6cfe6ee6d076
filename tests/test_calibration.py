"""cbl.evaluation.calibration (ECE over 15 bins, NLL) against tests/reference.py's one-image-at-a-time float64 computation, and the
saved predictions (cbl.training.predictions) of a real run: metrics.json's top-1 error, ECE and NLL recomputed from the file."""

import json

import numpy as np
import pytest
import torch

from cbl.evaluation.calibration import CalibrationAccumulator, bin_index, calibration, log_probabilities, reliability
from cbl.training.predictions import LAST, PredictionsError, load_predictions, save_predictions, shard_positions
from cbl.training.run import train
from tests import reference
from tests.train_utils import QUIET, compose_cfg, demo_overrides, read_history, read_metrics


def random_predictions(n=700, c=10, seed=0, spread=3.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    logits = rng.normal(0, spread, (n, c))
    logits[np.arange(n), labels] += rng.uniform(0, 2 * spread, n)  # mostly right, with a spread of confidences
    return logits.astype(np.float32), labels


@pytest.mark.parametrize("probability,scale", [("softmax", 1.0), ("sigmoid", 1.0), ("softmax", 30.0)])
def test_ece_and_nll_equal_the_reference_and_do_not_depend_on_the_batching(probability, scale):
    logits, labels = random_predictions(spread=0.1 if scale > 1 else 3.0)
    want_ece, want_nll = reference.ece_nll(logits, labels, probability, scale=scale)
    got = calibration(logits, labels, probability, scale)
    assert got["ece"] == pytest.approx(want_ece, abs=1e-9) and got["nll"] == pytest.approx(want_nll, rel=1e-12)
    acc = CalibrationAccumulator(probability, scale)
    for part in np.array_split(np.arange(len(labels)), 7):  # batches of an evaluation pass
        acc.update(torch.from_numpy(logits[part]), torch.from_numpy(labels[part]))
    assert acc.compute() == pytest.approx(got, rel=1e-12)
    assert 1.0 < got["ece"] < 40.0  # neither trivially calibrated nor degenerate: the test can fail


def test_bins_are_right_closed_and_known_cases_give_known_values():
    edges = torch.tensor([1 / 15, 1 / 15 + 1e-9, 0.5, 1.0, 1e-4], dtype=torch.float64)
    assert bin_index(edges).tolist() == [0, 1, 7, 14, 0]
    # two images, both predicted with confidence 0.9 (softmax of [log 9, 0]); one right, one wrong: |0.5 - 0.9| = 40 %
    z = torch.tensor([[np.log(9.0), 0.0], [np.log(9.0), 0.0]])
    out = calibration(z, torch.tensor([0, 1]), "softmax")
    assert out["ece"] == pytest.approx(40.0) and out["nll"] == pytest.approx(-(np.log(0.9) + np.log(0.1)) / 2)
    diagram = reliability(z, torch.tensor([0, 1]), "softmax")
    assert diagram["count"][13] == 2 and diagram["accuracy"][13] == 0.5 and diagram["confidence"][13] == pytest.approx(0.9)
    assert diagram["accuracy"][0] is None and len(diagram["edges"]) == 16


def test_the_sigmoid_probabilities_keep_the_argmax_and_stay_finite_for_huge_logits():
    z = torch.tensor([[1000.0, -1000.0, 3.0], [-1000.0, -999.0, -1001.0]])
    log_p = log_probabilities(z, "sigmoid")
    assert torch.isfinite(log_p).all() and log_p.argmax(1).tolist() == z.argmax(1).tolist()
    assert torch.allclose(log_p.exp().sum(1), torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="probability must be one of softmax, sigmoid; got 'tempered'"):
        log_probabilities(z, "tempered")


def test_each_rank_s_positions_partition_the_test_set_in_batch_order():
    for n, batch, world in [(10, 4, 2), (103, 10, 3), (5, 100, 4)]:
        parts = [shard_positions(n, batch, r, world) for r in range(world)]
        assert sorted(np.concatenate(parts).tolist()) == list(range(n))
    # global batches of 4 split over 2 ranks: rank 1 takes the odd positions of each batch
    assert shard_positions(10, 4, 1, 2).tolist() == [1, 3, 5, 7, 9] and shard_positions(7, 3, 0, 1).tolist() == list(range(7))
    assert shard_positions(10, 4, 1, 3).tolist() == [1, 5, 9]


def test_a_predictions_file_round_trips_and_a_damaged_one_is_one_line(tmp_path):
    logits, labels = random_predictions(n=20)
    save_predictions(tmp_path / "p.npz", logits, labels, epoch=7, probability="sigmoid")
    got = load_predictions(tmp_path / "p.npz")
    assert np.array_equal(got["logits"], logits) and np.array_equal(got["labels"], labels)
    assert (got["epoch"], got["probability"], got["logit_scale"]) == (7, "sigmoid", 1.0)
    (tmp_path / "bad.npz").write_bytes((tmp_path / "p.npz").read_bytes()[:100])
    for name, message in (("bad.npz", "cannot be read as a predictions file"), ("none.npz", "no such predictions file")):
        with pytest.raises(PredictionsError) as e:
            load_predictions(tmp_path / name)
        assert message in str(e.value) and name in str(e.value) and "\n" not in str(e.value)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(PredictionsError, match="lacks logits, labels, epoch, probability, logit_scale"):
        load_predictions(tmp_path / "other.npz")


@pytest.mark.parametrize("loss", ["softmax", "focal"])
def test_a_run_saves_its_last_predictions_and_metrics_json_agrees_with_them(tmp_path, loss):
    run_dir = tmp_path / "run"
    train(compose_cfg(*demo_overrides(epochs=3), *QUIET, "optim.lr=0.3", f"loss={loss}", "keep_best=true"), run_dir)
    final, saved = read_metrics(run_dir), load_predictions(run_dir / LAST)
    probability = "sigmoid" if loss == "focal" else "softmax"
    assert saved["epoch"] == 3 and saved["probability"] == final["probability"] == probability
    assert saved["logits"].shape == (500, 10) and np.bincount(saved["labels"]).tolist() == [50] * 10
    wrong = saved["logits"].argmax(1) != saved["labels"]
    assert 100.0 * wrong.mean() == pytest.approx(final["top1_err"], abs=1e-9)
    want_ece, want_nll = reference.ece_nll(saved["logits"], saved["labels"], probability)
    assert final["ece"] == pytest.approx(want_ece, abs=1e-6) and final["nll"] == pytest.approx(want_nll, rel=1e-6)
    history = read_history(run_dir)
    assert history[-1]["ece"] == final["ece"] and all("nll" in r for r in history)
    best = load_predictions(run_dir / "predictions_best.npz")  # keep_best: the best epoch's predictions
    assert best["epoch"] == final["best_epoch"]
    assert 100.0 * (best["logits"].argmax(1) != best["labels"]).mean() == pytest.approx(final["best_top1_err"], abs=1e-9)


def test_save_predictions_false_writes_none(tmp_path):
    train(compose_cfg(*demo_overrides(epochs=1), *QUIET, "save_predictions=false"), tmp_path / "run")
    assert not list((tmp_path / "run").glob("predictions*")) and "ece" in json.loads((tmp_path / "run" / "metrics.json").read_text())
