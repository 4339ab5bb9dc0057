"""What a sample of a given size can show: exact binomial intervals, and how many non-members an FPR needs.

Counts in, no score arrays: :mod:`labelleak.metrics` and the report ask these before they print a rate, so that
no TPR is printed at an FPR the sample cannot resolve (the conventions are in :mod:`labelleak.metrics`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import binomtest

from labelleak.errors import InvalidInputError


def clopper_pearson(k: int, n: int, *, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval of a proportion ``k / n`` (Clopper & Pearson, Biometrika 1934); ``(0, high)`` at
    ``k = 0`` and ``(low, 1)`` at ``k = n``; NaN when ``n = 0``."""
    if n == 0:
        return float("nan"), float("nan")
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


def min_nonmembers(fpr: float) -> int:
    """Non-members needed to choose a threshold at FPR ``fpr``: ``ceil(1 / fpr)``, enough for one false positive."""
    if not 0.0 < fpr <= 1.0:
        raise InvalidInputError(f"fpr: expected a value in (0, 1] to resolve, got {fpr}")
    return math.ceil(1.0 / fpr - 1e-9)


@dataclass(frozen=True)
class Resolution:
    """Whether ``n_nonmembers`` non-members resolve TPR at FPR ``fpr``: the point (threshold chosen on all of
    them) needs :func:`min_nonmembers`, its exact interval (threshold chosen on half of them) twice as many."""

    fpr: float
    n_nonmembers: int

    @property
    def point_needs(self) -> int:
        return min_nonmembers(self.fpr)

    @property
    def interval_needs(self) -> int:
        return 2 * min_nonmembers(self.fpr)

    @property
    def point(self) -> bool:
        return self.n_nonmembers >= self.point_needs

    @property
    def interval(self) -> bool:
        return self.n_nonmembers >= self.interval_needs

    def interval_shortfall(self) -> str:
        """What the exact interval needs, against what there is."""
        return (
            f"the exact interval of TPR at {self.fpr * 100:g}% FPR needs >= {self.interval_needs} non-members "
            f"(half to choose the threshold, half to check its FPR), has {self.n_nonmembers}"
        )

    def reason(self) -> str | None:
        """Why the point or its interval is not reported (``None`` when both are)."""
        if not self.point:
            return f"TPR at {self.fpr * 100:g}% FPR needs >= {self.point_needs} non-members, has {self.n_nonmembers}"
        return None if self.interval else self.interval_shortfall()


def resolution(n_nonmembers: int, fpr: float) -> Resolution:
    """What ``n_nonmembers`` non-members can show at FPR ``fpr`` (the rule is in :mod:`labelleak.metrics`)."""
    min_nonmembers(fpr)  # validates fpr
    return Resolution(float(fpr), int(n_nonmembers))
