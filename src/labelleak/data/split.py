"""The paper's four-way split of one shuffled pool (Li & Zhang, Sec. 5.1)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from labelleak.errors import InvalidInputError

PARTS = ("target_train", "target_test", "shadow_train", "shadow_test")


@dataclass(frozen=True)
class SplitSizes:
    """Sizes of the four disjoint parts: target members, target non-members, shadow members, shadow non-members."""

    target_train: int
    target_test: int
    shadow_train: int
    shadow_test: int

    def total(self) -> int:
        return self.target_train + self.target_test + self.shadow_train + self.shadow_test


@dataclass(frozen=True)
class Split:
    """Index arrays into the pool, one per part, disjoint and in shuffled order."""

    target_train: np.ndarray
    target_test: np.ndarray
    shadow_train: np.ndarray
    shadow_test: np.ndarray
    seed: int

    def sizes(self) -> dict[str, int]:
        return {p: int(len(getattr(self, p))) for p in PARTS}


def four_way_split(n_pool: int, sizes: SplitSizes, *, seed: int) -> Split:
    """Shuffle ``range(n_pool)`` with ``seed`` and cut it into the four parts, in order.

    Raises ``InvalidInputError`` if a size is negative, the members part is empty, or the parts need more
    samples than the pool holds.
    """
    for name, value in asdict(sizes).items():
        if not isinstance(value, (int, np.integer)) or value < 0:
            raise InvalidInputError(f"split size {name}: expected a non-negative integer, got {value!r}")
    if sizes.target_train == 0 or sizes.target_test == 0:
        raise InvalidInputError("split: target_train and target_test must both be at least 1")
    if sizes.total() > n_pool:
        raise InvalidInputError(
            f"split: the four parts need {sizes.total()} samples ({asdict(sizes)}) but the pool has only "
            f"{n_pool}; reduce --train-size/--eval-size/--shadow-size"
        )
    order = np.random.default_rng(seed).permutation(n_pool)[: sizes.total()]
    cuts = np.cumsum([sizes.target_train, sizes.target_test, sizes.shadow_train])
    parts = np.split(order, cuts)  # each part stays in shuffled order: its first k are a random subset
    return Split(*parts, seed=seed)
