"""A one-run DP audit: the epsilon lower bound of Steinke, Nasr & Jagielski, "Privacy Auditing with One (1)
Training Run" (NeurIPS 2023), read from membership scores.

**The game.** Each of ``m`` candidates is included in the training set independently with probability 1/2, the
target is trained once, and the auditor guesses "in" for ``k+`` candidates, "out" for ``k-`` and abstains on the
rest (``r = k+ + k-`` guesses). For (epsilon, delta)-DP training their main theorem (Theorem 3.1) bounds the
number ``v`` of correct guesses: with ``q = e^eps / (1 + e^eps)`` and ``X ~ Binomial(r, q)``,

    P[v correct or more] <= P[X >= v] + 2 m delta * max_{i = 1..v} P[v - i <= X < v] / i.

With delta = 0 the count is no better than ``r`` flips of a coin that lands right with probability ``q``; delta
enters once per candidate (``2 m delta``), abstentions included, so abstaining is not free when delta > 0.

**The bound.** ``eps_LB`` is the largest epsilon whose p-value above is at most ``beta`` (default 0.05: 95%
confidence). The p-value grows with epsilon whenever ``2 m delta <= 1`` (its derivative in ``q`` is at least
``r P[Binomial(r - 1, q) = v - 1] (1 - 2 m delta)``), so the set of rejected epsilons is an interval from 0 and
``eps_LB`` is its end; a larger ``2 m delta`` is refused. At delta = 0 the end is closed form:
``q* = Beta(v, r - v + 1).ppf(beta)`` (the one-sided Clopper-Pearson lower bound of ``v / r``), ``eps = logit(q*)``.

**Guesses from scores.** Higher score = member: "in" for the ``k+`` highest, "out" for the ``k-`` lowest, ties
broken by a seeded permutation (never by membership). ``k+`` and ``k-`` are tuned on the selection half of
:func:`labelleak.epsilon.selection_split` (at delta = 0, over :data:`FRACTIONS` of the half) and used once on the
evaluation half, so the evaluation count sees one test. Each half is balanced first (the larger group cut to the
smaller's size by the seed): an unequal pool is not the fair coin the game assumes. Canaries that were each
included by their own coin (``coins=True``) are the game itself: they are halved by a seeded permutation that
never reads membership, and nothing is cut.

>>> round(epsilon_from_guesses(100, 100, 100, delta=0.0), 3)  # every one of 100 guesses right
3.493
>>> epsilon_from_guesses(100, 100, 50, delta=0.0)  # half right: a coin
0.0
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit, logit
from scipy.stats import beta as beta_dist
from scipy.stats import binom

from labelleak.epsilon import selection_split
from labelleak.errors import InvalidInputError

DEFAULT_BETA = 0.05  # 95% confidence
ONE_RUN_STREAM = 37  # keys the balancing and the tie-breaks apart from other streams of the same seed
FRACTIONS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)  # k+ and k- as fractions of the candidates
MIN_GUESSES = 5  # all of 4 right has p = 1/16 > 0.05: fewer can never reject epsilon = 0 at 95%
ASSUMPTION = (
    "each candidate was put in the training set at random (probability 1/2, independently of the others) and the "
    "target was trained once on the result"
)
METHOD = (
    "Steinke, Nasr & Jagielski 2023 (one training run), Theorem 3.1: guess in for the k+ highest scores, out for "
    "the k- lowest, abstain on the rest; k+ and k- tuned on the selection half, the count of correct guesses on the "
    "evaluation half (each half balanced by the seed, unless the candidates are canaries of independent coins); "
    "eps_LB is the largest epsilon the count rejects at 1 - beta"
)


def _check_counts(m: int, r: int, v: int, delta: float, beta: float) -> None:
    if not 0 <= v <= r <= m:
        raise InvalidInputError(f"one-run audit: expected 0 <= correct <= guesses <= candidates, got {v}, {r}, {m}")
    if not 0.0 <= delta < 1.0:
        raise InvalidInputError(f"delta: expected a value in [0, 1), got {delta}")
    if 2 * m * delta > 1.0:
        raise InvalidInputError(
            f"one-run audit: 2 m delta = {2 * m * delta:g} > 1 for {m} candidates at delta {delta:g}; "
            "use a smaller delta"
        )
    if not 0.0 < beta < 1.0:
        raise InvalidInputError(f"beta: expected a value in (0, 1), got {beta}")


def p_value(m: int, r: int, v: int, eps: float, *, delta: float) -> float:
    """The probability of ``v`` or more correct of ``r`` guesses on ``m`` candidates under (eps, delta)-DP:
    the theorem's bound, capped at 1."""
    q = float(expit(eps))
    tail = float(binom.sf(v - 1, r, q))  # P[X >= v]
    if delta == 0.0 or v == 0:
        return min(tail, 1.0)
    below = binom.pmf(np.arange(v - 1, -1, -1), r, q)  # P[X = v-1], P[X = v-2], ..., P[X = 0]
    alpha = float(np.max(np.cumsum(below) / np.arange(1, v + 1)))  # max_i P[v - i <= X < v] / i
    return min(tail + 2 * m * delta * alpha, 1.0)


