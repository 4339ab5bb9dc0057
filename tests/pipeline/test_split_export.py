"""``labelleak split export``: a split's candidates as files, and a remote audit of the served target on them
measures what the local audit measured (loopback only)."""

from __future__ import annotations

import json

import numpy as np
from _loopback import Server
from typer.testing import CliRunner

from labelleak.cli import app
from labelleak.oracle.files import load_target
from labelleak.pipeline import make_config, run_audit
from labelleak.serve import create_app

runner = CliRunner()
SIZES = ["--train-size", "60", "--eval-size", "60", "--shadow-size", "60", "--epochs", "3", "--seed", "1"]


def test_exported_candidates_are_the_split_and_a_remote_audit_on_them_agrees(tmp_path):
    cache = str(tmp_path / "cache")
    result = runner.invoke(app, ["split", "export", "--out", str(tmp_path / "split"), "--cache-dir", cache, *SIZES])
    assert result.exit_code == 0, result.output
    assert "labelleak serve --model" in result.output and "--members" in result.output
    about = json.loads((tmp_path / "split" / "split.json").read_text())
    members, nonmembers = (np.load(tmp_path / "split" / f"{n}.npz") for n in ("members", "nonmembers"))
    assert len(members["y"]) == len(nonmembers["y"]) == 60 and members["x"].shape[1:] == tuple(about["input_shape"])

    local_cfg = make_config(attacks=["gap"], train_size=60, eval_size=60, shadow_size=60, epochs=3, seed=1,
                            cache_dir=cache, out=str(tmp_path / "local"), progress=False, checkpoint=False)  # fmt: skip
    local = run_audit(local_cfg)
    target = load_target(about["target"]["model_dir"])
    app_ = create_app(target.predict_labels, input_shape=target.input_shape, n_classes=target.n_classes)
    with Server(app_) as server:
        files = {n: str(tmp_path / "split" / f"{n}.npz") for n in ("members", "nonmembers", "shadow")}
        remote_cfg = make_config(target=server.url, **files, attacks=["gap"], epochs=3, cache_dir=cache,
                                 out=str(tmp_path / "remote"), progress=False, checkpoint=False)  # fmt: skip
        remote = run_audit(remote_cfg)
    assert remote["attacks"]["gap"]["auc"] == local["attacks"]["gap"]["auc"]
    # every member candidate is a training row here (eval size = train size): the served model's accuracy on them
    # is the target's training accuracy
    assert remote["utility"]["members_accuracy"] == local["target"]["train_accuracy"]
