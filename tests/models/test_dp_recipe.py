"""DP-SGD as practitioners run it: the epsilon reported against Opacus' accountant, the epochs rule, the tuning."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labelleak.models import ModelSpec, TrainSettings, build_model, init_model
from labelleak.models.private import CLIP_GRID, LR_FACTORS, MAX_NOISE, dp_schedule
from labelleak.models.training import train_with_report

pytest.importorskip("opacus")


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 10)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 1).astype(np.int64)


def _train(settings: TrainSettings, n=60):
    x, y = _data(n)
    spec = ModelSpec("mlp", (10,), 2, hidden=(32,))
    return train_with_report(init_model(lambda: build_model(spec), 0), x, y, settings, n_classes=2, progress=False)


@pytest.mark.parametrize(
    "settings",
    [
        TrainSettings(epochs=3, dp_epsilon=4.0, dp_batch_size=16, dp_tune=False),
        TrainSettings(epochs=2, dp_noise_multiplier=1.3, dp_batch_size=8, dp_delta=1e-4, dp_tune=False),
    ],
)
def test_reported_epsilon_is_the_accountants_for_the_same_settings(settings):
    from opacus.accountants import RDPAccountant

    _, report = _train(settings)
    batches = math.ceil(60 / settings.dp_batch_size)  # Poisson rate as Opacus derives it from the loader
    assert report.dp["sample_rate"] == pytest.approx(1 / batches)
    assert report.dp["steps"] == report.epochs_run * batches
    if settings.dp_noise_multiplier is not None:
        assert report.dp["noise_multiplier"] == settings.dp_noise_multiplier
        assert report.epochs_run == settings.epochs
    accountant = RDPAccountant()
    accountant.history = [(report.dp["noise_multiplier"], 1 / batches, report.epochs_run * batches)]
    assert report.epsilon == pytest.approx(accountant.get_epsilon(settings.dp_delta), rel=1e-9)
    assert report.delta == settings.dp_delta
    if settings.dp_epsilon is not None:
        assert settings.dp_epsilon - 0.1 < report.epsilon <= settings.dp_epsilon + 0.01


def test_epochs_follow_the_budget():
    base = dict(epochs=20, dp_batch_size=50, dp_delta=1e-5)
    generous = dp_schedule(1000, TrainSettings(dp_epsilon=32.0, **base))
    assert generous.epochs == 20 and generous.noise_multiplier <= MAX_NOISE
    tight = dp_schedule(1000, TrainSettings(dp_epsilon=1.0, **base))
    assert 1 <= tight.epochs < 20 and tight.sample_rate == 0.05 and tight.steps_per_epoch == 20
    if tight.epochs > 1:  # the last epoch count within MAX_NOISE: one more epoch would need more noise
        assert tight.noise_multiplier <= MAX_NOISE
        longer = dp_schedule(1000, TrainSettings(dp_epsilon=1.0, **{**base, "epochs": tight.epochs + 1}))
        assert longer.epochs == tight.epochs
    middle = dp_schedule(1000, TrainSettings(dp_epsilon=4.0, **base))
    assert tight.epochs <= middle.epochs <= generous.epochs


def test_tuning_picks_the_best_validation_pair_of_the_grid():
    x, y = _data(60)
    spec = ModelSpec("mlp", (10,), 2, hidden=(32,))
    settings = TrainSettings(epochs=2, dp_epsilon=8.0, dp_batch_size=16, lr=1e-3)
    model = init_model(lambda: build_model(spec), 0)
    _, report = train_with_report(
        model, x[:30], y[:30], settings, n_classes=2, progress=False, validation=(x[30:], y[30:])
    )
    assert report.dp["tuning_data"] == "outside" and report.dp["tuning_rows"] == 30
    trials = report.dp["tuning"]
    assert [(t["max_grad_norm"], t["lr"]) for t in trials] == [(c, 1e-3 * f) for c in CLIP_GRID for f in LR_FACTORS]
    best = max(trials, key=lambda t: t["val_accuracy"])
    assert (report.dp["max_grad_norm"], report.dp["lr"]) == (best["max_grad_norm"], best["lr"])
    assert all(0 <= t["val_accuracy"] <= 1 for t in trials)


def test_dp_settings_enter_the_cache_key_only_with_dp():
    plain = TrainSettings().to_dict()
    assert "dp_batch_size" not in plain and "dp_recipe" not in plain and plain["augment"] is False
    dp = TrainSettings(dp_epsilon=8.0).to_dict()
    assert dp["dp_batch_size"] == 256 and dp["dp_tune"] == "outside" and dp["dp_recipe"] == 3
    assert TrainSettings(dp_epsilon=8.0, dp_tune=False).dp_tune == "off"  # the former switch still reads
