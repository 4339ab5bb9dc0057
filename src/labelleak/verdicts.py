"""Verdicts from intervals, never from point estimates: is a goal met, not met, or can the data not tell?

A goal is a bound on a quantity (``at least 0.5`` times LiRA's TPR, ``at most`` 1% TPR). It is ``met`` only when
the whole interval clears the bound, ``not met`` when the whole interval lies on the wrong side, and
``inconclusive`` when the interval straddles the bound, is missing, or rests on fewer samples than the rate needs
(:class:`labelleak.counts.Resolution`).

>>> verdict(0.55, 0.9, 0.5)
'met'
>>> verdict(0.185, 1.964, 0.5)
'inconclusive'
>>> verdict(0.01, 0.04, 0.05, direction="at most")
'met'
"""

from __future__ import annotations

import math
from typing import Literal

from labelleak.errors import InvalidInputError

Verdict = Literal["met", "not met", "inconclusive"]
Direction = Literal["at least", "at most"]
VERDICTS: tuple[Verdict, ...] = ("met", "not met", "inconclusive")


def _number(v: float | None) -> bool:
    return v is not None and not math.isnan(v)


def verdict(
    low: float | None,
    high: float | None,
    goal: float,
    *,
    direction: Direction = "at least",
    resolved: bool = True,
) -> Verdict:
    """``met`` / ``not met`` / ``inconclusive`` for a quantity whose interval is ``[low, high]`` and whose goal
    is to be ``direction`` ``goal``. ``resolved=False`` (too few samples for the interval to mean anything) and a
    missing or NaN bound give ``inconclusive``; an infinite bound is an interval that does not close."""
    if direction not in ("at least", "at most"):
        raise InvalidInputError(f"direction: expected 'at least' or 'at most', got {direction!r}")
    if not resolved or not _number(low) or not _number(high):
        return "inconclusive"
    assert low is not None and high is not None  # for mypy: _number checked both
    if low > high:
        raise InvalidInputError(f"verdict: interval [{low}, {high}] has its low bound above its high bound")
    clears = low >= goal if direction == "at least" else high <= goal
    misses = high < goal if direction == "at least" else low > goal
    return "met" if clears else "not met" if misses else "inconclusive"
