"""YOQO on tiny noisy-label images: members can only be fitted by memorising, so IN and OUT models differ on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelleak.attacks import ShadowData, Status, create_attack
from labelleak.attacks._reference import train_reference_models
from labelleak.attacks._shadow import ShadowRecipe
from labelleak.attacks.yoqo import answer_scores, craft_queries
from labelleak.errors import InvalidInputError
from labelleak.metrics import auc
from labelleak.models import ModelSpec, TrainSettings, build_model, init_model, train_model
from labelleak.oracle import TorchOracle

SHAPE = (1, 8, 8)
RECIPE = dict(arch="mlp", hidden=(64,), epochs=60, lr=3e-3, batch_size=32)


def _data(seed=0, n=400):
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.uniform(0, 1, (n, 1, 4, 4)).astype(np.float32))
    x = torch.nn.functional.interpolate(coarse, size=(8, 8), mode="bilinear", align_corners=False).numpy()
    y = (x.reshape(n, -1) @ rng.normal(size=(3, 64)).T).argmax(1)
    noisy = rng.random(n) < 0.6
    y[noisy] = rng.integers(0, 3, noisy.sum())
    return x, y


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    x, y = _data()
    spec = ModelSpec("mlp", SHAPE, 3, hidden=(128,))
    memoriser = train_model(
        init_model(lambda: build_model(spec), 0),
        x[:100],
        y[:100],
        TrainSettings(epochs=200, lr=3e-3, batch_size=32),
        n_classes=3,
        progress=False,
    )
    shadow = ShadowData(x[200:300], y[200:300], x[300:400], y[300:400])
    recipe = {**RECIPE, "cache_dir": str(tmp_path_factory.mktemp("models"))}
    is_member = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    return dict(memoriser=memoriser, x=x[:200], y=y[:200], shadow=shadow, recipe=recipe, is_member=is_member)


def _oracle(world):
    return TorchOracle(world["memoriser"], input_shape=SHAPE, n_classes=3)


def _refs(world, seed, k=6, online=True, size=200):
    """Reference models of ``size`` rows: online, 100 of the 200 candidates and 100 shadow rows each."""
    return train_reference_models(
        torch.from_numpy(world["x"]),
        torch.from_numpy(world["y"]),
        world["shadow"],
        n_reference=k,
        online=online,
        recipe=ShadowRecipe.from_mapping(world["recipe"]),
        input_shape=SHAPE,
        n_classes=3,
        seed=seed,
        reference_size=size,
    )


def _craft(refs, x, y, **kw):
    params = dict(online=True, alpha=2.0, step_size=0.01, max_steps=50, loss_threshold=0.5, bounds=(0.0, 1.0))
    return craft_queries(refs.models, torch.from_numpy(refs.inside), x, y, **{**params, **kw})


def _separation(refs, points, y):
    """Mean over candidates of (share of IN models answering y) - (share of OUT models answering y)."""
    with torch.no_grad():
        hits = torch.stack([m(points).argmax(1) == y for m in refs.models]).numpy()
    inside = refs.inside
    ok = inside.any(0) & (~inside).any(0)
    rate_in = (hits & inside).sum(0) / np.maximum(inside.sum(0), 1)
    rate_out = (hits & ~inside).sum(0) / np.maximum((~inside).sum(0), 1)
    return float((rate_in - rate_out)[ok].mean())


def test_crafted_query_separates_in_from_out_models_it_never_saw(world):
    x, y = torch.from_numpy(world["x"]), torch.from_numpy(world["y"])
    crafting, held_out = _refs(world, seed=0), _refs(world, seed=50)  # other training sets and initialisations
    crafted, _, converged = _craft(crafting, x, y)
    assert converged.float().mean() > 0.5
    clean, queried = _separation(held_out, x, y), _separation(held_out, crafted, y)
    # measured 0.063 -> 0.078 with 6 + 6 tiny MLPs of 200 rows (seeds 1 and 2: +0.016, +0.011): the query
    # transfers, weakly, to fresh IN/OUT models. With models of the memoriser's own 100 rows (candidates only) it
    # does not: -0.009 on average over seeds 0-6.
    assert queried > clean + 0.008
    assert _separation(crafting, crafted, y) > 0.55  # and it does what it was optimised for (measured 0.61)


def test_one_query_per_candidate_and_members_score_higher(world):
    res = create_attack("yoqo", n_reference=6, seed=0, **world["recipe"])(
        _oracle(world), world["x"], world["y"], shadow=world["shadow"]
    )
    assert np.all(res.queries == 1) and res.setup_queries == 0
    assert auc(world["is_member"], res.scores) > 0.58  # measured 0.61
    bit = res.extras["answered_label"].astype(bool)  # the paper's one-bit decision
    assert bit[world["is_member"]].mean() > bit[~world["is_member"]].mean()
    assert len(np.unique(res.scores)) > 4  # a ranking, not only the bit


def test_crafting_does_not_depend_on_the_batch(world):
    x, y = torch.from_numpy(world["x"][:40]), torch.from_numpy(world["y"][:40])
    refs = _refs(world, seed=0)
    inside = refs.inside[:, :40]
    perm = torch.from_numpy(np.random.default_rng(3).permutation(40))
    a, la, _ = craft_queries(refs.models, torch.from_numpy(inside), x, y, **_settings())
    b, lb, _ = craft_queries(refs.models, torch.from_numpy(inside[:, perm.numpy()]), x[perm], y[perm], **_settings())
    torch.testing.assert_close(b, a[perm], rtol=0, atol=0)
    torch.testing.assert_close(lb, la[perm])  # the loss is a diagnostic; batched matmuls may differ in the last bit


def _settings():
    return dict(online=True, alpha=2.0, step_size=0.01, max_steps=20, loss_threshold=0.5, bounds=(0.0, 1.0))


def test_offline_scores_follow_candidates_when_permuted_and_seeds_matter(world):
    attack = create_attack("yoqo-offline", n_reference=4, seed=0, **world["recipe"])
    res = attack(_oracle(world), world["x"], world["y"], shadow=world["shadow"])
    perm = np.random.default_rng(1).permutation(len(world["x"]))
    again = attack(_oracle(world), world["x"][perm], world["y"][perm], shadow=world["shadow"])
    np.testing.assert_array_equal(again.scores, res.scores[perm])
    assert np.all(res.queries == 1) and res.extras["alpha"] == 5.0 and res.extras["in_models_per_candidate"] == 0
    other = create_attack("yoqo-offline", n_reference=4, seed=1, **world["recipe"])
    assert not np.array_equal(other(_oracle(world), world["x"], world["y"], shadow=world["shadow"]).scores, res.scores)


def test_misclassified_candidates_get_their_own_scores_and_budgets_hold(world):
    y = world["y"].copy()
    wrong = np.arange(100, 110)  # non-members; give them a label the target does not answer
    with torch.no_grad():
        pred = world["memoriser"](torch.from_numpy(world["x"][wrong])).argmax(1).numpy()
    y[wrong] = (pred + 1) % 3
    attack = create_attack("yoqo", n_reference=6, seed=0, **world["recipe"])
    # a total cap of one query each serves everyone (fewer would serve nobody: see test_total_cap.py)
    res = attack(_oracle(world), world["x"], y, shadow=world["shadow"], max_total_queries=len(y) + 7)
    assert np.all(res.queries == 1) and res.allowance == 1 and not np.any(res.status == Status.BUDGET_HIT)
    scores = res.scores[wrong]
    assert np.all(np.isfinite(scores)) and len(np.unique(scores)) > 1
    assert np.median(scores) < np.median(res.scores[:100])  # below the members


def test_answer_scores_closed_form():
    hits = np.array([[1, 1], [1, 0], [0, 0], [0, 1]], dtype=bool)  # (K=4, N=2)
    inside = np.array([[1, 1], [1, 1], [0, 0], [0, 0]], dtype=bool)
    s = answer_scores(np.array([True, False]), hits, inside, online=True)
    # candidate 0: IN 2/2 -> p_in = 3/4, OUT 0/2 -> p_out = 1/4; answered y
    # candidate 1: IN 1/2 -> p_in = 2/4, OUT 1/2 -> p_out = 2/4; answered wrong
    np.testing.assert_allclose(s, [np.log(3), 0.0])
    off = answer_scores(np.array([True, False]), hits, np.zeros_like(inside), online=False)
    np.testing.assert_allclose(off, [-np.log(3 / 6), np.log(1 - 3 / 6)])  # p_out = (2 + 1) / (4 + 2) for both


@pytest.mark.parametrize(
    "params,match",
    [
        (dict(alpha=-1.0), "alpha must be non-negative"),
        (dict(max_steps=0), "max_steps must be a positive integer"),
        (dict(batch_size=0), "batch_size must be a positive integer"),
        (dict(step_size=0.0), "step_size must be positive"),
    ],
)
def test_bad_settings_are_refused(world, params, match):
    with pytest.raises(InvalidInputError, match=match):
        create_attack("yoqo", **params)(_oracle(world), world["x"][:4], world["y"][:4], shadow=world["shadow"])
