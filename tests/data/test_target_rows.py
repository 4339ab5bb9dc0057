"""Members are exactly the rows the target's optimiser trained on (issue 29, item 1): early stopping and
adversarial regularisation validate on rows beyond the four parts, never on members, and results record
``trained_rows``."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from labelleak.attacks import create_attack
from labelleak.data import SplitSizes, four_way_split, public_part, validation_part
from labelleak.errors import InvalidInputError
from labelleak.models import ModelSpec, TrainSettings, build_model, init_model
from labelleak.models import training as training_module
from labelleak.models.training import train_with_report, validation_size
from labelleak.pipeline.audit import attack_params
from labelleak.pipeline.config import AuditConfig
from labelleak.pipeline.setup.trained import prepare_local


@pytest.fixture
def optimiser_rows(monkeypatch):
    """Per training call: its description and the rows its optimiser trains on (x[train_idx] of ``_holdout``)."""
    seen: list[tuple[str, np.ndarray]] = []
    real_train, real_holdout = training_module._train, training_module._holdout
    current: dict[str, object] = {}

    def train(*args, **kwargs):
        current["x"], current["what"] = args[1], args[6]
        return real_train(*args, **kwargs)

    def holdout(*args, **kwargs):
        train_idx, held = real_holdout(*args, **kwargs)
        seen.append((str(current["what"]), np.asarray(current["x"])[train_idx.numpy()]))
        return train_idx, held

    monkeypatch.setattr(training_module, "_train", train)
    monkeypatch.setattr(training_module, "_holdout", holdout)
    return seen


def _rows(x: np.ndarray) -> set[bytes]:
    return {np.ascontiguousarray(r, dtype=np.float32).tobytes() for r in x.reshape(len(x), -1)}


def _cfg(tmp_path, **kw):
    base = dict(train_size=60, epochs=3, cache_dir=str(tmp_path / "cache"), progress=False, seed=1)
    return AuditConfig(**{**base, **kw})


@pytest.mark.parametrize("defense", ["early-stopping=2", "advreg=1"])
def test_every_member_candidate_is_a_row_the_target_trained_on(tmp_path, optimiser_rows, defense):
    setup = prepare_local(_cfg(tmp_path, defense=defense))
    (_, trained), *_ = [r for r in optimiser_rows if "target" in r[0]]
    members = setup.x[setup.is_member]
    assert len(members) == 60 and _rows(members) <= _rows(trained)
    assert setup.target["trained_rows"] == 60 == len(trained)
    assert setup.target["validation_rows"] == 6  # val_fraction 0.1 of 60, from beyond the four parts
    # no non-member candidate was trained on either
    assert not _rows(setup.x[~setup.is_member]) & _rows(trained)


def test_default_target_trains_on_the_members_part_and_records_it(tmp_path, optimiser_rows):
    setup = prepare_local(_cfg(tmp_path))
    (_, trained), *_ = [r for r in optimiser_rows if "target" in r[0]]
    assert _rows(trained) == _rows(setup.x[setup.is_member])
    assert setup.target["trained_rows"] == 60 and "validation_rows" not in setup.target


def test_validation_part_lies_beyond_the_four_parts_and_the_public_part():
    sizes = SplitSizes(10, 10, 20, 20)
    split = four_way_split(200, sizes, seed=3, reserve_train=40)
    larger = four_way_split(200, SplitSizes(40, 10, 20, 20), seed=3, reserve_train=40)
    used = np.concatenate([larger.target_train, split.target_test, split.shadow_train, split.shadow_test])
    public = public_part(200, sizes, 30, seed=3, reserve_train=40)
    val = validation_part(200, sizes, 5, after=30, seed=3, reserve_train=40)
    assert len(np.unique(val)) == 5 and not np.intersect1d(val, np.concatenate([used, public])).size
    assert np.array_equal(val, validation_part(200, sizes, 5, after=30, seed=3, reserve_train=40))
    with pytest.raises(
        InvalidInputError, match=r"validation data: 11 samples asked, .* only 40 beyond the four parts \(30 of them"
    ):
        validation_part(130, sizes, 11, after=30, seed=3, reserve_train=40)


def test_a_pool_with_no_room_for_validation_rows_is_refused_before_training(tmp_path):
    # digits has 1797 samples: four parts of 449 leave 1 beyond them, and early stopping on 449 needs 45
    cfg = _cfg(tmp_path, train_size=449, defense="early-stopping=2")
    with pytest.raises(
        InvalidInputError,
        match=r"'early-stopping=2': needs 45 public, validation or canary rows beyond the four parts \(1796 "
        r"samples\), but the pool of 1797 has only 1 beyond them",
    ):
        prepare_local(cfg)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("config.json"))  # none trained


def test_given_validation_rows_are_held_out_and_every_training_row_is_trained_on(optimiser_rows):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (40, 4)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    spec = ModelSpec("mlp", (4,), 2, 1.0, (8,))
    settings = TrainSettings(epochs=3, batch_size=8, early_stopping=1)
    assert validation_size(40, settings) == 4 and validation_size(40, TrainSettings()) == 0
    model = init_model(lambda: build_model(spec), 0)
    _, report = train_with_report(
        model, x[:30], y[:30], settings, n_classes=2, progress=False, validation=(x[30:], y[30:])
    )
    assert report.trained_rows == 30 and _rows(optimiser_rows[-1][1]) == _rows(x[:30])
    # without them, a seeded tenth of the data is carved out and never trained on (library use)
    _, report = train_with_report(init_model(lambda: build_model(spec), 0), x, y, settings, n_classes=2, progress=False)
    assert report.trained_rows == 36 and len(optimiser_rows[-1][1]) == 36


def test_reference_models_train_on_as_many_rows_as_the_target(tmp_path):
    cfg = _cfg(tmp_path, eval_size=20, lira_models=4)
    setup = prepare_local(cfg)
    assert setup.reference_size == 60  # the rows the target trained on, not its 20 member candidates
    assert replace(setup, target={}).reference_size == 20  # a model labelleak did not train: the member candidates
    params = attack_params("lira", cfg, setup)
    assert params["reference_size"] == 60
    res = create_attack("lira", **params)(setup.score_oracle, setup.x, setup.y, shadow=setup.shadow_data)
    assert res.extras["reference_size"] == 60 and res.extras["in_models_per_candidate"] == 2
    assert res.params["reference_size"] == 60
