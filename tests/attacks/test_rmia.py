"""RMIA on the planted 2-D world of test_boundary_lira: population-relative scores find what confidence cannot."""

from __future__ import annotations

import numpy as np
import pytest
from test_boundary_lira import FAR, PLANTED, world  # noqa: F401  (world is a fixture)

from labelleak.attacks import create_attack
from labelleak.attacks.rmia import rmia_scores
from labelleak.errors import InvalidInputError
from labelleak.oracle import TorchOracle, TorchScoreOracle


@pytest.fixture(scope="module")
def scored(world):  # noqa: F811
    model = world["oracle"].model
    return TorchScoreOracle(model, input_shape=(2,), n_classes=2)


def _rmia(world, **kw):  # noqa: F811
    return create_attack("rmia", n_reference=4, **{**world["recipe"], **kw})


@pytest.mark.parametrize("online", [False, True])
def test_planted_members_rank_above_every_non_member_while_confidence_ranks_them_below(world, scored, online):  # noqa: F811
    x, y, member = world["x"], world["y"], world["is_member"]
    far = (np.arange(len(x)) >= len(PLANTED)) & (np.arange(len(x)) < len(PLANTED) + len(FAR))
    confidence = create_attack("score-confidence")(scored, x, y)
    assert confidence.scores[member].max() < confidence.scores[far].min()
    res = _rmia(world, online=online)(scored, x, y, shadow=world["shadow"])
    assert res.scores[member].min() > res.scores[~member].max(), res.scores
    n_pop = len(world["shadow"].x_train) + len(world["shadow"].x_test)
    assert (res.queries == 1).all() and res.setup_queries == n_pop == res.extras["n_population"]


def test_scores_follow_the_candidates_under_permutation_and_population_is_seeded(world, scored):  # noqa: F811
    x, y, shadow = world["x"], world["y"], world["shadow"]
    attack = _rmia(world, n_population=20)
    a = attack(scored, x, y, shadow=shadow)
    perm = np.random.default_rng(5).permutation(len(x))
    np.testing.assert_array_equal(attack(scored, x[perm], y[perm], shadow=shadow).scores, a.scores[perm])
    assert a.setup_queries == 20
    other = _rmia(world, n_population=20, seed=1)(scored, x, y, shadow=shadow)
    assert not np.array_equal(other.scores, a.scores)


def test_rmia_scores_count_population_ratios_and_break_ties_by_the_ratio():
    z = np.array([0.5, 1.0, 2.0, 4.0])
    got = rmia_scores(np.array([1.0, 2.0, 8.0, 0.1, 1.5]), z, gamma=1.0)
    # LR >= 1 against 2, 3, 4, 0 and 2 population samples; the tie (1.0 vs 1.5) goes to the larger ratio
    np.testing.assert_allclose(np.floor(got * 4 + 0.5), [2, 3, 4, 0, 2])
    assert got[4] > got[0] and (np.diff(np.floor(got * 4 + 0.5)[[3, 0, 1, 2]]) > 0).all()
    assert rmia_scores(np.array([2.0]), z, gamma=2.0)[0] < rmia_scores(np.array([2.0]), z, gamma=1.0)[0]


def test_rmia_needs_scores_and_checks_its_parameters(world, scored):  # noqa: F811
    x, y, shadow = world["x"], world["y"], world["shadow"]
    labels_only = TorchOracle(world["oracle"].model, input_shape=(2,), n_classes=2)
    with pytest.raises(InvalidInputError, match="rmia"):
        _rmia(world)(labels_only, x, y, shadow=shadow)
    for bad, match in (
        (dict(offline_a=1.5), r"offline_a: expected a number in \[0, 1\], got 1.5"),
        (dict(gamma=0.0), "gamma: expected a positive number, got 0.0"),
        (dict(n_population=0), "n_population: expected a positive integer or None, got 0"),
    ):
        with pytest.raises(InvalidInputError, match=match):
            _rmia(world, **bad)(scored, x, y, shadow=shadow)
