"""What every attack shares: the result type, per-sample statuses, and the template ``__call__``.

``Attack.__call__`` validates the candidates at the edge, wraps the oracle in a fresh :class:`QueryLedger` (so
query counts are per attack call and budgets hold), times the run and packs an :class:`AttackResult`. A concrete
attack writes only ``_run``, which returns one raw score per candidate (higher = more likely a member).
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar, final

import numpy as np
import torch

from labelleak._validation import as_float_array, as_labels, check_in_bounds
from labelleak.attacks.capabilities import Capabilities, QueryCost, QueryPlan, ThreatModel
from labelleak.errors import InvalidInputError
from labelleak.oracle.base import LabelOracle
from labelleak.oracle.budget import BudgetedOracle, QueryLedger


class Status(IntEnum):
    """Why a candidate's score is what it is."""

    OK = 0
    MISCLASSIFIED = 1  # the target already gets the candidate wrong
    FAILED = 2  # the attack found nothing (e.g. no adversarial starting point)
    BUDGET_HIT = 3  # the query budget ran out before the attack finished; the score is the best so far


@dataclass(frozen=True)
class ShadowData:
    """The adversary's own data: a shadow-train part (members of a shadow model) and a shadow-test part."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def __post_init__(self) -> None:
        for xs, ys, part in ((self.x_train, self.y_train, "train"), (self.x_test, self.y_test, "test")):
            if len(xs) != len(ys):
                raise InvalidInputError(f"shadow {part}: {len(xs)} samples but {len(ys)} labels")


@dataclass
class RawScores:
    """What ``_run`` hands back: scores and statuses per candidate, plus attack-specific extras."""

    scores: np.ndarray
    status: np.ndarray
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class AttackResult:
    """Raw per-candidate scores (higher = member), statuses, query counts and provenance."""

    attack: str
    threat_model: str
    scores: np.ndarray
    status: np.ndarray
    queries: np.ndarray
    setup_queries: int
    seconds: float
    params: dict[str, Any]
    extras: dict[str, Any] = field(default_factory=dict)
    # under a total cap: the queries every candidate was allowed (the same for all; None without a total cap) and
    # how many candidates it cut short (status budget_hit where the cap had lowered the allowance below the
    # per-sample budget)
    allowance: int | None = None
    cut_short: int = 0

    @property
    def queries_per_sample(self) -> float:
        """Mean queries spent on each candidate (setup queries such as shadow labelling are reported apart)."""
        return float(self.queries.mean()) if len(self.queries) else 0.0

    def status_counts(self) -> dict[str, int]:
        return {s.name.lower(): int((self.status == s).sum()) for s in Status}

    def __str__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self.status_counts().items() if v)
        return (
            f"{self.attack} [{self.threat_model}]: {len(self.scores)} candidates ({counts}), "
            f"{self.queries_per_sample:.1f} queries/sample, {self.seconds:.2f}s"
        )


def _as_data(value: Any) -> Any:
    """A parameter as plain data for results files: a dataclass value (a ``ShadowRecipe``) becomes a dict."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


