"""Robustness, one-query and score-based attacks on tiny image data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelleak.attacks import ShadowData, create_attack
from labelleak.attacks.robustness import rotate, translate
from labelleak.attacks.score_based import metric_scores
from labelleak.errors import InvalidInputError
from labelleak.metrics import auc
from labelleak.models import ModelSpec, TrainSettings, build_model, init_model, train_model
from labelleak.oracle import TorchOracle, TorchScoreOracle

SHAPE = (1, 8, 8)
RECIPE = dict(arch="mlp", hidden=(64,), epochs=60, lr=3e-3, batch_size=32)


def _data(seed=0, n=400):
    """Smooth 8x8 images (upsampled 4x4 noise) labelled by a random linear teacher with 60% label noise, so a
    model can only fit its training set by memorising it; small shifts keep an image's content."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.uniform(0, 1, (n, 1, 4, 4)).astype(np.float32))
    x = torch.nn.functional.interpolate(coarse, size=(8, 8), mode="bilinear", align_corners=False).numpy()
    w = rng.normal(size=(3, 64))
    y = (x.reshape(n, -1) @ w.T).argmax(1)
    noisy = rng.random(n) < 0.6
    y[noisy] = rng.integers(0, 3, noisy.sum())
    return x, y


def _model(x, y, epochs):
    spec = ModelSpec("mlp", SHAPE, 3, hidden=(128,))
    return train_model(
        init_model(lambda: build_model(spec), 0),
        x,
        y,
        TrainSettings(epochs=epochs, lr=3e-3, batch_size=32),
        n_classes=3,
        progress=False,
    )


@pytest.fixture(scope="module")
def world():
    x, y = _data()
    members, _nonmembers, sh_train, sh_test = (slice(0, 100), slice(100, 200), slice(200, 300), slice(300, 400))
    memoriser = _model(x[members], y[members], epochs=200)
    unrelated = _model(x[sh_test], y[sh_test], epochs=200)  # never saw the candidates
    cand_x, cand_y = x[:200], y[:200]
    shadow = ShadowData(x[sh_train], y[sh_train], x[sh_test], y[sh_test])
    is_member = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    return dict(memoriser=memoriser, unrelated=unrelated, x=cand_x, y=cand_y, shadow=shadow, is_member=is_member)


CASES = [
    ("augmentation", dict(kind="translate", d=1), 5, "label-only"),
    ("augmentation", dict(kind="rotate", r=2), 5, "label-only"),
    ("augmentation", dict(kind="flip"), 2, "label-only"),
    ("noise", dict(n_noise=20, sigma=0.3), 21, "label-only"),
    ("oslo", dict(taus=(0.5, 1.0, 2.0), steps=20, **RECIPE), 3, "label-only"),
    ("score-loss", {}, 1, "scores"),
    ("score-confidence", {}, 1, "scores"),
    ("score-entropy", {}, 1, "scores"),
    ("score-mentropy", {}, 1, "scores"),
    ("score-nn", dict(**RECIPE), 1, "scores"),
    ("lira", dict(n_reference=8, **RECIPE), 1, "scores"),
    ("lira-offline", dict(n_reference=8, **RECIPE), 1, "scores"),
]


