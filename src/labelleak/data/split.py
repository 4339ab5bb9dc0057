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


def _shuffled(n_pool: int, seed: int) -> np.ndarray:
    """The one shuffle of the pool that the four parts and the public part are both cut from."""
    return np.random.default_rng(seed).permutation(n_pool)


def _reserved_and_total(sizes: SplitSizes, reserve_train: int | None) -> tuple[int, int]:
    reserved = sizes.target_train if reserve_train is None else int(reserve_train)
    if reserved < sizes.target_train:
        raise InvalidInputError(f"split: reserve_train {reserved} is smaller than target_train {sizes.target_train}")
    return reserved, sizes.total() - sizes.target_train + reserved


def rows_taken(sizes: SplitSizes, reserve_train: int | None = None) -> int:
    """Pool rows the four parts take, the members' reserve included (public and validation rows come after)."""
    return _reserved_and_total(sizes, reserve_train)[1]


def four_way_split(n_pool: int, sizes: SplitSizes, *, seed: int, reserve_train: int | None = None) -> Split:
    """Shuffle ``range(n_pool)`` with ``seed`` and cut it into the four parts, in order.

    ``reserve_train`` sets aside that many samples for the members part and uses the first
    ``sizes.target_train`` of them: targets trained on different sizes then share their non-members and shadow
    parts, and a smaller target's members are a subset of a larger one's (the paper's training-size experiment).

    Raises ``InvalidInputError`` if a size is negative, the members part is empty, or the parts need more
    samples than the pool holds.
    """
    for name, value in asdict(sizes).items():
        if not isinstance(value, (int, np.integer)) or value < 0:
            raise InvalidInputError(f"split size {name}: expected a non-negative integer, got {value!r}")
    if sizes.target_train == 0 or sizes.target_test == 0:
        raise InvalidInputError("split: target_train and target_test must both be at least 1")
    reserved, total = _reserved_and_total(sizes, reserve_train)
    if total > n_pool:
        raise InvalidInputError(
            f"split: the four parts need {total} samples ({asdict(sizes)}, {reserved} reserved for members) but the "
            f"pool has only {n_pool}; reduce --train-size/--test-size/--shadow-size"
        )
    order = _shuffled(n_pool, seed)[:total]
    cuts = np.cumsum([reserved, sizes.target_test, sizes.shadow_train])
    parts = np.split(order, cuts)  # each part stays in shuffled order: its first k are a random subset
    parts[0] = parts[0][: sizes.target_train]
    return Split(parts[0], parts[1], parts[2], parts[3], seed=seed)


def public_part(n_pool: int, sizes: SplitSizes, n: int, *, seed: int, reserve_train: int | None = None) -> np.ndarray:
    """``n`` pool indices outside the four parts of ``four_way_split`` with the same arguments (and outside the
    members reserved for larger targets): data the target's owner may treat as public, e.g. to pre-train a model
    before fine-tuning it with DP-SGD. No candidate and no sample of the adversary is among them.

    Raises ``InvalidInputError`` if the pool holds fewer than ``n`` samples beyond the four parts.
    """
    return _beyond(n_pool, sizes, n, 0, "public data", seed=seed, reserve_train=reserve_train)


def validation_part(
    n_pool: int, sizes: SplitSizes, n: int, *, after: int = 0, seed: int, reserve_train: int | None = None
) -> np.ndarray:
    """``n`` pool indices outside the four parts, after the first ``after`` of them (the public part): the
    target's validation rows for early stopping and adversarial regularisation. They are never candidates, so the
    members are exactly the rows the target's optimiser trains on.

    Raises ``InvalidInputError`` if the pool holds fewer than ``after + n`` samples beyond the four parts.
    """
    return _beyond(n_pool, sizes, n, after, "validation data", seed=seed, reserve_train=reserve_train)


CANARY_STREAM = 0xCA7A  # the canaries' coins: their own stream of the split's seed


def canary_part(
    n_pool: int, sizes: SplitSizes, n: int, *, after: int, seed: int, reserve_train: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` canaries of the one-run audit (Steinke, Nasr & Jagielski 2023): pool indices outside the four parts,
    after the first ``after`` of them (public and validation rows), and one fair coin per canary, drawn
    independently of the others and of the split (True: the target trains on it). The coins are a prefix-stable
    seeded draw: the first ``k`` canaries keep their coins when more are asked for.

    Raises ``InvalidInputError`` if the pool holds fewer than ``after + n`` samples beyond the four parts.
    """
    rows = _beyond(n_pool, sizes, n, after, "canaries", seed=seed, reserve_train=reserve_train)
    coins = np.random.default_rng([seed, CANARY_STREAM]).random(n) < 0.5
    return rows, coins


def _beyond(
    n_pool: int, sizes: SplitSizes, n: int, after: int, what: str, *, seed: int, reserve_train: int | None
) -> np.ndarray:
    _, total = _reserved_and_total(sizes, reserve_train)
    if n < 1:
        raise InvalidInputError(f"{what}: expected a positive number of samples, got {n}")
    start = total + after
    if start + n > n_pool:
        taken = f" ({after} of them are public data)" if after else ""
        raise InvalidInputError(
            f"{what}: {n} samples asked, but the pool of {n_pool} has only {n_pool - total} beyond the four "
            f"parts{taken}; ask for fewer or reduce --train-size/--test-size/--shadow-size"
        )
    return _shuffled(n_pool, seed)[start : start + n]
