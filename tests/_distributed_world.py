"""A tiny digits world shared by the distributed tests: a memorising MLP target, candidates and shadow data."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from labelleak.attacks import ShadowData, ShadowRecipe
from labelleak.models import ModelSpec, TrainSettings, build_model, init_model, train_model

SHAPE = (1, 8, 8)
RECIPE = dict(arch="mlp", hidden=(32,), epochs=3, lr=3e-3, batch_size=32)
HSJA = dict(max_iter=3, max_eval=40, init_eval=10, init_size=10)

# (attack, constructor parameters, per-candidate budget, oracle kind): every attack that runs per candidate
PER_CANDIDATE = [
    ("gap", {}, 1, "labels"),
    ("boundary-hsja", HSJA, 120, "labels"),
    ("boundary-hsja-linf", HSJA, 120, "labels"),
    ("boundary-qeba", HSJA, 120, "labels"),
    ("boundary-guided", dict(**HSJA, shadow_recipe=ShadowRecipe(**RECIPE)), 120, "labels"),
    ("boundary-whitebox", dict(steps=8, refine_steps=4), 20, "labels"),
    ("augmentation", dict(kind="translate", d=1), 5, "labels"),
    ("noise", dict(n_noise=10, sigma=0.2), 11, "labels"),
    ("smoothing", dict(n=30, sigma=0.25), 30, "labels"),
    ("oslo", dict(taus=(0.5, 1.0, 2.0), steps=5, **RECIPE), 3, "labels"),
    ("score-loss", {}, 1, "scores"),
    ("score-mentropy", {}, 1, "scores"),
]


def digits_world() -> dict:
    """30 member and 30 non-member candidates of an MLP trained 40 epochs on 30 digits, and 60 + 60 shadow digits."""
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, *SHAPE)
    spec = ModelSpec("mlp", SHAPE, 10, hidden=(64,))
    model = train_model(
        init_model(lambda: build_model(spec), 0),
        x[:30],
        y[:30],
        TrainSettings(epochs=40, lr=3e-3, batch_size=16),
        n_classes=10,
        progress=False,
    )
    shadow = ShadowData(x[100:160], y[100:160], x[160:220], y[160:220])
    return dict(model=model.eval(), x=x[:60], y=y[:60], shadow=shadow)
