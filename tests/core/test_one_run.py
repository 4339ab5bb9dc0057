"""Issue 31, item 3: the one-run DP audit (Steinke, Nasr & Jagielski 2023) against hand computations of its
theorem, its properties, the guessing rule tuned on one half and counted on the other, and its error rate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _trained_target import true_label_probabilities
from hypothesis import given, settings
from hypothesis import strategies as st

from labelleak.errors import InvalidInputError
from labelleak.one_run import epsilon_from_guesses, guesses, one_run_bound, p_value, selection_half


def _theorem(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """The theorem's p-value written out with binomial coefficients: P[X >= v] + 2 m delta max_i P[v-i <= X < v] / i
    for X ~ Binomial(r, e^eps / (1 + e^eps))."""
    q = math.exp(eps) / (1 + math.exp(eps))
    pmf = [math.comb(r, j) * q**j * (1 - q) ** (r - j) for j in range(r + 1)]
    tail = sum(pmf[v:])
    alpha = max((sum(pmf[v - i : v]) / i for i in range(1, v + 1)), default=0.0)
    return min(tail + 2 * m * delta * alpha, 1.0)


def test_every_guess_right_gives_the_closed_form():
    # delta = 0: P[X >= r] = q^r, so the bound is logit(beta^(1/r)); 100 right of 100: 3.493
    q = 0.05 ** (1 / 100)
    assert epsilon_from_guesses(100, 100, 100, delta=0.0) == pytest.approx(math.log(q / (1 - q)), rel=1e-9)
    assert math.log(q / (1 - q)) == pytest.approx(3.4930, abs=1e-4)
    q5 = 0.05 ** (1 / 5)  # 5 right of 5: the fewest guesses that reject epsilon = 0 (2^-5 < 0.05 < 2^-4)
    assert epsilon_from_guesses(5, 5, 5, delta=0.0) == pytest.approx(math.log(q5 / (1 - q5)), rel=1e-9)
    assert epsilon_from_guesses(4, 4, 4, delta=0.0) == 0.0


@pytest.mark.parametrize(("r", "v"), [(100, 50), (1000, 500), (1000, 520), (7, 4)])
def test_about_half_right_is_a_coin_and_gives_zero(r, v):
    assert epsilon_from_guesses(2 * r, r, v, delta=0.0) == 0.0
    assert epsilon_from_guesses(2 * r, r, v, delta=1e-5) == 0.0


@pytest.mark.parametrize(("m", "r", "v", "eps", "delta"), [(20, 10, 10, 2.0, 1e-3), (200, 60, 45, 0.7, 1e-3)])
def test_the_p_value_is_the_theorem(m, r, v, eps, delta):
    assert p_value(m, r, v, eps, delta=delta) == pytest.approx(_theorem(m, r, v, eps, delta), rel=1e-10)
    assert p_value(m, r, v, eps, delta=0.0) == pytest.approx(_theorem(m, r, v, eps, 0.0), rel=1e-10)


def test_delta_lowers_the_bound_at_the_theorem_s_root():
    at0 = epsilon_from_guesses(1000, 200, 180, delta=0.0)
    at = epsilon_from_guesses(1000, 200, 180, delta=1e-4)
    assert 0.0 < at < at0
    assert _theorem(1000, 200, 180, at, 1e-4) == pytest.approx(0.05, abs=1e-8)  # the largest rejected epsilon
    assert _theorem(1000, 200, 180, at + 1e-3, 1e-4) > 0.05
    # delta is charged per candidate, abstentions included: the same guesses among more candidates prove less
    assert epsilon_from_guesses(4000, 200, 180, delta=1e-4) < at


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((10, 5, 6), "expected 0 <= correct <= guesses <= candidates, got 6, 5, 10"),
        ((1000, 10, 10), r"2 m delta = 2 > 1 for 1000 candidates at delta 0.001"),
    ],
)
def test_bad_counts_are_refused(args, message):
    with pytest.raises(InvalidInputError, match=message):
        epsilon_from_guesses(*args, delta=1e-3)


@settings(max_examples=60, deadline=None)
@given(
    r=st.integers(1, 300),
    frac=st.floats(0.0, 1.0),
    delta=st.sampled_from([0.0, 1e-6, 1e-4]),
    extra=st.integers(0, 500),
)
def test_more_correct_never_lowers_and_more_delta_never_raises_the_bound(r, frac, delta, extra):
    m = r + extra
    v = round(frac * r)
    eps = epsilon_from_guesses(m, r, v, delta=delta)
    assert eps >= 0.0
    if v < r:
        assert epsilon_from_guesses(m, r, v + 1, delta=delta) >= eps
    assert epsilon_from_guesses(m, r, v, delta=delta + 1e-4) <= eps
    if eps > 0:  # the bound is the end of the rejected interval: rejected at it, not just above it
        assert p_value(m, r, v, eps, delta=delta) <= 0.05 + 1e-9
        assert p_value(m, r, v, eps + 1e-3, delta=delta) > 0.05


@settings(max_examples=40, deadline=None)
@given(r=st.integers(1, 200), frac=st.floats(0.0, 1.0), e1=st.floats(0.0, 6.0), e2=st.floats(0.0, 6.0))
def test_the_p_value_grows_with_epsilon(r, frac, e1, e2):
    v, lo, hi = round(frac * r), min(e1, e2), max(e1, e2)
    m = 2 * r
    assert p_value(m, r, v, lo, delta=1e-3) <= p_value(m, r, v, hi, delta=1e-3) + 1e-12


def test_guesses_count_members_on_top_and_non_members_at_the_bottom():
    member = np.array([1, 1, 0, 1, 0, 0], bool)  # already ranked from the highest score down
    order = np.arange(6)
    found = guesses(member, order, np.array([0, 2, 3, 1]), np.array([1, 0, 2, 3]))
    assert found.tolist() == [1, 2, 4, 3]  # k+ = 3: two members of three; k- = 2: both non-members


def _separated(n_m: int, n_n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    member = rng.permutation(np.r_[np.ones(n_m, bool), np.zeros(n_n, bool)])
    return member, np.where(member, 1.0, 0.0) + rng.uniform(0, 0.1, n_m + n_n)


def test_perfect_separation_guesses_every_evaluation_candidate_right():
    member, score = _separated(200, 200)
    b = one_run_bound(member, score, delta=1e-5, seed=0)
    assert (b.m, b.n_selection, b.k_plus, b.k_minus, b.correct) == (200, 200, 100, 100, 200)
    assert b.eps_lb == pytest.approx(epsilon_from_guesses(200, 200, 200, delta=1e-5)) and b.eps_lb == b.eps_lb_max
    assert b.na is None and b.confidence == 0.95


def test_unequal_groups_are_balanced_and_ties_do_not_leak():
    member, score = _separated(300, 100)
    b = one_run_bound(member, score, delta=1e-5, seed=1)
    assert b.m == 100 and b.n_selection == 100  # 50 + 50 in each half: the larger group cut to the smaller
    flat = one_run_bound(member, np.zeros(400), delta=1e-5, seed=1)  # every score tied: guesses are coin flips
    assert flat.eps_lb == 0.0


def test_canaries_of_independent_coins_are_halved_blind_to_membership_and_never_cut():
    member, score = _separated(300, 100)
    b = one_run_bound(member, score, delta=1e-5, seed=1, coins=True)
    assert b.m == 200 and b.n_selection == 200  # every canary counts, whatever the coins gave
    assert b.correct == b.guesses > 0  # separated: every guess right, tuned on the other half
    halves = [selection_half(np.r_[np.ones(k, bool), np.zeros(400 - k, bool)], 3, coins=True) for k in (100, 300)]
    assert np.array_equal(*halves)  # the halves do not depend on who is a member


def test_a_tiny_sample_is_na_with_its_reason():
    member, score = _separated(3, 3)  # 2 + 2 evaluation candidates: 4 right of 4 has p = 1/16
    b = one_run_bound(member, score, delta=1e-5, seed=0)
    assert b.eps_lb is None and b.eps_lb_max == 0.0
    assert b.na == (
        "4 balanced evaluation candidates cannot reject epsilon = 0 at 95% even if every guess were right "
        "(at least 5 guesses needed)"
    )
    wide = one_run_bound(*_separated(200, 200), delta=0.01, seed=0)
    assert wide.eps_lb is None and wide.na.startswith("2 m delta = 4 > 1 (200 candidates at delta 0.01)")


def test_random_scores_rarely_reject_epsilon_zero():
    # the rule is tuned on the selection half and counted once on the evaluation half: random scores give a
    # positive bound with probability at most 5%: about 10 of 200 repeats, and more than 22 has odds below 1e-3
    rng = np.random.default_rng(11)
    positive = 0
    for seed in range(200):
        member = rng.permutation(np.r_[np.ones(100, bool), np.zeros(100, bool)])
        b = one_run_bound(member, rng.normal(size=200), delta=1e-5, seed=seed)
        positive += bool(b.eps_lb)
    assert positive <= 22


def test_random_scores_on_coin_canaries_rarely_reject_epsilon_zero():
    # the game itself: 200 canaries each a member by its own coin, random scores; as above, at most ~5% positive
    rng = np.random.default_rng(12)
    positive = 0
    for seed in range(200):
        member = rng.random(200) < 0.5
        b = one_run_bound(member, rng.normal(size=200), delta=1e-5, seed=seed, coins=True)
        positive += bool(b.eps_lb)
    assert positive <= 22


def _one_run_game(seed: int, *, dp: bool) -> tuple[float | None, float | None]:
    """The paper's game played for real: each of 200 rows is a canary put in the training set by its own coin
    (probability 1/2), the target is trained once, and the probability it gives each canary's label is the score."""
    member = np.random.default_rng(1000 + seed).random(200) < 0.5
    score, spent = true_label_probabilities(member, seed, dp=dp)
    return one_run_bound(member, score, delta=1e-5, seed=seed, coins=True).eps_lb, spent


def test_a_non_private_training_run_refutes_a_small_epsilon():
    eps_lb, spent = _one_run_game(0, dp=False)
    assert spent is None and eps_lb is not None and eps_lb > 0.5  # memorised random labels: far above 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_dp_sgd_run_at_epsilon_one_stays_below_its_epsilon(seed):
    eps_lb, spent = _one_run_game(seed, dp=True)
    assert spent is not None and spent <= 1.0 + 1e-9  # the accountant's epsilon of the run
    assert eps_lb is not None and eps_lb <= spent
