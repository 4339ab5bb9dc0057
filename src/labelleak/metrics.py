"""Membership-inference metrics: pure functions of ``(is_member, score)`` arrays, higher score = member.

Nothing here knows about attacks or models. Degenerate input (one class only) warns and returns NaN. The
conventions, stated once (docs/api/metrics.md shows this text):

* **TPR at FPR x** is the highest TPR over thresholds whose empirical FPR is at most x (``fpr <= x``), read off
  the ROC curve of all candidates (:func:`tpr_at_fpr`). LiRA's code (Carlini et al., S&P 2022) reads the largest
  TPR with ``fpr < x``; here ``<=`` is chosen once, so that 1% FPR on 100 non-members allows one false positive.
* **Resolvable.** An operating point at FPR x is reported only where the non-members that choose its threshold
  number at least ``ceil(1/x)``: fewer cannot show even one false positive at rate x, and the reading would be
  the TPR at zero false positives under another name. Below that, :func:`summarize` gives ``None`` with the
  reason (:func:`resolution`).
* **Exact interval** (:func:`exact_tpr_at_fpr`). A seeded half of the non-members (the calibration half) chooses
  the threshold; every member above it counts towards the TPR, with a Clopper-Pearson interval; the other half
  gives the realised FPR of that threshold with its own Clopper-Pearson interval. Both are valid at zero and one
  counts, where a percentile bootstrap is not. The calibration half must itself be resolvable, so the interval
  needs ``2 ceil(1/x)`` non-members in all. The threshold is the ``k``-th largest calibration score with
  ``k = floor(x (n + 1))``, so that a new non-member exceeds it with probability at most x (split conformal
  prediction: Vovk, Gammerman & Shafer, *Algorithmic Learning in a Random World*, 2005).
* **AUC** has a percentile bootstrap interval, members and non-members resampled apart, 1,000 resamples by
  default (:func:`bootstrap_auc`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from labelleak.counts import clopper_pearson, resolution
from labelleak.errors import InvalidInputError

DEFAULT_FPRS = (0.001, 0.01, 0.1)
DEFAULT_N_BOOT = 1000  # AUC bootstrap resamples


def _check(is_member: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(is_member)
    s = np.asarray(score, dtype=np.float64)
    if m.ndim != 1 or s.ndim != 1 or len(m) != len(s):
        raise InvalidInputError(f"metrics: is_member and score must be 1-D of equal length, got {m.shape}, {s.shape}")
    if not np.isin(m, (0, 1)).all():
        raise InvalidInputError("metrics: is_member must hold only 0/1 or booleans")
    if np.isnan(s).any():
        raise InvalidInputError("metrics: score contains NaN")
    return m.astype(bool), s


def _degenerate(m: np.ndarray) -> bool:
    if m.all() or not m.any():
        warnings.warn("metrics: need both members and non-members; returning NaN", RuntimeWarning, stacklevel=3)
        return True
    return False


def roc(is_member: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) of the ROC curve."""
    m, s = _check(is_member, score)
    if _degenerate(m):
        return np.array([np.nan]), np.array([np.nan]), np.array([np.nan])
    return roc_curve(m, s, drop_intermediate=False)