def _eps_at_delta0(r: np.ndarray, v: np.ndarray, beta: float) -> np.ndarray:
    """The closed-form bound at delta = 0 for arrays of ``(r, v)``: ``max(0, logit(Beta(v, r-v+1).ppf(beta)))``."""
    r, v = np.asarray(r, np.float64), np.asarray(v, np.float64)
    q = np.where(v > 0, beta_dist.ppf(beta, np.maximum(v, 1), np.maximum(r - v + 1, 1)), 0.0)
    with np.errstate(divide="ignore"):
        return np.where(q > 0.5, logit(np.clip(q, 0.5, 1.0)), 0.0)


def epsilon_from_guesses(m: int, r: int, v: int, *, delta: float, beta: float = DEFAULT_BETA) -> float:
    """The largest epsilon that ``v`` correct of ``r`` guesses on ``m`` candidates reject at confidence
    ``1 - beta`` for (epsilon, ``delta``)-DP; 0 when even epsilon = 0 is not rejected."""
    _check_counts(m, r, v, delta, beta)
    top = float(_eps_at_delta0(np.array(r), np.array(v), beta))  # delta only adds to the p-value: an upper end
    if delta == 0.0 or top == 0.0:
        return top

    def excess(eps: float) -> float:  # nondecreasing in eps (see the module's docstring)
        return p_value(m, r, v, eps, delta=delta) - beta

    if excess(0.0) > 0.0:
        return 0.0
    if excess(top) <= 0.0:  # numerically at the closed form's end
        return top
    return float(brentq(excess, 0.0, top, xtol=1e-10, rtol=1e-12))


def guesses(is_member: np.ndarray, order: np.ndarray, k_plus: np.ndarray, k_minus: np.ndarray) -> np.ndarray:
    """Correct guesses for every ``(k+, k-)`` pair at once: ``order`` ranks the candidates from the highest score
    down; "in" is right for a member among the first ``k+``, "out" for a non-member among the last ``k-``."""
    ranked = np.asarray(is_member, bool)[order]
    in_right = np.r_[0, np.cumsum(ranked)]  # members among the first k
    out_right = np.r_[0, np.cumsum(~ranked[::-1])]  # non-members among the last k
    return in_right[np.asarray(k_plus)] + out_right[np.asarray(k_minus)]


