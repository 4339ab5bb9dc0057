"""Issue 31, items 1 and 2: the empirical epsilon lower bound against closed forms and its error rate, and the
check of a DP claim on a memorising target and on DP-SGD targets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _trained_target import true_label_probabilities

from labelleak.counts import clopper_pearson
from labelleak.epsilon import (
    _cp_ends,
    bonferroni_confidence,
    bound_from_counts,
    check_claim,
    epsilon_lower_bound,
    selection_split,
)
from labelleak.errors import InvalidInputError


def _closed_form(n_m: int, n_n: int, delta: float, confidence: float) -> float:
    """Perfect separation on ``n_m`` and ``n_n`` evaluation candidates: Clopper-Pearson gives TPR_low =
    (alpha/2)^(1/n_m) at n_m of n_m, FPR_high = 1 - (alpha/2)^(1/n_n) at 0 of n_n."""
    half = (1 - confidence) / 2
    q_m, q_n = half ** (1 / n_m), half ** (1 / n_n)
    forms = [math.log((q_m - delta) / (1 - q_n)), math.log((q_n - delta) / (1 - q_m))]
    return max(0.0, *forms)


def _separated(n_m: int, n_n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    member = np.r_[np.ones(n_m, bool), np.zeros(n_n, bool)]
    score = np.where(member, rng.uniform(2, 3, n_m + n_n), rng.uniform(0, 1, n_m + n_n))
    return member, score


@pytest.mark.parametrize(
    ("n_m", "n_n", "delta", "confidence"),
    [(200, 200, 1e-5, 0.95), (40, 100, 1e-5, 0.95), (100, 40, 1e-3, 0.9), (1000, 1000, 0.0, 0.99)],
)
def test_perfect_separation_gives_the_closed_form(n_m, n_n, delta, confidence):
    member, score = _separated(n_m, n_n)
    b = epsilon_lower_bound(member, score, delta=delta, confidence=confidence, seed=3)
    ev_m, ev_n = n_m - n_m // 2, n_n - n_n // 2  # the evaluation half gets the odd one
    assert (b.n_members, b.n_nonmembers, b.n_selection) == (ev_m, ev_n, n_m // 2 + n_n // 2)
    assert (b.tp, b.fp) == (ev_m, 0) and 1 < b.threshold < 2  # midway between the groups
    assert b.eps_lb == pytest.approx(_closed_form(ev_m, ev_n, delta, confidence), rel=1e-9)
    assert (b.delta, b.confidence) == (delta, confidence)


def test_the_numbers_of_the_closed_form():
    # 100 + 100 evaluation candidates at 95%: TPR_low = 0.025^(1/100) = 0.96378, eps = ln(0.96377 / 0.03622)
    b = epsilon_lower_bound(*_separated(200, 200))
    assert b.tpr_low == pytest.approx(0.9637833, abs=1e-7) and b.fpr_high == pytest.approx(0.0362167, abs=1e-7)
    assert b.eps_lb == pytest.approx(3.28134, abs=1e-5) and b.form == "tpr/fpr"


def test_the_complementary_form_wins_when_members_are_never_missed_but_nonmembers_often_flagged():
    # every member and 90 of 100 non-members flagged: TPR/FPR says almost nothing, (1 - FPR)/(1 - TPR) a lot
    eps, form, lo, hi = bound_from_counts(100, 90, 100, 100, delta=1e-5, confidence=0.95)
    tnr_low = 1 - clopper_pearson(90, 100)[1]
    assert form == "tnr/fnr" and eps == pytest.approx(math.log((tnr_low - 1e-5) / (1 - 0.025 ** (1 / 100))))
    assert bound_from_counts(50, 50, 100, 100, delta=1e-5, confidence=0.95)[:2] == (0.0, "none")
    assert bound_from_counts(5, 0, 0, 100, delta=1e-5, confidence=0.95)[:2] == (0.0, "none")


def test_the_selection_uses_the_same_clopper_pearson_ends_as_scipys_binomtest():
    k = np.array([0, 1, 7, 49, 50])
    low, high = _cp_ends(k, 50, 0.95)
    for i, kk in enumerate(k):
        assert (low[i], high[i]) == pytest.approx(clopper_pearson(int(kk), 50, level=0.95), abs=1e-9)


def test_the_threshold_is_chosen_on_the_selection_half_only():
    member, score = _separated(60, 60, seed=1)
    chosen = selection_split(member, seed=0)
    assert chosen[member].sum() == 30 and chosen[~member].sum() == 30
    b = epsilon_lower_bound(member, score, seed=0)
    moved = score.copy()
    moved[~chosen] = np.random.default_rng(9).uniform(0, 3, (~chosen).sum())  # the evaluation half only
    again = epsilon_lower_bound(member, moved, seed=0)
    assert again.threshold == b.threshold and again.eps_lb < b.eps_lb


@pytest.mark.parametrize("confidence", [0.95, 0.8])
def test_random_scores_exceed_zero_at_most_at_the_stated_error_rate(confidence):
    # at 80%, choosing the threshold on the evaluation candidates themselves exceeds 0 in 60 of these 200 repeats
    # (30%, above the 26% allowed); the disjoint halves in 1
    alpha, repeats, over = 1 - confidence, 200, 0
    for seed in range(repeats):
        rng = np.random.default_rng(seed)
        member = rng.permutation(np.r_[np.ones(100, bool), np.zeros(100, bool)])
        over += epsilon_lower_bound(member, rng.normal(size=200), confidence=confidence, seed=seed).eps_lb > 0
    assert over / repeats <= alpha + 2 * math.sqrt(alpha * (1 - alpha) / repeats)  # 0.081 at 95%, 0.257 at 80%


def test_the_best_of_several_random_attacks_stays_at_the_error_rate_with_bonferroni():
    alpha, attacks, repeats, over = 0.05, 4, 100, 0
    level = bonferroni_confidence(1 - alpha, attacks)
    assert level == pytest.approx(1 - alpha / attacks)
    for seed in range(repeats):
        rng = np.random.default_rng(1000 + seed)
        member = rng.permutation(np.r_[np.ones(60, bool), np.zeros(60, bool)])
        best = max(epsilon_lower_bound(member, rng.normal(size=120), confidence=level).eps_lb for _ in range(attacks))
        over += best > 0
    assert over / repeats <= alpha + 2 * math.sqrt(alpha * (1 - alpha) / repeats)  # 0.094


def test_bad_input_is_refused_with_the_parameter_named():
    with pytest.raises(InvalidInputError, match="delta: expected a value in"):
        epsilon_lower_bound([1, 0], [1.0, 0.0], delta=1.5)
    with pytest.raises(InvalidInputError, match="confidence: expected a value in"):
        epsilon_lower_bound([1, 0], [1.0, 0.0], confidence=1.0)
    with pytest.raises(InvalidInputError, match="score contains NaN"):
        epsilon_lower_bound([1, 0], [1.0, float("nan")])
    with pytest.raises(InvalidInputError, match="equal length"):
        epsilon_lower_bound([1, 0, 1], [1.0, 0.0])
    with pytest.raises(InvalidInputError, match="at least one bound"):
        bonferroni_confidence(0.95, 0)
    assert epsilon_lower_bound([1, 1, 1], [3.0, 2.0, 1.0]).eps_lb == 0.0  # no non-members: nothing to bound


def test_a_planted_memorising_target_refutes_a_claim_of_half_an_epsilon():
    b = epsilon_lower_bound(*_separated(100, 100), delta=1e-5)
    check = check_claim(b, 0.5, 1e-5)
    assert check.refuted and check.eps_lb == pytest.approx(_closed_form(50, 50, 1e-5, 0.95))
    assert not check_claim(b, 10.0, 1e-5).refuted  # a bound below the claim cannot refute it
    with pytest.raises(InvalidInputError, match="the bound is at delta 1e-05, the claim at delta 0.001"):
        check_claim(b, 0.5, 1e-3)
    with pytest.raises(InvalidInputError, match="claimed epsilon: expected a number >= 0"):
        check_claim(b, -1.0, 1e-5)


def _trained_scores(seed: int, *, dp: bool) -> tuple[np.ndarray, np.ndarray, float | None]:
    """The first 100 of 200 random-label rows are the members, the other 100 the non-members."""
    member = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    score, spent = true_label_probabilities(member, seed, dp=dp)
    return member, score, spent


def test_a_trained_memorising_target_is_refuted_at_half_an_epsilon():
    member, score, _ = _trained_scores(0, dp=False)
    b = epsilon_lower_bound(member, score, delta=1e-5, seed=0)
    assert check_claim(b, 0.5, 1e-5).refuted and b.eps_lb > 1.0  # about 2 on this seed


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_dp_sgd_target_at_epsilon_one_is_never_refuted(seed):
    member, score, spent = _trained_scores(seed, dp=True)
    assert spent is not None and spent <= 1.0 + 1e-9  # the accountant's epsilon of the model trained
    b = epsilon_lower_bound(member, score, delta=1e-5, seed=seed)
    assert not check_claim(b, 1.0, 1e-5).refuted and b.eps_lb <= 1.0
