"""Reference models shared by the attacks that calibrate per example (LiRA, boundary-LiRA, RMIA, DHAttack, YOQO).

Each of the K models mimics the target: it trains, with the target's recipe (the audit's own training settings),
on a random set of rows of the target's size, ``reference_size`` (the audit passes the rows the target was
trained on, ``results.json["target"]["trained_rows"]``; for a model labelleak did not train, the number of member
candidates). Called directly, ``None`` means half the shadow data (train + test): the target's size when the
adversary holds twice as much data as the target trained on, as in the audit's default split.

* Online, the pool is the candidates, in a canonical order (by content key, then label), followed by the
  adversary's shadow data (train + test). The models come in complementary pairs: for pair j a seeded random
  half of the candidates (floor(N / 2)) is IN for model 2j and the other half for model 2j + 1, so every
  candidate is IN for **exactly** K / 2 models (K must be even) and OUT for the others, and every model holds
  about N / 2 candidates. Each model's set is then filled up to ``reference_size`` with shadow rows drawn at
  random. Should half the candidates not fit in the target's size, the models train on ceil(N / 2) rows instead,
  and a warning says so.
* Offline, each model trains on a random subset of the shadow data of ``reference_size`` rows.

The canonical order makes a candidate's IN/OUT models, and so its score, independent of the order in which the
candidates come. All draws come one after another from ``np.random.default_rng(seed)`` (the pairs' halves, then
each model's fill), and model k trains with seed ``seed + 1 + k`` on its rows in pool order. Every attack that asks
for the same recipe, seed, data, K and size therefore gets the same models, and with the recipe's ``cache_dir``
they are trained once: the recipe's model cache keys each model by recipe, data digest and seed.

Training goes through ``map_fn(train_reference_job, jobs)`` (default: the builtin ``map``), so an executor's
``map`` (e.g. Ray's) can train the K models in parallel; a job is a picklable :class:`ReferenceJob` of plain
values and :func:`train_reference_job` is a top-level function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from labelleak.attacks._shadow import ShadowRecipe
from labelleak.attacks.base import Attack, ShadowData
from labelleak.errors import InvalidInputError
from labelleak.logs import get_logger
from labelleak.oracle.budget import BudgetedOracle
from labelleak.progress import progress_bar
from labelleak.rng import content_keys

MapFn = Callable[[Callable[[Any], Any], Sequence[Any]], Iterable[Any]]

log = get_logger(__name__)


@dataclass(frozen=True)
class ReferenceModels:
    """K trained reference models and who was in whose training set.

    ``inside[k, i]`` is True when candidate i was in model k's training set (all False offline; online, every
    column holds exactly K / 2); ``seeds[k]`` is model k's training seed and ``rows[k]`` its training rows of the
    pool, ``size`` of them. Online, pool row j < N is candidate ``order[j]``; the shadow data follows.
    """

    models: list[torch.nn.Module]  # K models, eval mode
    inside: np.ndarray  # (K, n) bool
    seeds: tuple[int, ...] = ()
    rows: tuple[np.ndarray, ...] = ()
    online: bool = False
    order: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    size: int = 0  # rows each model trained on

    @property
    def k(self) -> int:
        return len(self.models)


@dataclass(frozen=True)
class ReferenceJob:
    """One reference model to train: rows ``rows`` of the pool (``pool_x``, ``pool_y``) with ``recipe`` and
    ``seed``. Plain values only, so that a job can be sent to another process."""

    pool_x: np.ndarray
    pool_y: np.ndarray
    rows: np.ndarray
    recipe: ShadowRecipe
    input_shape: tuple[int, ...]
    n_classes: int
    seed: int


def train_reference_job(job: ReferenceJob) -> nn.Module:
    """Train (or load from the recipe's cache) the model of ``job``; eval mode."""
    model = job.recipe.train(
        job.pool_x[job.rows],
        job.pool_y[job.rows],
        input_shape=job.input_shape,
        n_classes=job.n_classes,
        seed=job.seed,
        description="reference",
    )
    return model.eval()


def canonical_order(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """A permutation of the candidates that depends on their contents only: by content key, then label (two
    different candidates share both with probability about N^2 / 2^33)."""
    keys = content_keys(x).numpy()
    return np.lexsort((y.numpy(), keys)).astype(np.int64)


def reference_pool(
    x: torch.Tensor, y: torch.Tensor, shadow: ShadowData, *, online: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The data reference models draw from: shadow train + test, preceded when ``online`` by the candidates in
    :func:`canonical_order`; and that order (empty offline)."""
    pool_x = np.concatenate([shadow.x_train, shadow.x_test])
    pool_y = np.concatenate([shadow.y_train, shadow.y_test])
    if not online:
        return pool_x, pool_y, np.zeros(0, dtype=np.int64)
    order = canonical_order(x, y)
    pool_x = np.concatenate([x.numpy()[order], pool_x])
    pool_y = np.concatenate([y.numpy()[order], pool_y])
    return pool_x, pool_y, order


def reference_size_for(n_candidates: int, n_shadow: int, reference_size: int | None, *, online: bool) -> int:
    """Rows each reference model trains on: ``reference_size`` (the target's), ``None`` meaning half the shadow
    data; online at least half the candidates (rounded up), so that every candidate fits in K / 2 models."""
    half = -(-n_candidates // 2)
    if reference_size is None:
        return max(n_shadow // 2, half if online else 0, 1)
    if isinstance(reference_size, bool) or not isinstance(reference_size, (int, np.integer)) or reference_size < 1:
        raise InvalidInputError(f"reference_size: expected a positive integer or None, got {reference_size!r}")
    size = int(reference_size)
    if online and size < half:
        log.warning(
            "reference models: half the %d candidates (%d) do not fit in the target's %d training rows; each "
            "online reference model trains on %d rows instead",
            n_candidates,
            half,
            size,
            half,
        )
        return half
    return size


def draw_rows(
    n: int, n_shadow: int, *, n_reference: int, size: int, online: bool, seed: int
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Who is IN for which model, ``(K, n)`` over the candidates in pool order, and each model's ``size`` rows of
    the pool (candidates ``0..n-1`` then shadow rows), sorted (see the module docstring)."""
    rng = np.random.default_rng(seed)
    inside = np.zeros((n_reference, n), dtype=bool)
    if not online:
        rows = tuple(np.sort(rng.permutation(n_shadow)[:size]) for _ in range(n_reference))
        return inside, rows
    for j in range(n_reference // 2):  # complementary pairs: each candidate is IN for one model of each pair
        inside[2 * j, rng.permutation(n)[: n // 2]] = True
        inside[2 * j + 1] = ~inside[2 * j]
    fills = [n + rng.permutation(n_shadow)[: size - int(row.sum())] for row in inside]
    rows = tuple(np.sort(np.concatenate([np.flatnonzero(row), fill])) for row, fill in zip(inside, fills))
    return inside, rows


def _check_sizes(n: int, n_shadow: int, size: int, *, n_reference: int, online: bool) -> None:
    if n_reference < 2:
        raise InvalidInputError(f"n_reference: expected at least 2 reference models, got {n_reference}")
    if online and n_reference % 2:
        raise InvalidInputError(
            f"n_reference: online reference models come in complementary pairs, so that every candidate is IN for "
            f"exactly half of them; expected an even number, got {n_reference} (use {n_reference + 1}, or offline)"
        )
    fill = size - n // 2 if online else size
    if fill > n_shadow:
        what = f"{n // 2} candidates and {fill} shadow rows" if online else "shadow rows"
        raise InvalidInputError(
            f"reference models: each trains on {size} rows ({what}), but the shadow data holds only {n_shadow}; "
            f"give at least {fill} shadow samples or a smaller reference_size"
        )


def train_reference_models(
    x: torch.Tensor,
    y: torch.Tensor,
    shadow: ShadowData,
    *,
    n_reference: int,
    online: bool,
    recipe: ShadowRecipe,
    input_shape: tuple[int, ...],
    n_classes: int,
    seed: int,
    reference_size: int | None = None,
    map_fn: MapFn | None = None,
    progress: bool = False,
) -> ReferenceModels:
    """Train ``n_reference`` models, each on ``reference_size`` rows (see the module docstring).

    Args:
        x, y: the candidates (N, *input_shape) and their labels; used for training only when ``online``.
        shadow: the adversary's own data.
        reference_size: rows each model trains on, the target's training-set size; ``None``: half the shadow
            data (online at least ceil(N / 2)).
        map_fn: ``map_fn(train_reference_job, jobs)`` trains the jobs in order (default: builtin ``map``).

    Raises ``InvalidInputError`` for fewer than 2 models, an odd number online, or too little shadow data.
    """
    n = len(x)
    pool_x, pool_y, order = reference_pool(x, y, shadow, online=online)
    n_shadow = len(pool_x) - (n if online else 0)
    size = reference_size_for(n, n_shadow, reference_size, online=online)
    _check_sizes(n, n_shadow, size, n_reference=n_reference, online=online)
    in_pool_order, rows = draw_rows(n, n_shadow, n_reference=n_reference, size=size, online=online, seed=seed)
    seeds = tuple(seed + 1 + k for k in range(n_reference))
    jobs = [ReferenceJob(pool_x, pool_y, r, recipe, tuple(input_shape), int(n_classes), s) for r, s in zip(rows, seeds)]
    inside = np.zeros((n_reference, n), dtype=bool)  # offline, nothing is IN
    if online:
        inside[:, order] = in_pool_order  # pool row j is candidate order[j]
    models: list[nn.Module] = []
    with progress_bar("reference models", n_reference, enabled=progress) as bar:
        for model in (map_fn or map)(train_reference_job, jobs):
            models.append(model.eval())
            if bar is not None:
                bar.update(bar.task_ids[0], advance=1)
    if len(models) != n_reference:
        raise InvalidInputError(f"map_fn returned {len(models)} models for {n_reference} jobs")
    return ReferenceModels(models=models, inside=inside, seeds=seeds, rows=rows, online=online, order=order, size=size)


class ReferenceModelAttack(Attack):
    """An attack calibrated by reference models: ``n_reference``, ``online``, ``reference_size`` (the target's
    training-set size, which the audit fills in), ``shadow_recipe`` and ``seed`` pick them, and the executor's
    ``train_map`` (Ray: one task per model) trains them."""

    trains_reference_models = True
    n_reference: int
    online: bool
    shadow_recipe: ShadowRecipe
    seed: int
    reference_size: int | None = None

    def _reference_models(
        self,
        oracle: BudgetedOracle,
        x: torch.Tensor,
        y: torch.Tensor,
        shadow: ShadowData,
        *,
        online: bool | None = None,
        progress: bool = False,
    ) -> ReferenceModels:
        """This attack's reference models on ``shadow`` (``online`` overrides the attack's own setting)."""
        return train_reference_models(
            x,
            y,
            shadow,
            n_reference=self.n_reference,
            online=self.online if online is None else online,
            recipe=self.shadow_recipe,
            input_shape=oracle.input_shape,
            n_classes=oracle.n_classes,
            seed=self.seed,
            reference_size=self.reference_size,
            map_fn=self.train_map,
            progress=progress,
        )
