"""Boundary searches on all K reference models at once (boundary-LiRA, DHAttack).

The reference models are the adversary's own, in process. Searched one after another, every phase of the search
(noise starts, blend, binary searches, gradient estimates, step searches) runs K times with its Python overhead,
its shared direction draws and its small model calls. Here one search runs over K x N rows, row ``k * N + i``
being candidate i on model k:

* each row holds its candidate's content, so the randomness keyed by content (:class:`labelleak.rng.KeyedStream`)
  and the directions shared per iteration are those of the search run alone on that model;
* the ledger has K x N rows with the same per-candidate cap: a row's budget is the one it has alone;
* every query is routed by row to its model (:func:`route`), and each model answers its own rows, in their order,
  with its own forward (no stacked weights: a vmapped matrix product may round differently from the model's own).

Every step of the search is per row (masks, per-row budgets, per-row randomness), so a row follows its solo
trajectory as long as its labels are the same, and they are as long as a model's answer to a point does not depend
on the other points of the call: :class:`~labelleak.oracle.backends.TorchOracle` pads small chunks for that
(``MIN_CHUNK_ROWS``), and DHAttack's fixed-path search sends each model exactly the calls its solo search does.
Models are searched in groups of at most ``max_elements`` input values (models x N x D) to bound memory; the
grouping changes no result. ``tests/attacks/test_reference_search.py`` checks the rows against solo searches,
byte for byte.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from labelleak.attacks._shadow import ShadowRecipe
from labelleak.errors import InvalidInputError
from labelleak.oracle.backends import TorchOracle
from labelleak.oracle.base import LabelOracle
from labelleak.oracle.budget import BudgetedOracle, QueryLedger

Label = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (points (B, ...), candidates (B,)) -> labels (B,)
Measure = Callable[[BudgetedOracle, torch.Tensor, torch.Tensor], tuple[np.ndarray, np.ndarray]]
MAX_ELEMENTS = 1 << 25  # input values (models x N x D) searched at once: 128 MiB per float32 copy of the rows


def route(n: int, fns: Sequence[Label]) -> Label:
    """Labels for rows of K x ``n``: row r is candidate ``r % n`` on model ``r // n``, answered by ``fns[r // n]``
    on that model's points only, in their order (one call per model present, never per sample)."""

    def labels(points: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        model = rows // n
        out = torch.empty(len(rows), dtype=torch.int64)
        for k in torch.unique(model).tolist():
            mine = torch.nonzero(model == k).flatten()
            out[mine] = fns[k](points[mine], rows[mine] - k * n)
        return out

    return labels


class RoutedOracle(BudgetedOracle):
    """K in-process models seen as one budgeted oracle over K x ``n`` rows (see the module docstring), each row
    capped at ``cap`` queries as its own search would be."""

    def __init__(
        self,
        models: Sequence[nn.Module | LabelOracle],
        n: int,
        *,
        input_shape: tuple[int, ...],
        n_classes: int,
        bounds: tuple[float, float],
        cap: int | None,
    ) -> None:
        if not models:
            raise InvalidInputError("RoutedOracle: expected at least one model")
        oracles = [  # a model answers with its argmax; an oracle as it serves (label randomisation, say)
            m
            if isinstance(m, LabelOracle)
            else TorchOracle(m, input_shape=input_shape, n_classes=n_classes, bounds=bounds)
            for m in models
        ]
        super().__init__(oracles[0], QueryLedger(len(models) * n, max_per_sample=cap))
        self.n = n
        self._labels = route(n, [_answer(o) for o in oracles])

    def _answer_rows(self, x: torch.Tensor, owners: torch.Tensor) -> torch.Tensor:
        """Each row's label from the model of its owner (B,); :meth:`query` has checked and charged them."""
        return self._labels(x, owners)

    def query_setup(self, x: torch.Tensor) -> torch.Tensor:
        raise InvalidInputError("RoutedOracle: a reference search has no setup queries; every row is a candidate's")


def _answer(oracle: LabelOracle) -> Label:
    def labels(points: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return oracle.predict_labels(points)

    return labels


def served_references(
    recipe: ShadowRecipe, models: Sequence[nn.Module], oracle: LabelOracle | BudgetedOracle, seed: int
) -> list[nn.Module | LabelOracle]:
    """The reference models as the target serves labels: each behind label randomisation (its votes keyed by
    ``seed + 1 + k``) when the recipe's defense has it, else the models themselves (their argmax)."""
    if not recipe.randomises_labels():
        return list(models)
    shape, classes, bounds = oracle.input_shape, oracle.n_classes, oracle.bounds
    return [
        recipe.label_oracle(m, input_shape=shape, n_classes=classes, bounds=bounds, seed=seed + 1 + k)
        for k, m in enumerate(models)
    ]


def model_groups(k: int, n: int, d: int, max_elements: int = MAX_ELEMENTS) -> list[range]:
    """The K models in consecutive groups of at most ``max_elements // (n d)`` models (at least one each)."""
    per = max(1, max_elements // max(n * d, 1))
    return [range(start, min(start + per, k)) for start in range(0, k, per)]


def tile(t: torch.Tensor, times: int) -> torch.Tensor:
    """``t`` (N, ...) repeated ``times`` times along the rows: (times * N, ...), copy j in rows j N to j N + N - 1."""
    return t.repeat(times, *([1] * (t.dim() - 1)))


@dataclass(frozen=True)
class ReferenceSearches:
    """What each reference model's search found: per model and candidate."""

    distance: np.ndarray  # (K, N) as ``measure`` gives it (boundary-LiRA: signed)
    status: np.ndarray  # (K, N) int8
    queries: np.ndarray  # (K,) int64: queries spent on each model


def search_references(
    measure: Measure,
    models: Sequence[nn.Module | LabelOracle],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    input_shape: tuple[int, ...],
    n_classes: int,
    bounds: tuple[float, float],
    cap: int | None,
    max_elements: int = MAX_ELEMENTS,
    on_group: Callable[[range, ReferenceSearches], None] | None = None,
) -> ReferenceSearches:
    """``measure(oracle, x, y) -> (distance (R,), status (R,))`` run once per group of models over their K x N
    rows (a :class:`RoutedOracle` with per-row cap ``cap``), cut back into one row per model.

    ``on_group(models, found)`` is called after each group with the indices of its models and what their searches
    found (to save them as they finish, or to advance a progress bar).
    """
    n, k = len(x), len(models)
    distance = np.empty((k, n), dtype=np.float64)
    status = np.empty((k, n), dtype=np.int8)
    queries = np.zeros(k, dtype=np.int64)
    for group in model_groups(k, n, math.prod(x.shape[1:]), max_elements):
        g = len(group)
        oracle = RoutedOracle(
            [models[j] for j in group], n, input_shape=input_shape, n_classes=n_classes, bounds=bounds, cap=cap
        )
        d, s = measure(oracle, tile(x, g), tile(y, g))
        part = ReferenceSearches(
            distance=np.reshape(d, (g, n)),
            status=np.reshape(s, (g, n)),
            queries=oracle.ledger.used.reshape(g, n).sum(1).numpy(),
        )
        rows = slice(group.start, group.stop)
        distance[rows], status[rows], queries[rows] = part.distance, part.status, part.queries
        if on_group is not None:
            on_group(group, part)
    return ReferenceSearches(distance=distance, status=status, queries=queries)
