"""Which records are exposed: each candidate's empirical p-value against the non-members, per attack.

For a candidate with score s (higher = member) and non-member scores t_1..t_n, p = (1 + #{t_j >= s}) / (1 + n),
leaving a non-member's own score out of its reference set. Under "not a member" this p-value is valid
(P(p <= x) <= x), so "flagged at FPR x" = p <= x holds each attack's false-positive rate at x. An FPR is used only
where a p-value can reach it, (1 + n) x >= 1: one non-member fewer than a TPR needs
(:func:`labelleak.counts.min_nonmembers`), since the candidate itself counts in the p-value's denominator. Flagged
"by at least one of m attacks" is a union, whose false-positive rate can reach m x: the summary says how many
attacks it is over.
"""

from __future__ import annotations

import math

import numpy as np

from labelleak.errors import InvalidInputError

EXPOSURE_FPRS = (0.001, 0.01, 0.1)


def p_values(is_member: np.ndarray, score: np.ndarray) -> np.ndarray:
    """(N,) empirical p-values of every candidate against the non-members (leave-one-out for non-members)."""
    m = np.asarray(is_member, dtype=bool)
    s = np.asarray(score, dtype=np.float64)
    if m.shape != s.shape or m.ndim != 1:
        raise InvalidInputError(f"p_values: is_member and score must be 1-D of equal length, got {m.shape}, {s.shape}")
    ref = np.sort(s[~m])
    n = len(ref)
    if n == 0:
        raise InvalidInputError("p_values: need at least one non-member")
    at_least = n - np.searchsorted(ref, s, side="left")  # non-members scoring >= s
    own = (~m).astype(np.int64)  # a non-member's own score counts once in at_least: leave it out
    return (1.0 + at_least - own) / (1.0 + n - own)


def resolvable_fprs(n_nonmembers: int, fprs: tuple[float, ...] = EXPOSURE_FPRS) -> tuple[float, ...]:
    """The FPRs at which ``n_nonmembers`` can flag anything: p <= x needs (1 + n) x >= 1."""
    return tuple(x for x in fprs if math.floor(x * (1 + n_nonmembers)) >= 1)


def exposure_summary(is_member: np.ndarray, pvals: dict[str, np.ndarray]) -> dict[str, object]:
    """How many members each attack flags at each resolvable FPR, and how many at least one attack flags."""
    m = np.asarray(is_member, dtype=bool)
    n_non = int((~m).sum())
    fprs = resolvable_fprs(n_non)
    per_attack = {
        name: {f"{x:g}": int((p[m] <= x).sum()) for x in fprs} for name, p in pvals.items()
    }  # fmt: skip
    union = {}
    if pvals:
        best = np.min(np.stack(list(pvals.values())), axis=0)
        union = {f"{x:g}": int((best[m] <= x).sum()) for x in fprs}
    return {
        "n_members": int(m.sum()),
        "n_nonmembers": n_non,
        "fprs": [f"{x:g}" for x in fprs],
        "unresolved_fprs": [f"{x:g}" for x in EXPOSURE_FPRS if x not in fprs],
        "members_flagged": per_attack,
        "members_flagged_by_any": union,
        "any_over_attacks": len(pvals),
        "note": "flagged at FPR x means p <= x; 'by any' is a union over the attacks, its FPR up to their count x",
    }
