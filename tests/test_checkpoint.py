"""Checkpoints: atomic writes, rotation, and detection of truncated or bit-flipped files."""

import logging
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from cbl.training.checkpoint import (CorruptCheckpointError, atomic_write_text, checkpoint_path, list_checkpoints,
                                     load_checkpoint, load_latest_checkpoint, save_checkpoint, verify_checkpoint)


def state(epoch: int) -> dict:
    torch.manual_seed(epoch)
    return {"epoch": epoch, "model": {"w": torch.randn(4096)}, "history": [{"epoch": epoch, "top1_err": 50.0}]}


def test_round_trip_and_rotation(tmp_path):
    for epoch in range(1, 5):
        save_checkpoint(state(epoch), tmp_path, epoch, keep=2)
    assert [e for e, _ in list_checkpoints(tmp_path)] == [4, 3]
    loaded = load_latest_checkpoint(tmp_path)
    assert loaded["epoch"] == 4
    torch.testing.assert_close(loaded["model"]["w"], state(4)["model"]["w"])
    assert not list((tmp_path / "checkpoints").glob(".*tmp*"))


def flip_byte(path, offset_from_middle=0):
    data = bytearray(path.read_bytes())
    data[len(data) // 2 + offset_from_middle] ^= 0xFF
    path.write_bytes(bytes(data))


def test_bit_flip_is_detected_although_torch_load_accepts_it(tmp_path):
    path = save_checkpoint(state(1), tmp_path, 1)
    flip_byte(path)
    torch.load(path, weights_only=True)  # loads silently wrong data: why we check CRCs
    with pytest.raises(CorruptCheckpointError, match="CRC mismatch"):
        verify_checkpoint(path)


@pytest.mark.parametrize("damage", ["truncate", "bitflip", "empty", "garbage"])
def test_falls_back_to_the_previous_good_checkpoint(tmp_path, caplog, damage):
    save_checkpoint(state(1), tmp_path, 1)
    newest = save_checkpoint(state(2), tmp_path, 2)
    data = newest.read_bytes()
    if damage == "truncate":
        newest.write_bytes(data[: len(data) // 3])
    elif damage == "bitflip":
        flip_byte(newest)
    elif damage == "empty":
        newest.write_bytes(b"")
    else:
        newest.write_bytes(b"not a checkpoint at all" * 10)
    with caplog.at_level(logging.WARNING):
        loaded = load_latest_checkpoint(tmp_path)
    assert loaded["epoch"] == 1
    assert str(newest) in caplog.text and "falling back" in caplog.text


def test_no_valid_checkpoint_gives_none(tmp_path):
    assert load_latest_checkpoint(tmp_path) is None
    path = save_checkpoint(state(1), tmp_path, 1)
    path.write_bytes(b"")
    assert load_latest_checkpoint(tmp_path) is None


def test_non_cbl_archive_is_rejected(tmp_path):
    path = checkpoint_path(tmp_path, 3)
    path.parent.mkdir(parents=True)
    torch.save({"just": torch.zeros(2)}, path)
    with pytest.raises(CorruptCheckpointError, match="not a cbl checkpoint"):
        load_checkpoint(path)


def test_keep_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="keep must be >= 1; got 0"):
        save_checkpoint(state(1), tmp_path, 1, keep=0)


def test_sigkill_during_write_leaves_the_old_checkpoint_intact(tmp_path):
    # A child process writes a large checkpoint and is killed mid-write; the final name never holds a
    # partial file, and a later save cleans the orphaned temporary file.
    save_checkpoint(state(1), tmp_path, 1)
    script = textwrap.dedent(f"""
        import os, signal, torch
        import cbl.training.checkpoint as ck
        real_save = torch.save
        def save_then_die(obj, f):
            f.write(b"partial bytes")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        ck.torch.save = save_then_die
        ck.save_checkpoint({{"epoch": 2}}, {str(tmp_path)!r}, 2)
    """)
    proc = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.returncode == -signal.SIGKILL
    assert [e for e, _ in list_checkpoints(tmp_path)] == [1]
    assert list((tmp_path / "checkpoints").glob(".epoch_0002.pt.tmp-*"))  # the orphan
    save_checkpoint(state(3), tmp_path, 3)
    assert not list((tmp_path / "checkpoints").glob(".*tmp*"))
    assert load_latest_checkpoint(tmp_path)["epoch"] == 3


def test_atomic_write_text_replaces_whole_file(tmp_path):
    target = tmp_path / "metrics.json"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_failed_write_leaves_no_temporary_file(tmp_path):
    from cbl.training.checkpoint import atomic_write

    def boom(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(tmp_path / "x.bin", boom)
    assert list(tmp_path.iterdir()) == []
