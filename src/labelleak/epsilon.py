"""Empirical lower bounds on the epsilon of (epsilon, delta)-differential privacy, from membership scores.

An (epsilon, delta)-DP training algorithm bounds every membership test ``score >= t`` (Kairouz, Oh & Viswanath,
ICML 2015, Theorem 2.4; used for auditing by Jagielski, Ullman & Oprea, NeurIPS 2020):

    TPR <= e^eps FPR + delta        and        1 - FPR <= e^eps (1 - TPR) + delta,

so ``eps >= ln((TPR - delta) / FPR)`` and ``eps >= ln((1 - FPR - delta) / (1 - TPR))``. A bound that holds with
confidence ``1 - alpha`` replaces TPR by its lower and FPR by its upper Clopper-Pearson bound. The protocol, stated
once (docs/guide/verdict.md shows this text):

* **Split.** Members and non-members are each split by a seeded permutation (:func:`selection_split`): ``n // 2``
  choose the threshold (the selection half), the rest give the bound (the evaluation half). The threshold is the
  one maximising the bound on the selection half; the evaluation half sees one threshold only, so no correction
  for the choice among thresholds is needed.
* **Confidence.** The two-sided Clopper-Pearson interval at level ``confidence`` (scipy's ``binomtest``, exact):
  its low end of TPR and its high end of FPR are each one-sided bounds at ``1 - alpha / 2``, so both hold at once
  with probability at least ``1 - alpha`` (union bound), and both forms above rest on that one event.
* **Several attacks.** The best of ``m`` attacks is chosen on the evaluation half, so each is bounded at
  ``1 - alpha / m`` (Bonferroni, :func:`bonferroni_confidence`) and the maximum holds at ``1 - alpha``.
* A bound is ``max(0, ...)``: 0 means the data show no leakage beyond what any epsilon allows.

Defaults: ``delta = 1e-5``, 95% confidence.

>>> b = epsilon_lower_bound([1] * 200 + [0] * 200, [1.0] * 200 + [0.0] * 200)
>>> round(b.eps_lb, 3), b.tp, b.fp, b.n_members, b.n_nonmembers
(3.281, 100, 0, 100, 100)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy.stats import beta

from labelleak.counts import clopper_pearson
from labelleak.errors import InvalidInputError

DEFAULT_DELTA = 1e-5
DEFAULT_CONFIDENCE = 0.95
SPLIT_STREAM = 31  # keys the selection split apart from other streams of the same seed (metrics uses 29)
Form = Literal["tpr/fpr", "tnr/fnr", "none"]
METHOD = (
    "threshold chosen on a seeded half of the members and of the non-members, bound on the other half; "
    "Clopper-Pearson (scipy binomtest, exact), two-sided at the confidence level: its TPR low and FPR high "
    "ends hold together at that level"
)


@dataclass(frozen=True)
class EpsilonBound:
    """An epsilon lower bound with the counts it rests on: ``tp`` of ``n_members`` and ``fp`` of
    ``n_nonmembers`` evaluation candidates score at or above ``threshold``."""

    eps_lb: float
    threshold: float  # NaN when no threshold could be chosen
    form: Form  # which inequality gave the bound ("none": the bound is 0)
    tp: int
    fp: int
    n_members: int  # evaluation half
    n_nonmembers: int
    n_selection: int  # candidates (members and non-members) that chose the threshold
    tpr_low: float
    fpr_high: float
    delta: float
    confidence: float
    method: str = METHOD

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(is_member: Any, score: Any, delta: float, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    m, s = np.asarray(is_member), np.asarray(score, dtype=np.float64)
    if m.ndim != 1 or s.shape != m.shape:
        raise InvalidInputError(f"epsilon: is_member and score must be 1-D of equal length, got {m.shape}, {s.shape}")
    if not np.isin(m, (0, 1)).all():
        raise InvalidInputError("epsilon: is_member must hold only 0/1 or booleans")
    if np.isnan(s).any():
        raise InvalidInputError("epsilon: score contains NaN")
    if not 0.0 <= delta < 1.0:
        raise InvalidInputError(f"delta: expected a value in [0, 1), got {delta}")
    if not 0.0 < confidence < 1.0:
        raise InvalidInputError(f"confidence: expected a value in (0, 1), got {confidence}")
    return m.astype(bool), s


def bonferroni_confidence(confidence: float, m: int) -> float:
    """The level of each of ``m`` bounds whose best is reported at ``confidence``: ``1 - (1 - confidence) / m``."""
    if m < 1:
        raise InvalidInputError(f"bonferroni_confidence: expected at least one bound, got {m}")
    return 1.0 - (1.0 - confidence) / m


def selection_split(is_member: Any, seed: int = 0) -> np.ndarray:
    """A boolean mask of the selection half: ``n // 2`` of the members and ``n // 2`` of the non-members, by a
    seeded permutation of each (the evaluation half is the rest, and gets the odd one)."""
    m = np.asarray(is_member, dtype=bool)
    chosen = np.zeros(len(m), dtype=bool)
    rng = np.random.default_rng([seed, SPLIT_STREAM])
    for part in (np.flatnonzero(m), np.flatnonzero(~m)):
        chosen[part[rng.permutation(len(part))[: len(part) // 2]]] = True
    return chosen


def _forms(tpr_low: Any, fpr_high: Any, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Both inequalities' bounds (-inf where a form says nothing), elementwise."""
    lo, hi = np.asarray(tpr_low, np.float64), np.asarray(fpr_high, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where((lo > delta) & (hi > 0), np.log((lo - delta) / hi), -np.inf)
        b = np.where((1 - hi > delta) & (lo < 1), np.log((1 - hi - delta) / (1 - lo)), -np.inf)
    return a, b


def bound_from_counts(
    tp: int, fp: int, n_members: int, n_nonmembers: int, *, delta: float, confidence: float
) -> tuple[float, Form, float, float]:
    """``(eps_lb, form, tpr_low, fpr_high)`` of a test with ``tp`` of ``n_members`` and ``fp`` of ``n_nonmembers``
    flagged, from scipy's exact intervals; ``eps_lb`` is 0 (form ``none``) where neither form is positive."""
    if n_members == 0 or n_nonmembers == 0:
        return 0.0, "none", float("nan"), float("nan")
    tpr_low = clopper_pearson(tp, n_members, level=confidence)[0]
    fpr_high = clopper_pearson(fp, n_nonmembers, level=confidence)[1]
    a, b = (float(v) for v in _forms(tpr_low, fpr_high, delta))
    if max(a, b) <= 0.0:
        return 0.0, "none", tpr_low, fpr_high
    return (a, "tpr/fpr", tpr_low, fpr_high) if a >= b else (b, "tnr/fnr", tpr_low, fpr_high)


def _cp_ends(k: np.ndarray, n: int, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """The Clopper-Pearson interval's ends for every count in ``k`` at once, through the beta quantiles that
    define it: the selection half scores many thresholds, and only the ranking it gives is used."""
    half = (1.0 - confidence) / 2
    kf = k.astype(np.float64)
    low = np.where(k > 0, beta.ppf(half, np.maximum(kf, 1), n - kf + 1), 0.0)
    high = np.where(k < n, beta.ppf(1 - half, kf + 1, np.maximum(n - kf, 1)), 1.0)
    return low, high


def _choose_threshold(members: np.ndarray, nonmembers: np.ndarray, delta: float, confidence: float) -> float:
    """The cut (midway between adjacent distinct scores) whose bound is largest on these scores; NaN if none."""
    values = np.unique(np.concatenate([members, nonmembers]))[::-1]  # descending
    cuts = np.append(values[:-1] / 2 + values[1:] / 2, values[-1])  # same counts as ">= values", between them
    cuts = np.where(np.isfinite(cuts), cuts, np.append(values[:-1], values[-1]))
    sm, sn = np.sort(members), np.sort(nonmembers)
    tp = len(sm) - np.searchsorted(sm, cuts, side="left")
    fp = len(sn) - np.searchsorted(sn, cuts, side="left")
    lo = _cp_ends(tp, len(sm), confidence)[0]
    hi = _cp_ends(fp, len(sn), confidence)[1]
    a, b = _forms(lo, hi, delta)
    best = np.maximum(a, b)
    if not np.isfinite(best).any():
        return float("nan")
    return float(cuts[int(np.argmax(best))])


def epsilon_lower_bound(
    is_member: Any,
    score: Any,
    *,
    delta: float = DEFAULT_DELTA,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> EpsilonBound:
    """The epsilon lower bound of the test ``score >= t`` (higher score = member) at ``delta`` and ``confidence``:
    ``t`` chosen on the selection half of :func:`selection_split`, the bound computed on the evaluation half.

    ``is_member``, ``score``: (N,). Fewer than two members or two non-members give a bound of 0 (form ``none``)."""
    m, s = _check(is_member, score, delta, confidence)
    chosen = selection_split(m, seed)
    ev_m, ev_n = s[m & ~chosen], s[~m & ~chosen]
    threshold = float("nan")
    if (m & chosen).any() and (~m & chosen).any():
        threshold = _choose_threshold(s[m & chosen], s[~m & chosen], delta, confidence)
    tp, fp = int((ev_m >= threshold).sum()), int((ev_n >= threshold).sum())  # 0 and 0 at a NaN threshold
    none: tuple[float, Form, float, float] = (0.0, "none", float("nan"), float("nan"))
    eps, form, lo, hi = (
        none
        if math.isnan(threshold)
        else bound_from_counts(tp, fp, len(ev_m), len(ev_n), delta=delta, confidence=confidence)
    )
    return EpsilonBound(
        eps_lb=eps,
        threshold=threshold,
        form=form,
        tp=tp,
        fp=fp,
        n_members=len(ev_m),
        n_nonmembers=len(ev_n),
        n_selection=int(chosen.sum()),
        tpr_low=lo,
        fpr_high=hi,
        delta=delta,
        confidence=confidence,
    )


@dataclass(frozen=True)
class ClaimCheck:
    """Whether an audit's bound refutes a claimed ``(epsilon, delta)``: ``eps_lb`` (at the claimed delta) above
    the claimed epsilon refutes it at ``confidence``; a bound at or below it says nothing either way."""

    epsilon: float
    delta: float
    eps_lb: float
    confidence: float
    refuted: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_claim(bound: EpsilonBound, epsilon: float, delta: float, *, confidence: float | None = None) -> ClaimCheck:
    """The claim ``(epsilon, delta)`` against ``bound``, which must have been computed at the same ``delta``.

    ``confidence``: the level of the refutation when ``bound`` is the best of several, each at a Bonferroni level
    (default: the bound's own)."""
    if not epsilon >= 0.0:
        raise InvalidInputError(f"claimed epsilon: expected a number >= 0, got {epsilon}")
    if not math.isclose(bound.delta, delta, rel_tol=1e-12, abs_tol=0.0):
        raise InvalidInputError(f"check_claim: the bound is at delta {bound.delta}, the claim at delta {delta}")
    level = bound.confidence if confidence is None else confidence
    return ClaimCheck(float(epsilon), float(delta), bound.eps_lb, level, bound.eps_lb > epsilon)
