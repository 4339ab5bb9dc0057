"""One metric measured under several seeds: its mean, its spread, and an interval that holds both kinds of
uncertainty (which candidates were drawn, and which seed drove the randomness).

A single audit's interval (the AUC's bootstrap, a TPR's exact interval) covers the candidates only: the same
files under another seed give another model split, other shadow and reference models and other random
directions, and a spread the interval does not see. Each seed is treated as one imputation of those random
choices, and the runs are pooled with Rubin's rules (Rubin, *Multiple Imputation for Nonresponse in Surveys*,
Wiley 1987, ch. 3; Little & Rubin, *Statistical Analysis with Missing Data*, 2nd ed. 2002, sec. 10.2):

* ``mean = (1/N) sum_i v_i``: the pooled estimate;
* ``within = (1/N) sum_i u_i``: the candidate variance, each ``u_i = (max(high_i - v_i, v_i - low_i) / z)^2``
  read off the wider side of seed i's own interval at ``level`` (``z`` the normal quantile). For a symmetric
  interval that is its half-width; a percentile bootstrap is nearly symmetric, but a Clopper-Pearson interval
  at a rate of 0 is one-sided, and half its width would pool to an interval narrower than each seed's own;
* ``between = (1/(N-1)) sum_i (v_i - mean)^2``: the seed variance;
* ``total = within + (1 + 1/N) between``;
* ``interval = mean +- t_df sqrt(total)`` with Rubin's degrees of freedom
  ``df = (N - 1) (1 + within / ((1 + 1/N) between))^2``: ``N - 1`` when the seeds' spread dominates, growing
  to the normal quantile as it vanishes (so ``t_{N-1}`` is the conservative end), clipped to ``bounds``.

Arrays in, numbers out: nothing here reads a results file (:mod:`labelleak.report.repeats` does).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scipy.stats import norm
from scipy.stats import t as student_t

from labelleak.errors import InvalidInputError

RULE = (
    "Rubin's rules (Rubin 1987): total variance = mean per-seed candidate variance (each seed's interval, its "
    "wider side / z) + (1 + 1/N) x between-seed variance; interval = mean +- t_df sqrt(total), Rubin's df"
)


@dataclass(frozen=True)
class SeedSpread:
    """One metric over ``N`` seeds: the per-seed values and intervals, and what Rubin's rules make of them."""

    values: tuple[float, ...]
    intervals: tuple[tuple[float, float], ...]
    level: float
    mean: float
    sd: float  # between-seed standard deviation (N - 1 in the denominator)
    within: float  # mean per-seed candidate variance
    between: float  # between-seed variance, sd ** 2
    total: float  # within + (1 + 1/N) between
    df: float  # Rubin's degrees of freedom (inf when the seeds agree exactly)
    interval: tuple[float, float]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    @property
    def mean_width(self) -> float:
        """Mean width of the per-seed intervals (the candidate uncertainty one run shows)."""
        return sum(hi - lo for lo, hi in self.intervals) / self.n

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "sd": self.sd,
            "min": self.low,
            "max": self.high,
            "values": list(self.values),
            "per_seed_ci": [list(i) for i in self.intervals],
            "mean_ci_width": self.mean_width,
            "within_variance": self.within,
            "between_variance": self.between,
            "total_variance": self.total,
            "df": self.df if math.isfinite(self.df) else None,  # None: infinite (the normal quantile)
            "combined_ci": list(self.interval),
            "level": self.level,
        }


def _checked(values: Sequence[float], intervals: Sequence[tuple[float, float]], level: float) -> None:
    if len(values) < 2:
        raise InvalidInputError(f"combine_seeds: needs at least 2 seeds to measure their spread, got {len(values)}")
    if len(intervals) != len(values):
        raise InvalidInputError(f"combine_seeds: {len(values)} values but {len(intervals)} intervals")
    if not 0.0 < level < 1.0:
        raise InvalidInputError(f"combine_seeds: level must lie in (0, 1), got {level}")
    for v, (lo, hi) in zip(values, intervals):
        if not all(math.isfinite(float(x)) for x in (v, lo, hi)):
            raise InvalidInputError(f"combine_seeds: expected finite values and intervals, got {v} in [{lo}, {hi}]")
        if not lo <= hi:
            raise InvalidInputError(f"combine_seeds: an interval's low end is above its high end: [{lo}, {hi}]")


def rubin_df(within: float, between: float, n: int) -> float:
    """Rubin's degrees of freedom ``(N - 1)(1 + within / ((1 + 1/N) between))^2``; ``inf`` when ``between`` is
    0 (nothing varies between seeds), ``N - 1`` when ``within`` is 0."""
    if between <= 0.0:
        return math.inf
    return (n - 1) * (1.0 + within / ((1.0 + 1.0 / n) * between)) ** 2


def combine_seeds(
    values: Sequence[float],
    intervals: Sequence[tuple[float, float]],
    *,
    level: float = 0.95,
    bounds: tuple[float, float] | None = (0.0, 1.0),
) -> SeedSpread:
    """Pool one metric's per-seed ``values`` (N >= 2) and their ``level`` intervals with Rubin's rules.

    ``bounds`` clips the combined interval to the metric's range (AUC and rates: [0, 1]; ``None``: no clip).

    >>> s = combine_seeds([0.66, 0.70, 0.72], [(0.61, 0.71), (0.65, 0.75), (0.67, 0.77)])
    >>> round(s.mean, 4), round(s.sd, 4), [round(v, 3) for v in s.interval]
    (0.6933, 0.0306, [0.579, 0.808])
    """
    _checked(values, intervals, level)
    n = len(values)
    vals = tuple(float(v) for v in values)
    ints = tuple((float(lo), float(hi)) for lo, hi in intervals)
    z = float(norm.ppf(0.5 + level / 2))
    shift = [v - vals[0] for v in vals]  # about the first value: seeds that agree give exactly 0 spread
    offset = math.fsum(shift) / n
    mean = vals[0] + offset
    between = math.fsum((d - offset) ** 2 for d in shift) / (n - 1)
    within = sum((max(hi - v, v - lo) / z) ** 2 for v, (lo, hi) in zip(vals, ints)) / n
    total = within + (1.0 + 1.0 / n) * between
    df = rubin_df(within, between, n)
    q = z if math.isinf(df) else float(student_t.ppf(0.5 + level / 2, df))
    lo, hi = mean - q * math.sqrt(total), mean + q * math.sqrt(total)
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return SeedSpread(vals, ints, level, mean, math.sqrt(between), within, between, total, df, (lo, hi))
