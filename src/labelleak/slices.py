"""Leakage per group of candidates (per class, correctly or wrongly classified): which groups leak most.

Pure functions of ``(is_member, score, group)`` arrays. Each group gets its AUC and its TPR at 1% FPR with the
counts they rest on; a TPR is reported only where the group's non-members resolve the FPR (the rule of
:mod:`labelleak.metrics`: at least ``ceil(1 / fpr)`` non-members), an AUC only where the group holds both members
and non-members. Otherwise the value is ``None`` and ``na`` says why.

>>> m = np.array([1, 1, 0, 0]); s = np.array([0.9, 0.8, 0.1, 0.2]); g = np.array([0, 1, 0, 1])
>>> zero = slice_metrics(m, s, g)["0"]  # class 0: one member, one non-member
>>> zero["auc"], zero["tpr_at_fpr"], zero["na"].get("tpr_at_fpr")
(1.0, None, 'TPR at 1% FPR needs >= 100 non-members, has 1')
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np

from labelleak.counts import resolution
from labelleak.errors import InvalidInputError
from labelleak.metrics import auc, tpr_at_fpr

SLICE_FPR = 0.01


def group_metrics(is_member: np.ndarray, score: np.ndarray, *, fpr: float = SLICE_FPR) -> dict[str, Any]:
    """AUC and TPR at ``fpr`` of one group, with its counts and the reason for each missing value."""
    m = np.asarray(is_member, dtype=bool)
    s = np.asarray(score, dtype=np.float64)
    n_m, n_n = int(m.sum()), int((~m).sum())
    out: dict[str, Any] = {"n_members": n_m, "n_nonmembers": n_n, "auc": None, "tpr_at_fpr": None, "na": {}}
    if n_m == 0 or n_n == 0:
        out["na"]["auc"] = out["na"]["tpr_at_fpr"] = f"needs members and non-members, has {n_m} and {n_n}"
        return out
    out["auc"] = auc(m, s)
    res = resolution(n_n, fpr)
    if res.point:
        out["tpr_at_fpr"] = tpr_at_fpr(m, s, fpr)
    else:
        out["na"]["tpr_at_fpr"] = res.reason()
    return out


def slice_metrics(
    is_member: np.ndarray, score: np.ndarray, group: np.ndarray, *, fpr: float = SLICE_FPR
) -> dict[str, dict[str, Any]]:
    """:func:`group_metrics` for every value of ``group`` (keyed by its text, in sorted order).

    ``is_member``, ``score``, ``group``: (N,); a candidate whose group is ``None`` belongs to no group."""
    m, s, g = np.asarray(is_member), np.asarray(score, dtype=np.float64), np.asarray(group, dtype=object)
    if not (m.ndim == s.ndim == g.ndim == 1 and len(m) == len(s) == len(g)):
        raise InvalidInputError(f"slices: expected 1-D arrays of equal length, got {m.shape}, {s.shape}, {g.shape}")
    keys: list[Hashable] = sorted({v for v in g.tolist() if v is not None}, key=lambda v: (str(type(v)), v))
    return {str(k): group_metrics(m[g == k], s[g == k], fpr=fpr) for k in keys}
