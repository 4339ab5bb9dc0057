"""Splitting an attack's candidates into shards and merging the shards' results back, in candidate order.

An attack can be sharded when each candidate's score, status and query count depend only on that candidate (and
the seed): the attacks draw their randomness from :class:`labelleak.rng.KeyedStream` keyed by candidate content,
so a shard gives the same numbers as the whole batch. The attack says so itself
(``attack.capabilities().shardable``); one that looks at all candidates at once (a score relative to the batch,
a model trained on the candidates, setup queries that a shard would spend again) is run whole.

Under a total query cap each shard gets its candidates' even share
(:func:`labelleak.oracle.budget.shard_totals`), so a candidate's allowance, and with it its score, is the same in
a shard as in the whole batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labelleak.attacks import Attack, AttackResult
from labelleak.errors import InvalidInputError
from labelleak.oracle.budget import shard_totals, split_total

__all__ = ["is_shardable", "merge_results", "shard_bounds", "shard_totals", "split_total"]

# scalar extras that count or sum over candidates: added over shards
_SUM_KEYS = {"abstained", "started", "guided_steps", "prior_steps", "prior_alpha_sum", "refine_steps"}
_MAX_KEYS = {"iterations"}  # scalar extras that report the longest run: the largest shard value


def is_shardable(attack: Attack) -> bool:
    """Whether ``attack`` scores each candidate independently of the others, as it declares (see the notes)."""
    return attack.capabilities().shardable


def shard_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` ranges covering ``range(n)`` in order, as equal as possible, none empty."""
    if shards < 1:
        raise InvalidInputError(f"shards: expected a positive integer, got {shards}")
    edges = np.linspace(0, n, min(shards, max(n, 1)) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


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
