"""How many candidates and shadow rows an audit lays out, from sizes alone (no data is read).

The setup of each target kind and ``--estimate`` both need these numbers; they live here, below both, so that the
estimate cannot drift from what the setup does.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    """Member and non-member candidates, the one-run audit's canaries (candidates whose membership is a coin,
    after the others), and the adversary's shadow-train and shadow-test rows."""

    members: int
    nonmembers: int
    shadow_train: int
    shadow_test: int
    canaries: int = 0

    @property
    def candidates(self) -> int:
        return self.members + self.nonmembers + self.canaries


def evaluated(available: int, eval_size: int | None) -> int:
    """Candidates taken from a part of ``available`` rows: ``eval_size`` of them (all when ``None``), at most all."""
    return min(eval_size or available, available)


def shadow_halves(pool: int) -> tuple[int, int]:
    """A shadow pool of ``pool`` rows cut in two: (shadow train, shadow test), the odd row to the test half."""
    return pool // 2, pool - pool // 2


def trained_layout(
    train_size: int, test_size: int | None, shadow_size: int | None, eval_size: int | None, canaries: int = 0
) -> Layout:
    """The layout of a target labelleak trains: ``train_size`` members, ``test_size`` non-members and
    ``shadow_size`` rows in each shadow part (both default to ``train_size``), ``eval_size`` candidates of each,
    and ``canaries`` more candidates, each a member by its own coin."""
    test = test_size or train_size
    shadow = shadow_size or train_size
    return Layout(evaluated(train_size, eval_size), evaluated(test, eval_size), shadow, shadow, canaries)


def own_layout(members: int, nonmembers: int, shadow_pool: int) -> Layout:
    """The layout of a target labelleak did not train: the auditor's files, the shadow pool cut in halves."""
    return Layout(members, nonmembers, *shadow_halves(shadow_pool))