def _ranking(score: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Candidates from the highest score down, ties in a seeded random order."""
    return np.lexsort((rng.permutation(len(score)), -score))


def _balanced(member: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of all of the smaller group and as many of the larger, drawn by ``rng``."""
    ins, outs = np.flatnonzero(member), np.flatnonzero(~member)
    n = min(len(ins), len(outs))
    return np.sort(np.r_[rng.permutation(ins)[:n], rng.permutation(outs)[:n]])


def _pairs(m: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(k+, k-)`` grid for ``m`` candidates: :data:`FRACTIONS` of ``m``, at least one guess."""
    ks = np.unique(np.round(np.asarray(FRACTIONS) * m).astype(np.int64))
    kp, km = (a.ravel() for a in np.meshgrid(ks, ks, indexing="ij"))
    keep = (kp + km >= 1) & (kp + km <= m)
    return kp[keep], km[keep]


@dataclass(frozen=True)
class Tuning:
    """The guessing rule chosen on the selection half: fractions of the candidates to guess in and out, and the
    bound (at delta = 0) it reached there."""

    in_fraction: float
    out_fraction: float
    selection_eps: float
    n_selection: int


def selection_half(is_member: Any, seed: int = 0, *, coins: bool = False) -> np.ndarray:
    """The selection half's mask: :func:`labelleak.epsilon.selection_split` (half of each group), or, for canaries
    of independent coins, the first half of a seeded permutation, which never reads membership (a split by group
    would fix how many members each half holds, and the game's coins would no longer be independent)."""
    member = np.asarray(is_member, bool)
    if not coins:
        return selection_split(member, seed)
    chosen = np.zeros(len(member), bool)
    chosen[np.random.default_rng([seed, ONE_RUN_STREAM, 2]).permutation(len(member))[: len(member) // 2]] = True
    return chosen


def tune(is_member: Any, score: Any, *, beta: float = DEFAULT_BETA, seed: int = 0, coins: bool = False) -> Tuning:
    """The ``(k+, k-)`` fractions whose bound (delta = 0) is largest on these candidates, balanced by ``seed``
    (all of them, for canaries of independent ``coins``)."""
    rng = np.random.default_rng([seed, ONE_RUN_STREAM, 0])
    member, s = np.asarray(is_member, bool), np.asarray(score, np.float64)
    keep = np.arange(len(member)) if coins else _balanced(member, rng)
    m = len(keep)
    if m == 0:
        return Tuning(0.0, 0.0, 0.0, 0)
    kp, km = _pairs(m)
    v = guesses(member[keep], _ranking(s[keep], rng), kp, km)
    eps = _eps_at_delta0(kp + km, v, beta)
    best = int(np.argmax(eps))  # first of the best: the smallest k+, then k-, on the grid
    return Tuning(float(kp[best] / m), float(km[best] / m), float(eps[best]), m)


@dataclass(frozen=True)
class OneRunBound:
    """A one-run epsilon lower bound with the counts it rests on: ``correct`` of ``guesses`` (``k_plus`` in,
    ``k_minus`` out) right among ``m`` evaluation candidates; ``eps_lb`` is ``None`` and ``na`` says why where
    the evaluation half cannot reject epsilon = 0 even with every guess right."""

    eps_lb: float | None
    eps_lb_max: float  # what this m could show at most: every candidate guessed, every guess right
    m: int
    guesses: int
    correct: int
    k_plus: int
    k_minus: int
    in_fraction: float
    out_fraction: float
    selection_eps: float  # the tuned rule's bound (delta = 0) on the selection half
    n_selection: int
    delta: float
    beta: float
    confidence: float
    na: str | None = None
    method: str = METHOD

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def one_run_bound(
    is_member: Any,
    score: Any,
    *,
    delta: float,
    beta: float = DEFAULT_BETA,
    seed: int = 0,
    tuned: Tuning | None = None,
    coins: bool = False,
) -> OneRunBound:
    """The one-run bound of ``score`` (higher = member): tuned on the selection half of :func:`selection_half`
    (or ``tuned``, when the caller tuned it there), counted once on the evaluation half; ``coins``: the candidates
    are canaries, each included by its own coin (halved blind to membership, never balanced).

    ``is_member``, ``score``: (N,)."""
    member, s = np.asarray(is_member, bool), np.asarray(score, np.float64)
    if member.ndim != 1 or s.shape != member.shape:
        raise InvalidInputError(f"one-run audit: is_member and score must be 1-D of equal length, got {member.shape}")
    if np.isnan(s).any():
        raise InvalidInputError("one-run audit: score contains NaN")
    chosen = selection_half(member, seed, coins=coins)
    rule = tuned if tuned is not None else tune(member[chosen], s[chosen], beta=beta, seed=seed, coins=coins)
    rng = np.random.default_rng([seed, ONE_RUN_STREAM, 1])
    ev = np.flatnonzero(~chosen)
    keep = ev if coins else ev[_balanced(member[ev], rng)]
    m = len(keep)
    kp, km = round(rule.in_fraction * m), round(rule.out_fraction * m)
    if kp + km > m:  # rounding both up
        km = m - kp
    v = int(guesses(member[keep], _ranking(s[keep], rng), np.array([kp]), np.array([km]))[0]) if m else 0
    _check_counts(0, 0, 0, delta, beta)  # delta and beta alone: a large 2 m delta is an n/a below, not an error
    too_many = 2 * m * delta > 1.0
    most = epsilon_from_guesses(m, m, m, delta=delta, beta=beta) if m and not too_many else 0.0
    na = None
    if too_many:
        na = f"2 m delta = {2 * m * delta:g} > 1 ({m} candidates at delta {delta:g}): the theorem needs a smaller delta"
    elif most == 0.0:
        na = (
            f"{m} {'' if coins else 'balanced '}evaluation candidates cannot reject epsilon = 0 at {1 - beta:.0%} "
            f"even if every guess were right (at least {MIN_GUESSES} guesses needed)"
        )
    elif kp + km == 0:
        na = "the selection half found no guessing rule that leaks (no guess is made)"
    eps = None if na else epsilon_from_guesses(m, kp + km, v, delta=delta, beta=beta)
    return OneRunBound(
        eps_lb=eps,
        eps_lb_max=most,
        m=m,
        guesses=kp + km,
        correct=v,
        k_plus=kp,
        k_minus=km,
        in_fraction=rule.in_fraction,
        out_fraction=rule.out_fraction,
        selection_eps=rule.selection_eps,
        n_selection=rule.n_selection,
        delta=delta,
        beta=beta,
        confidence=1.0 - beta,
        na=na,
    )
