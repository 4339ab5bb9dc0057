"""Per-attack query accounting: who spent how many queries, and how many are left.

A :class:`QueryLedger` is plain bookkeeping (checkpointable with ``state_dict``); a :class:`BudgetedOracle`
charges it before every batch it forwards, so an attack cannot exceed its budget even by mistake.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from labelleak.errors import BudgetExhaustedError, InvalidInputError
from labelleak.oracle.base import LabelOracle
from labelleak.oracle.scores import ScoreOracle


class QueryLedger:
    """Queries charged to each of ``n_samples`` candidates, with optional per-sample and total caps."""

    def __init__(self, n_samples: int, *, max_per_sample: int | None = None, max_total: int | None = None) -> None:
        for name, value in (("max_per_sample", max_per_sample), ("max_total", max_total)):
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 0):
                raise InvalidInputError(f"{name}: expected a non-negative integer or None, got {value!r}")
        self.max_per_sample = None if max_per_sample is None else int(max_per_sample)
        self.max_total = None if max_total is None else int(max_total)
        self.used = torch.zeros(n_samples, dtype=torch.int64)
        self.setup = 0  # queries not attributable to one candidate (e.g. labelling a shadow set)

    @property
    def total(self) -> int:
        return int(self.used.sum()) + self.setup

    def remaining(self) -> torch.Tensor:
        """Queries each candidate may still spend (int64, (n_samples,)); the total cap is applied to each."""
        big = torch.iinfo(torch.int64).max // 4
        left = torch.full_like(self.used, big)
        if self.max_per_sample is not None:
            left = torch.clamp(self.max_per_sample - self.used, min=0)
        if self.max_total is not None:
            left = torch.clamp(left, max=max(self.max_total - self.total, 0))
        return left

    def charge(self, owners: torch.Tensor) -> None:
        """Charge one query to each entry of ``owners`` (candidate indices), or raise without charging."""
        counts = torch.bincount(owners, minlength=len(self.used))
        if self.max_per_sample is not None and bool(((self.used + counts) > self.max_per_sample).any()):
            over = int(((self.used + counts) > self.max_per_sample).sum())
            raise BudgetExhaustedError(
                f"per-sample budget {self.max_per_sample} would be exceeded for {over} sample(s)"
            )
        self.charge_setup(0, extra=int(counts.sum()))
        self.used += counts

    def charge_setup(self, n: int, *, extra: int = 0) -> None:
        """Charge ``n`` queries that belong to no candidate; ``extra`` is checked against the total cap only."""
        if self.max_total is not None and self.total + n + extra > self.max_total:
            raise BudgetExhaustedError(
                f"total budget {self.max_total} would be exceeded ({self.total} used, {n + extra} more asked)"
            )
        self.setup += n

    def state_dict(self) -> dict[str, Any]:
        return {
            "used": self.used.numpy().copy(),
            "setup": self.setup,
            "max_per_sample": self.max_per_sample,
            "max_total": self.max_total,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        used = np.asarray(state["used"], dtype=np.int64)
        if used.shape != tuple(self.used.shape) or (used < 0).any():
            raise InvalidInputError(f"ledger state: expected {len(self.used)} non-negative counts, got {used.shape}")
        self.used = torch.from_numpy(used.copy())
        self.setup = int(state["setup"])


class BudgetedOracle:
    """An oracle seen through a ledger: ``query(x, owners)`` charges ``owners`` first, then asks the oracle."""

    def __init__(self, oracle: LabelOracle, ledger: QueryLedger) -> None:
        self.oracle = oracle
        self.ledger = ledger
        self.input_shape = oracle.input_shape
        self.n_classes = oracle.n_classes
        self.bounds = oracle.bounds

    def query(self, x: torch.Tensor, owners: torch.Tensor) -> torch.Tensor:
        """Labels for ``x`` (B, *input_shape); ``owners`` (B,) names the candidate each row is spent on."""
        if len(owners) != len(x):
            raise InvalidInputError(f"query: {len(x)} inputs but {len(owners)} owners")
        if len(x) == 0:
            return torch.empty(0, dtype=torch.int64)
        self.ledger.charge(owners)
        return self.oracle.predict_labels(x)

    def query_proba(self, x: torch.Tensor, owners: torch.Tensor) -> torch.Tensor:
        """Probabilities for ``x`` from a score oracle, charged to ``owners`` like label queries."""
        if not isinstance(self.oracle, ScoreOracle):
            raise InvalidInputError(f"query_proba: {type(self.oracle).__name__} returns labels only, not scores")
        if len(owners) != len(x):
            raise InvalidInputError(f"query: {len(x)} inputs but {len(owners)} owners")
        self.ledger.charge(owners)
        return self.oracle.predict_proba(x)

    def query_setup(self, x: torch.Tensor) -> torch.Tensor:
        """Labels for inputs that belong to no candidate (counted in ``ledger.setup``)."""
        self.ledger.charge_setup(len(x))
        return self.oracle.predict_labels(x)
