"""Splitting an attack's candidates into shards and merging the shards' results back, in candidate order.

An attack can be sharded when each candidate's score, status and query count depend only on that candidate (and
the seed): the attacks draw their randomness from :class:`labelleak.rng.KeyedStream` keyed by candidate content,
so a shard gives the same numbers as the whole batch. Attacks that look at all candidates at once are run whole:

* ``transfer*`` gives misclassified candidates the lowest score *of the batch* minus one, and spends setup queries
  relabelling the shadow set (once, not once per shard);
* ``lira*`` fits one Gaussian over all candidates (and the online variant trains on the candidates);
* ``score-nn`` and any attack with ``scorer="model"`` train a model first; sharding would train it once per shard.

Under a total query cap each shard gets its candidates' even share (:func:`shard_totals`), so a candidate's
allowance, and with it its score, is the same in a shard as in the whole batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labelleak.attacks import (
    OSLO,
    Attack,
    AttackResult,
    AugmentationAttack,
    BoundaryAttack,
    GapAttack,
    MetricAttack,
    NoiseAttack,
    SmoothingRadius,
    WhiteBoxBoundary,
)
from labelleak.errors import InvalidInputError
from labelleak.oracle.budget import even_allowance

_PER_CANDIDATE: tuple[type[Attack], ...] = (
    GapAttack,
    BoundaryAttack,
    WhiteBoxBoundary,
    SmoothingRadius,
    OSLO,
    MetricAttack,
)
# scalar extras that count or sum over candidates: added over shards
_SUM_KEYS = {"abstained", "started", "guided_steps", "prior_steps", "prior_alpha_sum", "refine_steps"}
_MAX_KEYS = {"iterations"}  # scalar extras that report the longest run: the largest shard value


def is_shardable(attack: Attack) -> bool:
    """Whether ``attack`` scores each candidate independently of the others (see the module notes)."""
    if isinstance(attack, (AugmentationAttack, NoiseAttack)):
        return attack.scorer == "count"
    return isinstance(attack, _PER_CANDIDATE)


def shard_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` ranges covering ``range(n)`` in order, as equal as possible, none empty."""
    if shards < 1:
        raise InvalidInputError(f"shards: expected a positive integer, got {shards}")
    edges = np.linspace(0, n, min(shards, max(n, 1)) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def split_total(total: int | None, sizes: list[int]) -> list[int | None]:
    """A total query cap split over shards in proportion to their sizes; the remainder goes to the first shards."""
    if total is None:
        return [None] * len(sizes)
    n = sum(sizes)
    base = [total * s // n if n else 0 for s in sizes]
    left = total - sum(base)
    return [b + (1 if i < left else 0) for i, b in enumerate(base)]


def shard_totals(total: int | None, sizes: list[int]) -> list[int | None]:
    """A total query cap split over shards of an attack so that every candidate keeps the allowance it would
    have in the whole batch: ``even_allowance(total, n)`` times each shard's size (no shardable attack spends
    setup queries, which a shard would spend again)."""
    if total is None:
        return [None] * len(sizes)
    if len(sizes) == 1:
        return [total]
    each = even_allowance(total, sum(sizes))
    return [each * s for s in sizes]


def merge_results(parts: list[AttackResult], *, seconds: float) -> AttackResult:
    """One result from the results of consecutive shards (arrays concatenated in shard order)."""
    if not parts:
        raise InvalidInputError("merge_results: no shard results")
    first = parts[0]
    sizes = [len(p.scores) for p in parts]
    extras = _merge([p.extras for p in parts], sizes, first.attack, "extras")
    return AttackResult(
        attack=first.attack,
        threat_model=first.threat_model,
        scores=np.concatenate([p.scores for p in parts]),
        status=np.concatenate([p.status for p in parts]),
        queries=np.concatenate([p.queries for p in parts]),
        setup_queries=sum(p.setup_queries for p in parts),
        seconds=seconds,
        params=first.params,
        extras=extras,
        allowance=_merge([p.allowance for p in parts], sizes, first.attack, "allowance"),
        cut_short=sum(p.cut_short for p in parts),
    )


def _merge(values: list[Any], sizes: list[int], attack: str, where: str) -> Any:
    first = values[0]
    if isinstance(first, dict):
        keys = list(first)
        if any(list(v) != keys for v in values):
            raise InvalidInputError(f"{attack}: {where} has different keys in different shards; cannot merge")
        return {k: _merge([v[k] for v in values], sizes, attack, f"{where}[{k!r}]") for k in keys}
    if isinstance(first, np.ndarray) and all(isinstance(v, np.ndarray) and len(v) == s for v, s in zip(values, sizes)):
        return np.concatenate(values)
    key = where.rsplit("[", 1)[-1].strip("]'\"")
    if key in _SUM_KEYS:
        return sum(values)
    if key in _MAX_KEYS:
        return max(values)
    if all(_same(v, first) for v in values):
        return first
    raise InvalidInputError(f"{attack}: {where} differs between shards; this attack cannot be sharded")


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except (TypeError, ValueError):
        return a == b
