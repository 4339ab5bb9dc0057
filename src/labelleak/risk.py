"""The audit's risk level: one documented rule over lower bounds, never over point estimates.

The rule (docs/guide/verdict.md shows this text), applied to the audit-wide epsilon lower bound
(:mod:`labelleak.epsilon`), the largest lower bound of TPR at 1% FPR and the largest lower bound of the AUC:

* ``high``: eps_LB >= 1, or TPR at 1% FPR is at least 0.05 (five times chance) at its lower bound;
* ``medium``: eps_LB > 0, or the TPR lower bound at 1% FPR clears chance (> 0.01);
* ``low``: neither, but an AUC interval lies above 0.5 (membership leaks on average, not at low FPR);
* ``none``: nothing clears chance: no leakage detected at this sample size, which is no proof of privacy.

>>> risk_level(1.2, None, 0.6)[0], risk_level(0.0, 0.02, 0.55)[0], risk_level(0.0, 0.0, 0.52)[0]
('high', 'medium', 'low')
>>> risk_level(0.0, None, 0.45)[0]
'none'

When nothing clears chance, the wording says what the sample could have seen: :func:`detectable_tpr` is the
smallest TPR at 1% FPR whose exact lower bound would clear chance with this many member candidates.

>>> round(detectable_tpr(100), 2), round(detectable_tpr(1000), 3)
(0.04, 0.018)
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.stats import beta

from labelleak.errors import InvalidInputError

RiskLevel = Literal["high", "medium", "low", "none"]
RISK_LEVELS: tuple[RiskLevel, ...] = ("high", "medium", "low", "none")
HIGH_EPSILON = 1.0
HIGH_TPR = 0.05  # TPR at 1% FPR: five times chance
CHANCE_TPR = 0.01  # TPR at 1% FPR of a coin


def _clean(v: float | None) -> float | None:
    return v if v is not None and v == v else None


def risk_level(eps_lb: float, tpr_low: float | None, auc_low: float | None) -> tuple[RiskLevel, str]:
    """``(level, why)`` from the epsilon lower bound, the lower bound of TPR at 1% FPR (``None`` where the
    candidates cannot resolve it) and the lower bound of the AUC (``None`` where unknown)."""
    tpr, auc = _clean(tpr_low), _clean(auc_low)
    if eps_lb >= HIGH_EPSILON:
        return "high", f"eps_LB {eps_lb:.2f} >= {HIGH_EPSILON:g}"
    if tpr is not None and tpr >= HIGH_TPR:
        return "high", f"TPR at 1% FPR >= {tpr:.3f} at its lower bound, at least {HIGH_TPR:g}"
    if eps_lb > 0.0:
        return "medium", f"eps_LB {eps_lb:.2f} > 0"
    if tpr is not None and tpr > CHANCE_TPR:
        return "medium", f"TPR at 1% FPR >= {tpr:.3f} at its lower bound, above chance ({CHANCE_TPR:g})"
    if auc is not None and auc > 0.5:
        return "low", f"AUC >= {auc:.3f} at its lower bound, above chance; nothing clears chance at low FPR"
    return "none", "no leakage detected at this sample size"


def detectable_tpr(n_members: int, *, chance: float = CHANCE_TPR, level: float = 0.95) -> float | None:
    """The smallest observed TPR ``k / n_members`` whose two-sided Clopper-Pearson interval at ``level`` lies above
    ``chance``: what this many members can detect (``None`` if not even every member flagged would)."""
    if n_members < 1:
        raise InvalidInputError(f"detectable_tpr: expected at least one member, got {n_members}")
    k = np.arange(1, n_members + 1)
    low = beta.ppf((1 - level) / 2, k, n_members - k + 1)  # the interval's low end at every count
    above = np.flatnonzero(low > chance)
    return float(k[above[0]] / n_members) if len(above) else None
