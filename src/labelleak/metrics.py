"""Membership-inference metrics: pure functions of ``(is_member, score)`` arrays, higher score = member.

Nothing here knows about attacks or models. Degenerate input (one class only) warns and returns NaN.
TPR at a target FPR is read off the ROC curve conservatively: the best TPR among operating points whose FPR
does not exceed the target (Carlini et al., S&P 2022, report the same quantity).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from labelleak.errors import InvalidInputError

DEFAULT_FPRS = (0.001, 0.01, 0.1)


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
    """A point estimate with a bootstrap confidence interval."""

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
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap of ``statistic(is_member, score)``, resampling members and non-members separately."""
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


def summarize(
    is_member: np.ndarray,
    score: np.ndarray,
    *,
    threshold: float | None = None,
    fprs: tuple[float, ...] = DEFAULT_FPRS,
    n_boot: int = 200,
    seed: int = 0,
) -> dict:
    """AUC and TPR@FPR with bootstrap CIs, and balanced accuracy at ``threshold`` (best on these data if None)."""
    m, s = _check(is_member, score)
    auc_ci = bootstrap(m, s, auc, n_boot=n_boot, seed=seed)
    tprs = {f"{f:g}": bootstrap(m, s, partial(tpr_at_fpr, fpr=f), n_boot=n_boot, seed=seed) for f in fprs}
    chosen = "given" if threshold is not None else "best-on-evaluation-data"
    if threshold is None:
        threshold = threshold_best_balanced_accuracy(m, s)
    return {
        "auc": auc_ci.value,
        "auc_ci": auc_ci.as_list(),
        "tpr_at_fpr": {k: v.value for k, v in tprs.items()},
        "tpr_at_fpr_ci": {k: v.as_list() for k, v in tprs.items()},
        "threshold": float(threshold),
        "threshold_source": chosen,
        "balanced_accuracy": balanced_accuracy(m, s, threshold),
        "n_members": int(m.sum()),
        "n_nonmembers": int((~m).sum()),
    }
