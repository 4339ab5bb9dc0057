"""DP-SGD tuning that is paid for: by default the tuning runs read no row of the target's training set (only rows
beyond the audit's four parts); tuning on the private data withholds the epsilon and says so everywhere."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from labelleak.defenses import matrix_row, parse_defense
from labelleak.errors import InvalidInputError
from labelleak.models import ModelSpec, TrainSettings, build_model, init_model
from labelleak.models.training import train_with_report, validation_size
from labelleak.pipeline import make_config
from labelleak.report.markdown import matrix_markdown

pytest.importorskip("opacus")


def test_by_default_no_row_of_the_targets_training_set_is_tuned_on(tmp_path, monkeypatch):
    private = importlib.import_module("labelleak.models.private")
    trained = importlib.import_module("labelleak.pipeline.setup.trained")
    tuned, calls = [], {}
    real_tune, real_train = private._tune, trained.train_or_load

    def spy_tune(model, x, y, *args, **kwargs):
        tuned.append(x.numpy().copy())
        return real_tune(model, x, y, *args, **kwargs)

    def spy_train(store, x, y, fingerprint, spec, settings, train_idx, test_idx, *, role, **kwargs):
        calls[role] = (np.asarray(train_idx), kwargs.get("validation_idx"), x)
        return real_train(store, x, y, fingerprint, spec, settings, train_idx, test_idx, role=role, **kwargs)

    monkeypatch.setattr(private, "_tune", spy_tune)
    monkeypatch.setattr(trained, "train_or_load", spy_train)
    cfg = make_config(
        dataset="digits", train_size=40, eval_size=20, epochs=2, attacks=["gap"], defense="dp=8", progress=False,
        out=str(tmp_path / "o"), cache_dir=str(tmp_path / "c"),
    )  # fmt: skip
    setup = trained.prepare_local(cfg)
    train_idx, val_idx, x = calls["target"]
    assert val_idx is not None and len(val_idx) == len(train_idx) == 40
    # the tuning rows are outside the training set, outside every candidate and the adversary's data
    assert not set(val_idx) & set(train_idx) and not set(val_idx) & set(setup.sample_index)
    assert setup.target["validation_rows"] == 40 and setup.target["dp_tuning"] == "outside"
    assert tuned and np.array_equal(tuned[0], x[val_idx])  # the target's tuning read exactly those rows
    assert setup.target["epsilon"] is not None and setup.target["epsilon"] <= 8.01
    # the adaptive adversary's recipe trains with the clipping norm and rate the target's tuning chose
    chosen = setup.adversary_defense.split("+")
    assert chosen[0] == "dp=8" and chosen[1].startswith("dp-clip=") and chosen[2].startswith("dp-lr=")
    plan = parse_defense(setup.adversary_defense)
    assert plan.train["dp_tune"] == "off" and plan.train["lr"] > 0 and plan.train["dp_max_grad_norm"] > 0


def test_tuning_on_private_data_is_flagged_and_its_epsilon_withheld():
    assert parse_defense("dp=8+dp-tune=private").train["dp_tune"] == "private"
    assert parse_defense("dp=8+dp-clip=1").train["dp_tune"] == "off"
    assert parse_defense("dp=8+dp-lr=0.003").train == {"dp_epsilon": 8.0, "lr": 0.003, "dp_tune": "off"}
    with pytest.raises(InvalidInputError, match="dp-lr sets DP-SGD's learning rate and needs dp= or dp-noise="):
        parse_defense("l2=0.01+dp-lr=0.1")
    settings = TrainSettings(epochs=2, dp_epsilon=8.0, dp_batch_size=16, dp_tune="private")
    assert validation_size(60, settings) == 0 and validation_size(60, TrainSettings(dp_epsilon=8.0)) == 60
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (60, 10)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    model = init_model(lambda: build_model(ModelSpec("mlp", (10,), 2, hidden=(16,))), 0)
    _, report = train_with_report(model, x, y, settings, n_classes=2, progress=False)
    assert report.epsilon is None  # no single number for a procedure whose tuning read the private rows
    assert report.dp["tuning_data"] == "private" and report.dp["epsilon_excludes_tuning"] is True
    assert report.dp["tuning_rows"] == 60 and 0 < report.dp["epsilon_final_run"] <= 8.01
    assert len(report.dp["tuning"]) == 4
    # the matrix row and its Markdown carry the flag
    results = {
        "target": {"train_accuracy": 1.0, "test_accuracy": 0.5, "epsilon": None, "dp_tuning": "private"},
        "attacks": {},
    }
    row = matrix_row("dp=8+dp-tune=private", results)
    assert row["dp_tuning"] == "private" and "(excl. tuning)" in matrix_markdown([{**row, "epsilon": 7.9}], [])
    with pytest.raises(InvalidInputError, match="dp_tune must be"):
        TrainSettings(dp_epsilon=8.0, dp_tune="public").check()
