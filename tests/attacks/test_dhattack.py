"""DHAttack on a planted target: a linear classifier that, around a few planted members, keeps their label in a
ball of radius RHO (memorisation). Reference models distilled from its labels on shadow data never see the balls."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelleak.attacks import ShadowData, Status, create_attack
from labelleak.attacks.dhattack import fixed_path_distance, gaussian_scores, path_endpoints
from labelleak.errors import BudgetExhaustedError, InvalidInputError
from labelleak.oracle import CallableOracle

D, RHO = 10, 0.4
RECIPE = dict(arch="mlp", hidden=(), epochs=60, lr=3e-2, batch_size=64)  # logistic regression


def _linear(points: np.ndarray, w: np.ndarray) -> np.ndarray:
    return (points @ w > 0).astype(np.int64)


def _crossing(pool, labels, w, rows, shadow_rows):
    """Where each row's path crosses the hyperplane w . x = 0 (distance from x), and the path's length."""
    cand = torch.from_numpy(pool[rows])
    end, _ = path_endpoints(
        cand, torch.from_numpy(labels[rows]), torch.from_numpy(pool[shadow_rows]), torch.from_numpy(labels[shadow_rows])
    )
    step = (end - cand).double().numpy()
    length = np.linalg.norm(step, axis=1)
    return np.abs(pool[rows] @ w) / np.maximum(np.abs(step @ w), 1e-12) * length, length


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One model cache for the module: each reference model is trained once and reused by every call."""
    return str(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def world(cache):
    rng = np.random.default_rng(0)
    w = rng.normal(size=D)
    w -= w.mean()  # boundary through the cube's centre: w . x = 0
    pool = rng.uniform(0, 1, (2000, D)).astype(np.float32)
    labels = _linear(pool, w)
    # planted members: close to the boundary, with the path (the segment to the nearest shadow point of the other
    # class) crossing it early; the shadow data keeps out of the planted balls
    shadow_rows = np.arange(1000, 1600)
    r0, length = _crossing(pool, labels, w, np.arange(1000), shadow_rows)
    near = np.flatnonzero((r0 < 0.05) & (length > 1.3 * RHO))[:6]
    members = pool[near]
    ball = (np.linalg.norm(pool[:, None] - members[None], axis=2) < RHO).any(1)
    shadow_rows = shadow_rows[~ball[shadow_rows]]
    r0, _ = _crossing(pool, labels, w, near, shadow_rows)
    assert len(near) == 6 and np.all(r0 < 0.05)
    nonmembers = np.flatnonzero(~ball[:1000])[:60]

    def target(points: np.ndarray) -> np.ndarray:
        out = _linear(points.reshape(len(points), D), w)
        dist = np.linalg.norm(points.reshape(len(points), 1, D) - members[None], axis=2)  # (B, M)
        inside = dist < RHO
        memorised = labels[near][np.argmax(inside, axis=1)]
        return np.where(inside.any(1), memorised, out)

    x = np.concatenate([members, pool[nonmembers]])
    y = np.concatenate([labels[near], labels[nonmembers]])
    half = len(shadow_rows) // 2
    sx, sy = pool[shadow_rows], labels[shadow_rows]
    shadow = ShadowData(sx[:half], sy[:half], sx[half:], sy[half:])
    is_member = np.r_[np.ones(len(near), bool), np.zeros(len(nonmembers), bool)]
    return dict(target=target, x=x, y=y, shadow=shadow, is_member=is_member, cache=cache)


def _oracle(world):
    return CallableOracle(world["target"], input_shape=(D,), n_classes=2)


def _attack(world, **params):
    params = {"n_reference": 6, "max_queries": 15, "seed": 0, **RECIPE, "cache_dir": world["cache"], **params}
    return create_attack("dhattack", **params)


@pytest.fixture(scope="module")
def result(world):
    return _attack(world)(_oracle(world), world["x"], world["y"], shadow=world["shadow"])


def test_calibrated_score_finds_planted_members_a_global_threshold_misses(world, result):
    m = world["is_member"]
    raw = result.extras["distance"]
    # a global threshold on the raw distance cannot isolate the members: far non-members sit above them
    assert raw[~m].max() > raw[m].min()
    assert (raw[~m] > raw[m].min()).sum() >= 5
    # the per-sample Gaussian puts every planted member above every non-member (TPR 1 at FPR 0)
    assert result.scores[m].min() > result.scores[~m].max()
    assert np.all(raw[m] >= RHO * 0.9)  # the target's distance of a member reaches its ball's edge


def test_queries_per_candidate_and_setup_queries_apart(world, result):
    n_shadow = len(world["shadow"].x_train) + len(world["shadow"].x_test)
    assert result.setup_queries == n_shadow  # the distillation labels
    assert result.queries.max() <= 15
    ok = result.status == Status.OK
    assert ok.sum() >= 50 and np.all(result.queries[ok] == 15)
    assert result.extras["distill_label_agreement"] > 0.95  # the target is the linear rule on the shadow data


def test_same_seed_same_scores_and_order_does_not_matter(world, result):
    perm = np.random.default_rng(1).permutation(len(world["x"]))
    again = _attack(world)(_oracle(world), world["x"][perm], world["y"][perm], shadow=world["shadow"])
    np.testing.assert_array_equal(again.scores, result.scores[perm])
    np.testing.assert_array_equal(again.queries, result.queries[perm])
    other = _attack(world, seed=1)(_oracle(world), world["x"], world["y"], shadow=world["shadow"])
    np.testing.assert_array_equal(other.extras["distance"], result.extras["distance"])  # paths need no randomness
    assert not np.allclose(other.scores, result.scores)  # but the reference models are new


def test_misclassified_candidates_get_a_per_sample_score_and_status(world, result):
    y = world["y"].copy()
    wrong = np.array([10, 20, 30])
    y[wrong] = 1 - y[wrong]
    res = _attack(world)(_oracle(world), world["x"], y, shadow=world["shadow"])
    assert np.all(res.status[wrong] == Status.MISCLASSIFIED)
    assert np.all(res.queries[wrong] == 15)  # the search runs towards label y instead
    d = res.extras["distance"][wrong]
    assert np.all(d < 0)  # signed: how far x sits on the wrong side
    mu, sigma = res.extras["reference_mean"][wrong], res.extras["reference_std"][wrong]
    np.testing.assert_allclose(res.scores[wrong], (d - mu) / sigma)  # the candidate's own Gaussian, as for all
    assert len(np.unique(res.scores[wrong])) == 3 and np.all(np.isfinite(res.scores[wrong]))
    assert np.all(mu < 0)  # the distilled references make the same mistake, at about the same depth


def test_budgets_hold(world):
    res = _attack(world)(_oracle(world), world["x"], world["y"], shadow=world["shadow"], max_queries_per_sample=6)
    assert res.queries.max() <= 6
    assert np.all(res.status[res.status != Status.MISCLASSIFIED] != Status.OK)  # every search was cut short
    n_shadow = len(world["shadow"].x_train) + len(world["shadow"].x_test)
    with pytest.raises(BudgetExhaustedError, match="total budget"):
        _attack(world)(_oracle(world), world["x"], world["y"], shadow=world["shadow"], max_total_queries=n_shadow - 1)


@pytest.mark.parametrize(
    "params,match",
    [
        (dict(max_queries=1), "max_queries must be an integer of at least 2"),
        (dict(min_ratio=1.5), r"min_ratio must lie in \(0, 1\)"),
        (dict(shrinkage=-1.0), "shrinkage must be non-negative"),
    ],
)
def test_bad_settings_are_refused(world, params, match):
    with pytest.raises(InvalidInputError, match=match):
        _attack(world, **params)(_oracle(world), world["x"][:4], world["y"][:4], shadow=world["shadow"])


def test_fixed_path_bisection_matches_a_hyperplane():
    """On the half-space x0 >= 0.5 the path distance is known in closed form; 20 steps pin it to 1e-4 relative."""
    x = torch.tensor([[0.2, 0.5], [0.4, 0.5], [0.7, 0.5], [0.1, 0.1]])
    end_out = torch.tensor([[0.8, 0.5], [0.7, 0.9], [0.9, 0.5], [0.3, 0.1]])  # the last one stays on its side
    end_in = torch.tensor([[0.0, 0.5], [0.0, 0.5], [0.1, 0.5], [0.0, 0.1]])
    y = torch.tensor([0, 0, 0, 0])

    def classify(points, rows):
        return (points[:, 0] >= 0.5).long()

    out = fixed_path_distance(classify, x, y, end_out, end_in, steps=20, min_ratio=1e-4)
    np.testing.assert_allclose(out.distance[:3].numpy(), [0.3, 0.1 / 0.6, -0.2], rtol=1e-4)  # x2 is misclassified
    assert out.correct.tolist() == [True, True, False, True] and out.crossed.tolist() == [True, True, True, False]
    assert out.distance[3] == pytest.approx(0.2)  # never crosses: the whole segment


def test_endpoints_are_the_nearest_differently_labelled_pool_rows():
    x = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    pool = torch.tensor([[0.1, 0.0], [0.5, 0.0], [0.9, 1.0], [0.0, 0.2]])
    end, found = path_endpoints(x, torch.tensor([0, 1]), pool, torch.tensor([0, 1, 1, 2]))
    # x0 (label 0) skips the nearer (0.1, 0) of its own label; x1 (label 1) skips the nearer (0.9, 1) of its own
    np.testing.assert_allclose(end.numpy(), [[0.0, 0.2], [0.0, 0.2]])
    assert found.all()
    _, found = path_endpoints(x, torch.tensor([0, 1]), pool[:1], torch.tensor([0]))
    assert found.tolist() == [False, True]


def test_gaussian_scores_shrink_towards_the_pooled_variance():
    ref = np.array([[1.0, 2.0], [1.0, 4.0]])  # candidate 0: no spread at all
    z, mu, sigma = gaussian_scores(np.array([2.0, 3.0]), ref, shrinkage=1.0)
    np.testing.assert_allclose(mu, [1.0, 3.0])
    pooled = 0.5  # mean of the per-sample variances 0 and 1
    np.testing.assert_allclose(sigma, np.sqrt([(0 + pooled) / 3, (2 * 1.0 + pooled) / 3]))
    np.testing.assert_allclose(z, [1.0 / sigma[0], 0.0])
