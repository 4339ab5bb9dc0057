"""A target trained on a chosen subset of 200 random-label rows, for the tests of the epsilon bounds: an MLP
that memorises without DP, or DP-SGD at epsilon 1 (delta 1e-5) by the repository's recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

ROWS = 200


def true_label_probabilities(member: np.ndarray, seed: int, *, dp: bool) -> tuple[np.ndarray, float | None]:
    """Train on the rows where ``member`` is true and return the probability the model gives each of the 200 rows'
    true label (the score: higher = member) and the accountant's epsilon (``None`` without DP)."""
    pytest.importorskip("opacus")
    from labelleak.models import ModelSpec, TrainSettings, build_model, init_model
    from labelleak.models.training import train_with_report

    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (ROWS, 10)).astype(np.float32)
    y = rng.integers(0, 2, ROWS)
    spec = ModelSpec("mlp", (10,), 2, hidden=(256,))
    private = {"dp_epsilon": 1.0, "dp_delta": 1e-5, "dp_batch_size": 25, "dp_tune": False} if dp else {}
    settings = TrainSettings(epochs=10 if dp else 300, lr=1e-2, batch_size=32, seed=seed, **private)
    model, report = train_with_report(
        init_model(lambda: build_model(spec), seed), x[member], y[member], settings, n_classes=2, progress=False
    )
    with torch.no_grad():
        p = torch.softmax(model(torch.from_numpy(x)), 1).numpy()
    return p[np.arange(ROWS), y], report.epsilon
