"""Verdicts from intervals: met only when the interval clears the goal, not met when it excludes it,
inconclusive when it straddles it, is missing, or rests on too few samples."""

from __future__ import annotations

import math

import pytest

from labelleak.counts import resolution
from labelleak.errors import InvalidInputError
from labelleak.verdicts import verdict


@pytest.mark.parametrize(
    "low, high, expected",
    [
        (0.6, 1.2, "met"),
        (0.5, 0.9, "met"),  # the bound itself is reached
        (0.185, 1.964, "inconclusive"),  # issue 29: goal.csv said met=True on the point 0.571
        (0.45, 0.55, "inconclusive"),
        (0.1, 0.49, "not met"),
        (0.6, math.inf, "met"),  # an interval that does not close above still clears the bound
        (None, 0.9, "inconclusive"),
        (0.6, math.nan, "inconclusive"),
    ],
)
def test_a_goal_of_at_least_half(low, high, expected):
    assert verdict(low, high, 0.5) == expected


def test_a_goal_of_at_most_and_the_minimum_counts():
    assert verdict(0.001, 0.009, 0.01, direction="at most") == "met"
    assert verdict(0.02, 0.05, 0.01, direction="at most") == "not met"
    assert verdict(0.005, 0.02, 0.01, direction="at most") == "inconclusive"
    # an interval that clears the goal decides nothing when the sample cannot resolve the rate
    assert verdict(0.6, 0.9, 0.5, resolved=resolution(150, 0.01).interval) == "inconclusive"
    assert verdict(0.6, 0.9, 0.5, resolved=resolution(200, 0.01).interval) == "met"


def test_bad_input_is_refused():
    with pytest.raises(InvalidInputError, match="direction: expected 'at least' or 'at most', got 'above'"):
        verdict(0.1, 0.2, 0.5, direction="above")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"interval \[0.9, 0.1\] has its low bound above its high bound"):
        verdict(0.9, 0.1, 0.5)