@pytest.mark.parametrize("name,params,queries,threat", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_memorising_target_leaks_more_and_queries_are_exact(world, name, params, queries, threat):
    kind = TorchScoreOracle if threat == "scores" else TorchOracle
    aucs = {}
    for target in ("memoriser", "unrelated"):
        oracle = kind(world[target], input_shape=SHAPE, n_classes=3)
        res = create_attack(name, **params)(oracle, world["x"], world["y"], shadow=world["shadow"])
        assert res.threat_model == threat
        assert res.queries.tolist() == [queries] * 200
        aucs[target] = auc(world["is_member"], res.scores)
    assert aucs["memoriser"] > 0.55 and aucs["memoriser"] > aucs["unrelated"] + 0.08, aucs


@pytest.mark.parametrize(
    "name,params",
    [
        ("noise", dict(n_noise=5, sigma=0.2)),
        ("oslo", dict(taus=(1.0,), **RECIPE)),
        ("lira", dict(n_reference=2, **RECIPE)),
    ],
)
def test_same_seed_same_scores(world, name, params):
    kind = TorchScoreOracle if name == "lira" else TorchOracle
    oracle = kind(world["memoriser"], input_shape=SHAPE, n_classes=3)
    a = create_attack(name, seed=3, **params)(oracle, world["x"][:40], world["y"][:40], shadow=world["shadow"])
    b = create_attack(name, seed=3, **params)(oracle, world["x"][:40], world["y"][:40], shadow=world["shadow"])
    np.testing.assert_array_equal(a.scores, b.scores)


def test_oslo_operating_points_are_one_query_each(world):
    oracle = TorchOracle(world["memoriser"], input_shape=SHAPE, n_classes=3)
    res = create_attack("oslo", taus=(0.5, 4.0), **RECIPE)(oracle, world["x"], world["y"], shadow=world["shadow"])
    points = res.extras["operating_points"]
    assert set(points) == {"0.5", "4"}
    # every single-query operating point flags members more often than non-members
    for pred in points.values():
        assert pred[world["is_member"]].mean() > pred[~world["is_member"]].mean()


def test_augmentation_attack_model_scorer(world):
    oracle = TorchOracle(world["memoriser"], input_shape=SHAPE, n_classes=3)
    res = create_attack("augmentation", kind="translate", d=1, scorer="model", shadow_recipe=RECIPE)(
        oracle, world["x"], world["y"], shadow=world["shadow"]
    )
    assert ((res.scores >= 0) & (res.scores <= 1)).all() and auc(world["is_member"], res.scores) > 0.55


def test_score_attacks_refuse_label_only_oracles(world):
    oracle = TorchOracle(world["memoriser"], input_shape=SHAPE, n_classes=3)
    with pytest.raises(InvalidInputError, match="needs an oracle that returns scores"):
        create_attack("score-loss")(oracle, world["x"], world["y"])
    with pytest.raises(InvalidInputError, match="augmentation needs image inputs"):
        flat = TorchOracle(torch.nn.Linear(4, 3), input_shape=(4,), n_classes=3)
        create_attack("augmentation")(flat, np.zeros((2, 4), np.float32), np.zeros(2, int))


def test_modified_entropy_golden_value():
    p = torch.tensor([[0.7, 0.2, 0.1]], dtype=torch.float64)
    y = torch.tensor([0])
    mentr = -(0.3 * np.log(0.7)) - (0.2 * np.log(0.8) + 0.1 * np.log(0.9))
    assert metric_scores(p, y, "mentropy")[0] == pytest.approx(-mentr)
    assert metric_scores(p, y, "loss")[0] == pytest.approx(np.log(0.7))
    assert metric_scores(p, y, "entropy")[0] == pytest.approx(np.sum([v * np.log(v) for v in (0.7, 0.2, 0.1)]))


def test_translate_and_rotate_geometry():
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 1, 1] = 1.0
    assert translate(x, 1, 0)[0, 0, 1, 2] == 1.0 and translate(x, 0, -1)[0, 0, 0, 1] == 1.0
    assert translate(x, 1, 0).sum() == 1.0
    torch.testing.assert_close(rotate(x, 0.0), x)
    assert torch.allclose(rotate(rotate(x, 90.0), -90.0), x, atol=1e-5)


def test_adversary_models_are_trained_once_per_recipe_and_data(world, tmp_path, monkeypatch):
    """With a cache, a shadow model that does not depend on the target (ML-Leaks) is trained once for two targets
    and the scores equal an uncached run; target-relabelled data (transfer) is a different model."""
    import labelleak.attacks._shadow as shadow_module

    calls = []
    real_train = shadow_module.train_model
    monkeypatch.setattr(shadow_module, "train_model", lambda *a, **k: calls.append(1) or real_train(*a, **k))
    x, y, shadow = world["x"][:60], world["y"][:60], world["shadow"]
    scores = {}
    for target in ("memoriser", "unrelated"):
        oracle = TorchScoreOracle(world[target], input_shape=SHAPE, n_classes=3)
        for cache in (None, str(tmp_path)):
            scores[target, cache] = create_attack("score-nn", cache_dir=cache, **RECIPE)(
                oracle, x, y, shadow=shadow
            ).scores
    assert len(calls) == 3  # uncached twice, cached once: the second target loaded the model
    for target in ("memoriser", "unrelated"):
        np.testing.assert_array_equal(scores[target, None], scores[target, str(tmp_path)])
    assert len(list(tmp_path.iterdir())) == 1
    for target in ("memoriser", "unrelated"):  # transfer relabels with each target's answers: one model each
        oracle = TorchOracle(world[target], input_shape=SHAPE, n_classes=3)
        create_attack("transfer", cache_dir=str(tmp_path), **RECIPE)(oracle, x, y, shadow=shadow)
    assert len(calls) == 5 and len(list(tmp_path.iterdir())) == 3