class Attack(ABC):
    """Base class of all membership-inference attacks. Hyperparameters go to ``__init__``; data to ``__call__``."""

    name: str = "attack"  # labels results; the registry sets the registered name
    # what the attack declares (read through :meth:`capabilities`; see :class:`Capabilities`)
    threat_model: ClassVar[ThreatModel] = ThreatModel.LABEL_ONLY
    needs_shadow: ClassVar[bool] = False
    shadow_reason: ClassVar[str] = "this attack needs shadow data"  # the error's words when shadow data is missing
    # its statuses say, from one label query per candidate, which candidates the target gets right (ok) and
    # which wrong (misclassified): the audit reads the target's accuracy on the candidates from them for free
    reports_accuracy: ClassVar[bool] = False
    trains_reference_models: ClassVar[bool] = False
    shardable: ClassVar[bool] = False  # each candidate's result depends on that candidate alone
    gives_distances: ClassVar[bool] = False  # extras["distances"]: boundary distances, for a data-free threshold
    # how it spends queries (read by :meth:`query_plan`); the default, a search bounded only by the budget, is a
    # true ceiling for any attack that spends no setup queries
    query_cost: ClassVar[QueryCost] = QueryCost(per_candidate=None, all_at_once=False)
    # how an attack that trains reference models maps its training jobs (``map``-like; None: the builtin map).
    # Not a hyperparameter: an executor sets it on its own copy to train the models on its workers.
    train_map: Callable[[Callable[[Any], Any], Sequence[Any]], Iterable[Any]] | None = None

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, read back from the attributes of the same name."""
        sig = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p in sig.parameters if p != "self" and hasattr(self, p)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def capabilities(self) -> Capabilities:
        """What this attack needs and allows, from its class declarations; an attack whose answer depends on its
        parameters (e.g. a scorer that trains a model) refines it."""
        return Capabilities(
            threat_model=ThreatModel(self.threat_model),
            needs_shadow=self.needs_shadow,
            uses_reference_models=self.trains_reference_models,
            shardable=self.shardable,
            gives_distances=self.gives_distances,
            reports_accuracy=self.reports_accuracy,
        )

    def query_plan(self, budget: int | None, *, shadow_train: int = 0, shadow_test: int = 0) -> QueryPlan:
        """The target queries one call will send, before it runs: per candidate under the per-candidate
        ``budget`` (the allowance; ``None``: unbounded), and setup queries for shadow data of ``shadow_train`` +
        ``shadow_test`` rows. Read from :attr:`query_cost`; attacks whose cost is computed override it."""
        return self.query_cost.plan(self, budget, shadow_train=shadow_train, shadow_test=shadow_test)

    @final
    def __call__(
        self,
        oracle: LabelOracle,
        x: Any,
        y: Any,
        *,
        shadow: ShadowData | None = None,
        max_queries_per_sample: int | None = None,
        max_total_queries: int | None = None,
        progress: bool = False,
    ) -> AttackResult:
        """Score candidates ``(x, y)`` against ``oracle``.

        Args:
            oracle: the target, seen through labels only; score-based attacks need one that is also a
                :class:`~labelleak.oracle.ScoreOracle` (e.g. :class:`~labelleak.oracle.TorchScoreOracle`).
            x: candidates, shape (N, *oracle.input_shape), values within ``oracle.bounds``.
            y: their true labels, shape (N,), in ``0..oracle.n_classes - 1``.
            shadow: the adversary's own data, required by attacks that train shadow models.
            max_queries_per_sample: budget cap per candidate for this call.
            max_total_queries: budget cap over all candidates for this call, setup queries included; what the
                setup leaves is shared evenly (``result.allowance`` per candidate, see
                :class:`~labelleak.oracle.budget.QueryLedger`).
        """
        xs = as_float_array(x, name=f"{self.name}: x")
        if tuple(xs.shape[1:]) != oracle.input_shape:
            raise InvalidInputError(
                f"{self.name}: x must have shape (N, {', '.join(map(str, oracle.input_shape))}), got {xs.shape}"
            )
        check_in_bounds(xs, oracle.bounds, name=f"{self.name}: x")
        ys = as_labels(y, name=f"{self.name}: y", n_classes=oracle.n_classes, length=len(xs))
        if shadow is None and self.capabilities().needs_shadow:
            raise InvalidInputError(f"{self.name}: {self.shadow_reason} (shadow=ShadowData(...))")
        self._check_oracle(oracle)
        ledger = QueryLedger(len(xs), max_per_sample=max_queries_per_sample, max_total=max_total_queries)
        budgeted = BudgetedOracle(oracle, ledger)
        start = time.perf_counter()
        raw = self._run(budgeted, torch.from_numpy(xs), torch.from_numpy(ys), shadow=shadow, progress=progress)
        seconds = time.perf_counter() - start
        assert raw.scores.shape == (len(xs),) and raw.status.shape == (len(xs),)
        return AttackResult(
            attack=self.name,
            threat_model=ThreatModel(self.threat_model).value,
            scores=np.asarray(raw.scores, dtype=np.float64),
            status=np.asarray(raw.status, dtype=np.int8),
            queries=ledger.used.numpy().copy(),
            setup_queries=ledger.setup,
            seconds=seconds,
            params={k: _as_data(v) for k, v in self.get_params().items()},
            extras=raw.extras,
            allowance=None if max_total_queries is None else ledger.allowance(),
            cut_short=int((raw.status == Status.BUDGET_HIT).sum()) if ledger.lowered else 0,
        )

    def _check_oracle(self, oracle: LabelOracle) -> None:
        """Hook for attacks that need more than labels (score-based, white-box)."""
        return None

    @abstractmethod
    def _run(
        self, oracle: BudgetedOracle, x: torch.Tensor, y: torch.Tensor, *, shadow: ShadowData | None, progress: bool
    ) -> RawScores:
        """Return one raw score per candidate; all candidates are processed together."""
