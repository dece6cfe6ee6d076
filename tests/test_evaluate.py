"""`cbl-evaluate` (cbl/evaluate.py, cbl/reporting/eval_report.py): a run's final checkpoint reproduces its metrics.json exactly;
the confusion matrix and predictions agree with the errors by independent counting; bad input is one line, exit 2."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from cbl.evaluate import main as evaluate_main
from cbl.evaluate import state_dict_mismatch
from cbl.evaluation.metrics import shot_accuracy
from cbl.reporting.runs import find_runs
from cbl.training.checkpoint import list_checkpoints
from cbl.training.run import train
from tests.data_fakes import write_cifar10
from tests.train_utils import QUIET, ROOT, compose_cfg, demo_overrides, read_metrics, tiny_cifar_overrides

PNG = b"\x89PNG\r\n\x1a\n"


def evaluated(out_dir) -> dict:
    return json.loads((out_dir / "evaluation.json").read_text())


#: the digits demo at lr 0.3 learns enough in 3 epochs that each epoch's errors differ and the predictions spread
#: over the classes: a wrong checkpoint or an unloaded model could not match by chance
DEMO = [*demo_overrides(epochs=3), *QUIET, "optim.lr=0.3"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("demo") / "run"
    train(compose_cfg(*DEMO), run_dir)
    return run_dir


def history(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_the_final_checkpoint_reproduces_metrics_json_and_the_files_agree(demo_run, capsys):
    final = read_metrics(demo_run)
    assert len({r["top1_err"] for r in history(demo_run)}) == 3  # the epochs are told apart
    assert evaluate_main([str(demo_run)]) == 0
    out = demo_run / "eval" / "epoch_0003"
    ev = evaluated(out)
    for key in ("top1_err", "top5_err", "per_class_acc", "shot_acc", "samples_per_class"):
        assert ev[key] == final[key], key  # exactly: the same batches through the same model on the same device
    assert ev["epoch"] == 3 and ev["matches_recorded"] is True and ev["same_data_as_training"] is True
    assert ev["shot_acc"] == shot_accuracy(final["per_class_acc"], final["samples_per_class"])
    assert "top-1 error" in capsys.readouterr().out

    # independent counts: the predictions give the errors, the confusion matrix's rows the test labels and its
    # diagonal the per-class accuracy
    pred = np.load(out / "predictions.npz")
    labels, predicted = pred["labels"], pred["logits"].argmax(1)  # cbl/training/predictions.py's format
    assert len(labels) == ev["n"] == 500 and len(np.unique(predicted)) >= 3
    assert 100.0 * float(np.mean(labels != predicted)) == pytest.approx(final["top1_err"])
    confusion = np.load(out / "confusion.npy")
    assert confusion.sum(axis=1).tolist() == np.bincount(labels, minlength=10).tolist() == [50] * 10
    assert (100.0 * np.diag(confusion) / confusion.sum(axis=1)).tolist() == pytest.approx(final["per_class_acc"])
    assert confusion.tolist() == [[int(np.sum((labels == t) & (predicted == p))) for p in range(10)] for t in range(10)]
    lines = (out / "confusion.csv").read_text().splitlines()
    assert lines[0].split(",")[1:] == ev["class_names"] and len(lines) == 11
    assert [[int(v) for v in line.split(",")[1:]] for line in lines[1:]] == confusion.tolist()
    for png in ("confusion.png", "per_class_accuracy.png"):
        assert (out / png).read_bytes().startswith(PNG) and (out / png).stat().st_size > 5000
    # the eval/ folder is not mistaken for a run by the tables and sweep summaries
    assert [r.path for r in find_runs(demo_run)] == [demo_run]


def test_resnet32_on_cifar_files_that_have_moved_since(tmp_path, capsys):
    data = tmp_path / "data"
    *_, y_test, names = write_cifar10(data, per_class_train=12, per_class_test=5)
    run_dir = tmp_path / "run"
    train(compose_cfg(*tiny_cifar_overrides(data), *QUIET, "loss=focal", "loss.beta=0.9", "loss.gamma=1.0"), run_dir)
    final = read_metrics(run_dir)
    moved = tmp_path / "moved"
    shutil.move(data, moved)  # a runtime key says where the data is now
    assert evaluate_main([str(run_dir), f"dataset.root={moved}"]) == 0
    ev = evaluated(run_dir / "eval" / "epoch_0002")
    assert (ev["top1_err"], ev["top5_err"], ev["per_class_acc"]) == (final["top1_err"], final["top5_err"], final["per_class_acc"])
    assert ev["same_data_as_training"] is True and ev["overrides"] == [f"dataset.root={moved}"]
    assert ev["class_names"] == names and ev["n"] == len(y_test) == 50
    assert np.load(run_dir / "eval" / "epoch_0002" / "confusion.npy").sum(axis=1).tolist() == [5] * 10


def test_a_checkpoint_file_outside_its_run_is_evaluated_with_the_config_it_holds(demo_run, tmp_path):
    loose = tmp_path / "shared" / "model.pt"
    loose.parent.mkdir()
    shutil.copy(list_checkpoints(demo_run)[0][1], loose)
    assert evaluate_main([str(loose)]) == 0
    ev, final = evaluated(tmp_path / "shared" / "eval" / "model"), read_metrics(demo_run)
    assert ev["run_dir"] is None and ev["epoch"] == 3
    assert (ev["top1_err"], ev["per_class_acc"]) == (final["top1_err"], final["per_class_acc"])


def test_an_older_checkpoint_and_out(demo_run, tmp_path):
    epoch, older = list_checkpoints(demo_run)[-1]
    assert evaluate_main([str(demo_run), "--checkpoint", str(older), "--out", str(tmp_path / "e")]) == 0
    ev, recorded = evaluated(tmp_path / "e"), history(demo_run)[epoch - 1]
    assert ev["epoch"] == epoch < 3 and (ev["top1_err"], ev["top5_err"]) == (recorded["top1_err"], recorded["top5_err"])
    assert ev["top1_err"] != read_metrics(demo_run)["top1_err"]


def corrupt(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def fewer_classes(src, dst):
    state = torch.load(src, weights_only=True)
    state["model"]["fc.weight"] = state["model"]["fc.weight"][:4].clone()
    state["model"]["fc.bias"] = state["model"]["fc.bias"][:4].clone()
    torch.save(state, dst)


def bad_inputs(run, tmp):
    """(arguments, a fragment of the one error line) for each kind of bad input, built in `tmp`."""
    (tmp / "empty_run" / "checkpoints").mkdir(parents=True)
    shutil.copy(run / "config.yaml", tmp / "empty_run" / "config.yaml")
    shutil.copytree(run, tmp / "corrupt_run")
    for _, path in list_checkpoints(tmp / "corrupt_run"):
        corrupt(path)
    newest = list_checkpoints(run)[0][1]
    fewer_classes(newest, tmp / "four_classes.pt")
    shape = tuple(torch.load(newest, weights_only=True)["model"]["fc.weight"].shape)
    (tmp / "notes.txt").write_text("not a checkpoint")
    (tmp / "loose").mkdir()
    torch.save({"epoch": 1, "model": {"w": torch.zeros(1)}}, tmp / "loose" / "no_config.pt")
    torch.save({"epoch": 1}, tmp / "loose" / "no_model.pt")
    return [
        ([str(tmp / "missing")], f"{tmp / 'missing'}: no such file or folder"),
        ([str(tmp)], f"{tmp} is neither a run folder (it has no config.yaml) nor a checkpoint file"),
        ([str(tmp / "notes.txt")], "is neither a run folder (with config.yaml) nor a checkpoint file (.pt)"),
        ([str(tmp / "empty_run")], f"{tmp / 'empty_run'} has no checkpoints (checkpoints/epoch_*.pt)"),
        ([str(tmp / "corrupt_run")], "none of the 2 checkpoint(s) in"),  # keep_checkpoints=2
        ([str(run), "--checkpoint", str(list_checkpoints(tmp / "corrupt_run")[0][1])], "is corrupt (CRC mismatch"),
        ([str(run), "--checkpoint", str(tmp / "four_classes.pt")],
         f"fc.weight is {(4, shape[1])} in the checkpoint, {shape} in the model"),
        ([str(run), "model.width=8"], "in the checkpoint, (8, 1, 3, 3) in the model"),
        ([str(tmp / "loose" / "no_config.pt")], "no_config.pt holds no config; evaluate it from its run folder"),
        ([str(tmp / "loose" / "no_model.pt")], "no_model.pt holds no model weights"),
        ([str(run), "loss.bta=0.9"], "loss.bta=0.9: the run's config has no key 'loss.bta'; loss has beta,"),
        ([str(run), "+seed2=1"], "+seed2=1: only key=value of the run's existing keys is allowed"),
        ([str(run), "model=resnet32"], "model=resnet32: model is a config group"),
        ([str(run), "device=gpu"], "device='gpu' is not allowed: choose auto, cpu, cuda"),
        ([str(run), "--checkpoint", "latest"], "--checkpoint latest: no such file; choose newest, best or a checkpoint file"),
    ]


def test_bad_input_is_one_line_with_exit_status_2(demo_run, tmp_path, capsys):
    cases = bad_inputs(demo_run, tmp_path)
    for args, fragment in cases:
        with pytest.raises(SystemExit) as exit_info:
            evaluate_main(args)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2, (args, err)
        (line,) = err.strip().splitlines()
        assert line.startswith("cbl-evaluate: error: ") and fragment in line, (args, line)


def test_the_command_line_fails_in_one_line_too(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cbl.evaluate", str(tmp_path / "nowhere")], capture_output=True,
                          text=True, cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == f"cbl-evaluate: error: {tmp_path / 'nowhere'}: no such file or folder; give a run folder " \
                          f"(with config.yaml) or a checkpoint file (.pt)\n"


def test_state_dict_mismatch_names_keys_and_shapes():
    model = {"a": torch.zeros(2, 3), "b": torch.zeros(4), "c": torch.zeros(1)}
    assert state_dict_mismatch(model, dict(model)) is None
    message = state_dict_mismatch(model, {"a": torch.zeros(5, 3), "b": torch.zeros(4), "d": torch.zeros(1)})
    assert message == ("a is (5, 3) in the checkpoint, (2, 3) in the model; 1 key(s) of the model not in the "
                       "checkpoint (c); 1 key(s) of the checkpoint not in the model (d)")


def test_many_classes_get_a_binned_png_and_no_dense_matrix(tmp_path, monkeypatch):
    from cbl.reporting import eval_report

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(250), 2)
    predicted = np.where(rng.random(500) < 0.5, labels, rng.integers(0, 250, 500))
    matrix, size = eval_report.binned_confusion(labels, predicted, 250, bins=100)
    assert size == 3 and matrix.shape == (84, 84)  # ceil(250 / 3) groups of 3 classes
    assert np.allclose(matrix.sum(axis=1), 1.0)
    hits = np.sum((labels // 3 == 0) & (predicted // 3 == 0))  # group 0: classes 0..2, 6 test images
    assert matrix[0, 0] == pytest.approx(hits / 6)

    monkeypatch.setattr(eval_report, "DENSE_MAX", 200)  # 250 classes: too many for a dense matrix now
    logits = np.eye(250, dtype=np.float32)[predicted]  # one-hot rows: the argmax is the prediction
    result = eval_report.EvalResult({"top1_err": 50.0}, labels, predicted, logits)
    files = eval_report.write_confusion(tmp_path, result, [f"c{i}" for i in range(250)])
    assert files["confusion_npy"] is None and files["confusion_csv"] is None and not (tmp_path / "confusion.npy").exists()
    assert (tmp_path / "confusion.png").read_bytes().startswith(PNG)
    saved = np.load(tmp_path / "predictions.npz")
    assert saved["labels"].tolist() == labels.tolist() and saved["logits"].argmax(1).tolist() == predicted.tolist()


def test_a_run_recorded_before_predictions_is_completed_from_its_final_checkpoint(tmp_path, capsys):
    from cbl.training.predictions import LAST, load_predictions

    with_files, old = tmp_path / "with_files", tmp_path / "old"
    train(compose_cfg(*DEMO), with_files)
    train(compose_cfg(*DEMO, "save_predictions=false"), old)
    recorded = read_metrics(old)
    for key in ("ece", "nll", "probability"):  # what a run written before these existed lacks
        recorded.pop(key)
    (old / "metrics.json").write_text(json.dumps(recorded))
    assert evaluate_main([str(old)]) == 0
    completed = load_predictions(old / LAST)
    want = load_predictions(with_files / LAST)
    assert np.array_equal(completed["logits"], want["logits"]) and completed["epoch"] == want["epoch"] == 3
    assert {k: read_metrics(old)[k] for k in ("ece", "nll", "probability", "top1_err")} == \
        {k: read_metrics(with_files)[k] for k in ("ece", "nll", "probability", "top1_err")}
    assert evaluated(old / "eval" / "epoch_0003")["ece"] == read_metrics(with_files)["ece"]

    before = (old / "metrics.json").read_bytes()
    assert evaluate_main([str(old), "--checkpoint", str(old / "checkpoints" / "epoch_0002.pt")]) == 0
    assert (old / "metrics.json").read_bytes() == before  # an earlier epoch never completes the run
    capsys.readouterr()


def test_no_arguments_asks_for_a_run_folder_or_checkpoint(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cbl.evaluate"], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == ("cbl-evaluate: error: a run folder or a checkpoint file (.pt) is required, e.g. cbl-evaluate "
                           "outputs/table2/<run name>\n")
