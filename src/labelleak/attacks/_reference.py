"""Reference models shared by the attacks that calibrate per example (LiRA, boundary-LiRA, RMIA, DHAttack, YOQO).

K models are trained on seeded random halves of a pool: the adversary's shadow data (train + test) and, online,
the candidates in front of it, in a canonical order (by content key, then label), so that a candidate's IN/OUT
models, and so its score, do not depend on the order in which the candidates come. Model k trains on
``halves[k]`` with seed ``seed + 1 + k``; the halves are drawn one after another from
``np.random.default_rng(seed)``. Every attack that asks for the same recipe, seed, data
and K therefore gets the same models, and with the recipe's ``cache_dir`` they are trained once: the recipe's
model cache keys each model by recipe, data digest and seed.

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
from labelleak.oracle.budget import BudgetedOracle
from labelleak.progress import progress_bar
from labelleak.rng import content_keys

MapFn = Callable[[Callable[[Any], Any], Sequence[Any]], Iterable[Any]]


@dataclass(frozen=True)
class ReferenceModels:
    """K trained reference models and who was in whose training set.

    ``inside[k, i]`` is True when candidate i was in model k's training set (all False offline); ``seeds[k]`` is
    model k's training seed and ``halves[k]`` its training rows of the pool. Online, pool row j < N is candidate
    ``order[j]``; the shadow data follows.
    """

    models: list[torch.nn.Module]  # K models, eval mode
    inside: np.ndarray  # (K, n) bool
    seeds: tuple[int, ...] = ()
    halves: tuple[np.ndarray, ...] = ()
    online: bool = False
    order: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def k(self) -> int:
        return len(self.models)


@dataclass(frozen=True)
class ReferenceJob:
    """One reference model to train: rows ``half`` of the pool (``pool_x``, ``pool_y``) with ``recipe`` and
    ``seed``. Plain values only, so that a job can be sent to another process."""

    pool_x: np.ndarray
    pool_y: np.ndarray
    half: np.ndarray
    recipe: ShadowRecipe
    input_shape: tuple[int, ...]
    n_classes: int
    seed: int


def train_reference_job(job: ReferenceJob) -> nn.Module:
    """Train (or load from the recipe's cache) the model of ``job``; eval mode."""
    model = job.recipe.train(
        job.pool_x[job.half],
        job.pool_y[job.half],
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
    map_fn: MapFn | None = None,
    progress: bool = False,
) -> ReferenceModels:
    """Train ``n_reference`` models on seeded random halves of the pool (see the module docstring).

    Args:
        x, y: the candidates (N, *input_shape) and their labels; used for training only when ``online``.
        shadow: the adversary's own data.
        map_fn: ``map_fn(train_reference_job, jobs)`` trains the jobs in order (default: builtin ``map``).
    """
    if n_reference < 2:
        raise InvalidInputError(f"n_reference: expected at least 2 reference models, got {n_reference}")
    n = len(x)
    pool_x, pool_y, order = reference_pool(x, y, shadow, online=online)
    if len(pool_x) < 2:
        raise InvalidInputError(f"reference models: the pool has {len(pool_x)} sample(s); give more shadow data")
    rng = np.random.default_rng(seed)
    halves = tuple(rng.permutation(len(pool_x))[: len(pool_x) // 2] for _ in range(n_reference))
    seeds = tuple(seed + 1 + k for k in range(n_reference))
    jobs = [
        ReferenceJob(pool_x, pool_y, half, recipe, tuple(input_shape), int(n_classes), s)
        for half, s in zip(halves, seeds)
    ]
    inside = np.zeros((n_reference, n), dtype=bool)
    if online:
        for k, half in enumerate(halves):
            inside[k, order[half[half < n]]] = True
    models: list[nn.Module] = []
    with progress_bar("reference models", n_reference, enabled=progress) as bar:
        for model in (map_fn or map)(train_reference_job, jobs):
            models.append(model.eval())
            if bar is not None:
                bar.update(bar.task_ids[0], advance=1)
    if len(models) != n_reference:
        raise InvalidInputError(f"map_fn returned {len(models)} models for {n_reference} jobs")
    return ReferenceModels(models=models, inside=inside, seeds=seeds, halves=halves, online=online, order=order)


class ReferenceModelAttack(Attack):
    """An attack calibrated by reference models: ``n_reference``, ``online``, ``shadow_recipe`` and ``seed`` pick
    them, and the executor's ``train_map`` (Ray: one task per model) trains them."""

    trains_reference_models = True
    n_reference: int
    online: bool
    shadow_recipe: ShadowRecipe
    seed: int

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
            map_fn=self.train_map,
            progress=progress,
        )