def auc(is_member: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (0.5 = chance)."""
    m, s = _check(is_member, score)
    return float("nan") if _degenerate(m) else float(roc_auc_score(m, s))


def tpr_at_fpr(is_member: np.ndarray, score: np.ndarray, fpr: float) -> float:
    """Highest TPR over thresholds whose FPR is at most ``fpr``."""
    if not 0.0 <= fpr <= 1.0:
        raise InvalidInputError(f"fpr: expected a value in [0, 1], got {fpr}")
    f, t, _ = roc(is_member, score)
    if np.isnan(f).any():
        return float("nan")
    ok = f <= fpr + 1e-12
    return float(t[ok].max()) if ok.any() else 0.0


def balanced_accuracy(is_member: np.ndarray, score: np.ndarray, threshold: float) -> float:
    """Mean of TPR and TNR when ``score >= threshold`` predicts member."""
    m, s = _check(is_member, score)
    if _degenerate(m):
        return float("nan")
    pred = s >= threshold
    return float(0.5 * (pred[m].mean() + (~pred[~m]).mean()))


def precision_recall(is_member: np.ndarray, score: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """(accuracy, precision, recall) of ``score >= threshold``; precision is NaN when nothing is predicted."""
    m, s = _check(is_member, score)
    pred = s >= threshold
    acc = float((pred == m).mean()) if len(m) else float("nan")
    prec = float(m[pred].mean()) if pred.any() else float("nan")
    rec = float(pred[m].mean()) if m.any() else float("nan")
    return acc, prec, rec


def threshold_best_balanced_accuracy(is_member: np.ndarray, score: np.ndarray) -> float:
    """The threshold maximising balanced accuracy (ties: the smallest such threshold)."""
    f, t, thr = roc(is_member, score)
    if np.isnan(f).any():
        return float("nan")
    best = int(np.argmax(0.5 * (t + 1.0 - f)))
    return float(min(thr[best], np.finfo(np.float64).max))


CROSSFIT_STREAM = 31  # keys the cross-fitting halves apart from the calibration split and the bootstrap


def crossfit_balanced_accuracy(is_member: np.ndarray, score: np.ndarray, *, seed: int = 0) -> float:
    """Balanced accuracy at a threshold never chosen on the candidates it is scored on.

    The candidates are halved (members and non-members apart, a seeded permutation); the best balanced-accuracy
    threshold of each half is applied to the other half, and the two balanced accuracies are averaged. The best
    threshold on all candidates would be optimistic: it is tuned on the test (issue 29, item 9)."""
    m, s = _check(is_member, score)
    if _degenerate(m) or min(int(m.sum()), int((~m).sum())) < 2:
        return float("nan")
    rng = np.random.default_rng([seed, CROSSFIT_STREAM])
    half = np.zeros(len(m), dtype=bool)
    for group in (np.flatnonzero(m), np.flatnonzero(~m)):
        half[rng.permutation(group)[: len(group) // 2]] = True
    accs = [
        balanced_accuracy(m[~side], s[~side], threshold_best_balanced_accuracy(m[side], s[side]))
        for side in (half, ~half)
    ]
    return float(np.mean(accs))


def threshold_from_percentile(reference_scores: np.ndarray, t: float) -> float:
    """The t-th percentile of scores of known non-members (Li & Zhang's data-free threshold on random noise)."""
    s = np.asarray(reference_scores, dtype=np.float64)
    if len(s) == 0 or np.isnan(s).any():
        raise InvalidInputError("threshold_from_percentile: need at least one finite reference score")
    if not 0.0 <= t <= 100.0:
        raise InvalidInputError(f"t: expected a percentile in [0, 100], got {t}")
    return float(np.percentile(s, t))


def threshold_sweep(
    is_member: np.ndarray,
    score: np.ndarray,
    reference_scores: np.ndarray,
    ts: tuple[float, ...] = tuple(range(0, 101, 10)),
) -> list[dict[str, float]]:
    """Accuracy, precision and recall when the threshold is the t-th percentile of ``reference_scores``.

    A candidate is predicted a member when its score is strictly above the threshold.
    """
    m, s = _check(is_member, score)
    rows = []
    for t in ts:
        thr = threshold_from_percentile(reference_scores, t)
        acc, prec, rec = precision_recall(m, s, np.nextafter(thr, np.inf))
        rows.append({"t": float(t), "threshold": thr, "accuracy": acc, "precision": prec, "recall": rec})
    return rows


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval (bootstrap for AUC, Clopper-Pearson for rates)."""

    value: float
    low: float
    high: float

    def as_list(self) -> list[float]:
        return [self.low, self.high]


def bootstrap(
    is_member: np.ndarray,
    score: np.ndarray,
    statistic: Callable[[np.ndarray, np.ndarray], float],
    *,
    n_boot: int = DEFAULT_N_BOOT,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap of ``statistic(is_member, score)``, resampling members and non-members separately.

    Not for TPR at a low FPR: a resample of one false positive in 1,000 is not an interval (use
    :func:`exact_tpr_at_fpr`)."""
    m, s = _check(is_member, score)
    value = statistic(m, s)
    if _degenerate(m):
        return Interval(value, float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    mi, ni = np.flatnonzero(m), np.flatnonzero(~m)
    stats = np.empty(n_boot)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for b in range(n_boot):
            idx = np.concatenate([rng.choice(mi, len(mi)), rng.choice(ni, len(ni))])
            stats[b] = statistic(m[idx], s[idx])
    alpha = (1.0 - level) / 2
    return Interval(value, float(np.nanquantile(stats, alpha)), float(np.nanquantile(stats, 1 - alpha)))


def _row_counts(idx: np.ndarray, n: int) -> np.ndarray:
    """``(B, k)`` indices into ``range(n)`` -> ``(B, n)`` how often each row drew each index."""
    rows = len(idx)
    flat = (idx + n * np.arange(rows)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n)


def resampled_aucs(members: np.ndarray, nonmembers: np.ndarray, mi: np.ndarray, ni: np.ndarray) -> np.ndarray:
    """AUC of each resample ``b`` of ``members[mi[b]]`` against ``nonmembers[ni[b]]`` (ties count one half).

    ``mi``: (B, n_m), ``ni``: (B, n_n) indices. Vectorised: each member's rank among the sorted non-members is
    found once, and each resample only counts how often it drew every candidate."""
    order = np.argsort(nonmembers, kind="stable")
    ranked = nonmembers[order]
    below = np.searchsorted(ranked, members, side="left")  # (n_m,) non-members strictly below each member
    upto = np.searchsorted(ranked, members, side="right")
    rank = np.empty(len(nonmembers), np.int64)
    rank[order] = np.arange(len(nonmembers))
    drawn = np.zeros((len(ni), len(nonmembers) + 1))
    drawn[:, 1:] = np.cumsum(_row_counts(rank[ni], len(nonmembers)), axis=1)  # (B, n_n + 1)
    less = drawn[:, below]  # (B, n_m) drawn non-members below each member
    ties = drawn[:, upto] - less
    wins = (_row_counts(mi, len(members)) * (less + 0.5 * ties)).sum(axis=1)
    return np.asarray(wins / (mi.shape[1] * ni.shape[1]), dtype=np.float64)


def key_order(keys: np.ndarray, n: int, *, who: str = "metrics") -> np.ndarray:
    """The permutation that puts ``n`` candidates in the order of ``keys`` (one stable key each; equal keys keep
    their order), so that what is drawn from them does not depend on the order they came in."""
    k = np.asarray(keys)
    if k.shape != (n,):
        raise InvalidInputError(f"{who}: keys must give one key per candidate, got {k.shape} for {n} candidates")
    return np.argsort(k, kind="stable")


def _in_key_order(m: np.ndarray, s: np.ndarray, keys: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Membership and scores in the order of ``keys`` (``None``: as given)."""
    if keys is None:
        return m, s
    order = key_order(keys, len(m))
    return m[order], s[order]


def bootstrap_auc(
    is_member: np.ndarray,
    score: np.ndarray,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    level: float = 0.95,
    seed: int = 0,
    keys: np.ndarray | None = None,
) -> Interval:
    """AUC with its percentile bootstrap interval, members and non-members resampled apart.

    The same statistic as ``bootstrap(m, s, auc)``, with the resamples counted in blocks (seconds faster at
    1,000 resamples). ``keys`` (one stable key per candidate) puts the candidates in key order first, so the
    interval does not depend on the order they came in (as in :func:`summarize`)."""
    m, s = _check(is_member, score)
    m, s = _in_key_order(m, s, keys)
    value = auc(m, s)
    if np.isnan(value):
        return Interval(value, float("nan"), float("nan"))
    members, nonmembers = s[m], s[~m]
    rng = np.random.default_rng(seed)
    block = max(1, 2_000_000 // len(s))  # resamples per block: bounds the (block, n) count arrays
    stats = []
    for start in range(0, n_boot, block):
        b = min(block, n_boot - start)
        mi = rng.integers(0, len(members), size=(b, len(members)))
        ni = rng.integers(0, len(nonmembers), size=(b, len(nonmembers)))
        stats.append(resampled_aucs(members, nonmembers, mi, ni))
    alpha = (1.0 - level) / 2
    boot = np.concatenate(stats)
    return Interval(value, float(np.quantile(boot, alpha)), float(np.quantile(boot, 1 - alpha)))


@dataclass(frozen=True)
class ExactTpr:
    """TPR at FPR ``target`` with exact intervals; the threshold was chosen on non-members disjoint from those
    its FPR is measured on. ``tpr`` counts every member, ``fpr`` only the evaluation half."""

    target: float
    threshold: float
    n_members: int
    true_positives: int
    n_calibration: int
    n_evaluation: int
    false_positives: int
    level: float
    tpr: Interval
    fpr: Interval

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "n_members": self.n_members,
            "true_positives": self.true_positives,
            "tpr": self.tpr.value,
            "tpr_ci": self.tpr.as_list(),
            "n_calibration": self.n_calibration,
            "n_evaluation": self.n_evaluation,
            "false_positives": self.false_positives,
            "fpr": self.fpr.value,
            "fpr_ci": self.fpr.as_list(),
            "level": self.level,
            "method": "clopper-pearson, threshold on a disjoint calibration half of the non-members",
        }


SPLIT_STREAM = 29  # keys the calibration split apart from the bootstrap's stream of the same seed


def calibration_split(n_nonmembers: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (among the non-members, in order) of the calibration half (``n // 2``) and of the evaluation
    half (the rest): a seeded permutation, the same for every FPR and every attack scored on these candidates."""
    perm = np.random.default_rng([seed, SPLIT_STREAM]).permutation(n_nonmembers)
    half = n_nonmembers // 2
    return np.sort(perm[:half]), np.sort(perm[half:])


def exact_tpr_at_fpr(
    is_member: np.ndarray, score: np.ndarray, fpr: float, *, level: float = 0.95, seed: int = 0
) -> ExactTpr:
    """TPR at FPR ``fpr`` with Clopper-Pearson intervals, its threshold chosen on a calibration half.

    A candidate is predicted a member when its score is strictly above the threshold, the ``k``-th largest
    calibration score with ``k = floor(fpr * (n_cal + 1))``. Raises when the calibration half holds fewer than
    :func:`min_nonmembers` non-members (:class:`Resolution` says so beforehand)."""
    m, s = _check(is_member, score)
    res = resolution(int((~m).sum()), fpr)
    if not res.interval:
        raise InvalidInputError(f"exact_tpr_at_fpr: {res.interval_shortfall()}")
    nonmembers, members = s[~m], s[m]
    cal, ev = calibration_split(len(nonmembers), seed)
    k = math.floor(fpr * (len(cal) + 1) + 1e-9)
    threshold = float(np.sort(nonmembers[cal])[-k])
    tp, fp = int((members > threshold).sum()), int((nonmembers[ev] > threshold).sum())
    if _degenerate(m):
        nan = Interval(float("nan"), float("nan"), float("nan"))
        return ExactTpr(fpr, threshold, 0, 0, len(cal), len(ev), fp, level, nan, nan)
    return ExactTpr(
        fpr,
        threshold,
        len(members),
        tp,
        len(cal),
        len(ev),
        fp,
        level,
        Interval(tp / len(members), *clopper_pearson(tp, len(members), level=level)),
        Interval(fp / len(ev), *clopper_pearson(fp, len(ev), level=level)),
    )


def _operating_points(m: np.ndarray, s: np.ndarray, fprs: tuple[float, ...], level: float, seed: int) -> dict:
    """Per FPR (keyed ``"0.01"``): the point (``None`` when unresolvable), its exact interval, why not, details."""
    n_non = int((~m).sum())
    points: dict[str, float | None] = {}
    intervals: dict[str, list[float] | None] = {}
    na: dict[str, str] = {}
    exact: dict[str, dict[str, Any]] = {}
    for f in fprs:
        key, res = f"{f:g}", resolution(n_non, f)
        points[key] = tpr_at_fpr(m, s, f) if res.point else None
        intervals[key] = None
        if res.interval:
            e = exact_tpr_at_fpr(m, s, f, level=level, seed=seed)
            intervals[key], exact[key] = e.tpr.as_list(), e.to_dict()
        reason = res.reason()
        if reason is not None:
            na[key] = reason
    return {"tpr_at_fpr": points, "tpr_at_fpr_ci": intervals, "tpr_at_fpr_na": na, "tpr_at_fpr_exact": exact}


def summarize(
    is_member: np.ndarray,
    score: np.ndarray,
    *,
    threshold: float | None = None,
    fprs: tuple[float, ...] = DEFAULT_FPRS,
    n_boot: int = DEFAULT_N_BOOT,
    level: float = 0.95,
    seed: int = 0,
    keys: np.ndarray | None = None,
) -> dict[str, Any]:
    """AUC with its bootstrap interval, TPR at each FPR with its exact interval, and balanced accuracy at
    ``threshold`` (if None: cross-fitted, :func:`crossfit_balanced_accuracy`, with ``threshold`` the best on all
    candidates for reference).

    ``keys`` (one stable key per candidate: its content key or its id) puts the candidates in key order before
    anything is drawn, so that the calibration half, the bootstrap resamples and the cross-fitting halves, and with
    them every interval, are the same whatever order the candidates came in; without keys they follow the given
    order.

    ``tpr_at_fpr[x]`` is the ROC reading on all candidates, ``None`` below :func:`min_nonmembers`;
    ``tpr_at_fpr_ci[x]`` the Clopper-Pearson interval of :func:`exact_tpr_at_fpr` (whose own TPR, at the
    calibration half's threshold, is ``tpr_at_fpr_exact[x]["tpr"]``), ``None`` below twice that;
    ``tpr_at_fpr_na[x]`` says why a value is ``None``."""
    m, s = _check(is_member, score)
    m, s = _in_key_order(m, s, keys)
    auc_ci = bootstrap_auc(m, s, n_boot=n_boot, level=level, seed=seed)
    chosen = "given" if threshold is not None else "cross-fitted"
    balanced = (
        balanced_accuracy(m, s, threshold) if threshold is not None else crossfit_balanced_accuracy(m, s, seed=seed)
    )
    if threshold is None:
        threshold = threshold_best_balanced_accuracy(m, s)
    return {
        "auc": auc_ci.value,
        "auc_ci": auc_ci.as_list(),
        **_operating_points(m, s, fprs, level, seed),
        "intervals": {
            "level": level,
            "auc": f"percentile bootstrap, {n_boot} resamples, members and non-members apart",
            "tpr_at_fpr": "Clopper-Pearson, threshold chosen on a disjoint half of the non-members",
        },
        "threshold": float(threshold),
        "threshold_source": chosen,
        "balanced_accuracy": balanced,
        "n_members": int(m.sum()),
        "n_nonmembers": int((~m).sum()),
    }
