"""The per-candidate Gaussians of boundary-LiRA: the shrinkage prior's closed form and limits, and the variance
model chosen on held-out reference models (issue 34, item 3)."""

from __future__ import annotations

import numpy as np
import pytest

from labelleak.attacks._likelihood import choose_variance, fit, heldout_loglik, likelihood_scores
from labelleak.errors import InvalidInputError


def _planted(k: int, n: int, *, spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(K, N) reference values, every candidate IN for exactly half the models, with per-candidate sds that vary
    by a factor exp(spread) around 1 (spread 0: one variance for all)."""
    rng = np.random.default_rng(seed)
    sd = np.exp(spread * rng.uniform(-1, 1, n))
    inside = np.zeros((k, n), dtype=bool)
    for i in range(n):
        inside[rng.permutation(k)[: k // 2], i] = True
    mu = rng.normal(0, 3, n)
    return mu + 1.0 * inside + sd * rng.normal(size=(k, n)), inside


def test_shrunk_variance_is_the_posterior_mean_and_sits_between_its_limits():
    values = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]])
    mask = np.ones_like(values, dtype=bool)
    g = fit(values, mask, "global")
    pooled = np.sqrt((8.0 + 0.0) / (6 - 2))  # SS = 8 and 0, dof = 6 values - 2 means
    assert g.sd == pytest.approx([pooled, pooled])
    s = fit(values, mask, "shrunk", prior_strength=2.0)
    assert s.sd == pytest.approx(np.sqrt([(2 * pooled**2 + 8) / (2 + 2), (2 * pooled**2 + 0) / (2 + 2)]))
    own = fit(values, mask, "per-example")
    assert own.sd[0] == pytest.approx(2.0) and own.sd[1] == pytest.approx(1e-6)
    assert fit(values, mask, "shrunk", prior_strength=1e9).sd == pytest.approx(g.sd)
    assert fit(values, mask, "shrunk", prior_strength=1e-9).sd[0] == pytest.approx(2.0, rel=1e-6)


def test_a_candidate_with_one_value_takes_the_pooled_variance_under_every_option():
    values = np.array([[0.0, 5.0], [2.0, 0.0]])
    mask = np.array([[True, True], [True, False]])
    for variance in ("global", "per-example", "shrunk"):
        g = fit(values, mask, variance)
        assert g.sd[1] == pytest.approx(np.sqrt(2.0)), variance  # SS 2 over dof 1


def test_heteroscedastic_candidates_with_many_models_choose_their_own_variances():
    ref, inside = _planted(32, 400, spread=1.5)
    choice = choose_variance(ref, inside, online=True)
    assert choice.chosen in ("per-example", "shrunk")
    assert choice.heldout_loglik[choice.chosen] > choice.heldout_loglik["global"]


def test_one_variance_for_all_with_few_models_keeps_a_pooled_estimate():
    ref, inside = _planted(6, 400, spread=0.0)
    choice = choose_variance(ref, inside, online=True)
    assert choice.chosen in ("global", "shrunk")
    assert choice.heldout_loglik["per-example"] < choice.heldout_loglik[choice.chosen]


def test_the_choice_is_the_option_with_the_best_heldout_likelihood():
    ref, _ = _planted(12, 300, spread=0.8, seed=3)
    out = np.zeros(ref.shape, dtype=bool)  # offline: every reference model holds every candidate OUT
    choice = choose_variance(ref, out, online=False)
    assert set(choice.heldout_loglik) == {"global", "per-example", "shrunk"}
    expected = {v: heldout_loglik(ref, out, v) for v in choice.heldout_loglik}
    assert choice.heldout_loglik == pytest.approx(expected)
    assert choice.chosen == max(expected, key=expected.__getitem__)


def test_too_few_models_per_side_keep_global_and_say_why():
    ref, inside = _planted(4, 50, spread=1.0)
    choice = choose_variance(ref, inside, online=True)
    assert choice.chosen == "global" and "fewer than 3" in choice.reason and choice.heldout_loglik == {}


def test_auto_scores_equal_the_scores_of_the_option_it_chooses():
    ref, inside = _planted(16, 200, spread=1.2, seed=1)
    t = np.random.default_rng(9).normal(size=200)
    chosen = choose_variance(ref, inside, online=True).chosen
    auto = likelihood_scores(t, ref, inside, online=True, variance="auto")
    assert np.array_equal(auto, likelihood_scores(t, ref, inside, online=True, variance=chosen))


def test_unknown_variance_names_the_choices():
    with pytest.raises(InvalidInputError, match="global, per-example, shrunk"):
        fit(np.zeros((2, 2)), np.ones((2, 2), dtype=bool), "pooled")
