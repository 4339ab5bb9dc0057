"""Checkpoint files survive a crash or a full disk: writes are atomic, and a damaged file is one error naming
--fresh, never a traceback on every --resume."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest

from labelleak.errors import DataFileError
from labelleak.pipeline.checkpoint import Checkpoint


def test_a_full_disk_while_saving_leaves_the_old_files_whole(tmp_path, monkeypatch):
    ckpt = Checkpoint(tmp_path, {"seed": 0}, resume=False)
    ckpt.save("gap", {"auc": 0.6}, {"scores": np.arange(3.0)})
    real_replace = os.replace

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError):
        ckpt.save("gap", {"auc": 0.9}, {"scores": np.zeros(3)})
    with pytest.raises(OSError):
        Checkpoint(tmp_path, {"seed": 0}, resume=True)  # rewriting config.json fails too
    monkeypatch.setattr(os, "replace", real_replace)
    entry, arrays = Checkpoint(tmp_path, {"seed": 0}, resume=True).load("gap")
    assert entry == {"auc": 0.6} and arrays["scores"].tolist() == [0.0, 1.0, 2.0]
    assert json.loads((tmp_path / "checkpoint" / "config.json").read_text())["config"] == {"seed": 0}


def test_a_damaged_config_is_one_error_naming_fresh(tmp_path):
    Checkpoint(tmp_path, {"seed": 0}, resume=False)
    (tmp_path / "checkpoint" / "config.json").write_text("")  # what a full disk left before writes were atomic
    with pytest.raises(DataFileError, match=r"config.json: the checkpoint is damaged .* rerun with --fresh"):
        Checkpoint(tmp_path, {"seed": 0}, resume=True)
    Checkpoint(tmp_path, {"seed": 0}, resume=False, fresh=True)  # the way out works


def test_a_torn_attack_entry_is_run_again_not_a_crash(tmp_path):
    ckpt = Checkpoint(tmp_path, {"seed": 0}, resume=False)
    ckpt.save("gap", {"auc": 0.6}, {"scores": np.arange(3.0)})
    (tmp_path / "checkpoint" / "done" / "gap.npz").write_bytes(b"PK\x03\x04torn")
    assert ckpt.load("gap") is None
