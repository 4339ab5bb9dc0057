"""Per-attack query accounting: who spent how many queries, and how many are left.

A :class:`QueryLedger` is plain bookkeeping and owns the budget arithmetic (what each candidate can still
afford); a :class:`BudgetedOracle` charges it before every batch it forwards, so an attack cannot exceed its
budget even by mistake. (An interrupted audit resumes by replaying its query journal, which rebuilds the ledger.)
"""

from __future__ import annotations

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

    def remaining(self, owners: torch.Tensor | None = None) -> torch.Tensor:
        """Queries each of ``owners`` (default: every candidate) may still spend, int64; the total cap is applied
        to each one alone (see :meth:`affordable` and :meth:`affordable_counts` for sharing it)."""
        big = torch.iinfo(torch.int64).max // 4
        left = torch.full_like(self.used, big)
        if self.max_per_sample is not None:
            left = torch.clamp(self.max_per_sample - self.used, min=0)
        if self.max_total is not None:
            left = torch.clamp(left, max=max(self.max_total - self.total, 0))
        return left if owners is None else left[owners]

    def affordable(self, cost: int, owners: torch.Tensor | None = None) -> torch.Tensor:
        """Mask over ``owners`` (default: every candidate) of those that can each spend ``cost`` more queries.

        Honours the per-sample and the total cap; when the total cannot cover everyone, earlier rows come first.
        """
        owners = torch.arange(len(self.used)) if owners is None else owners
        if cost <= 0:
            return torch.ones(len(owners), dtype=torch.bool)
        mask = self.remaining(owners) >= cost
        if self.max_total is not None:
            room = max(self.max_total - self.total, 0) // cost
            mask &= torch.cumsum(mask.to(torch.int64), 0) <= room
        return mask

    def affordable_counts(self, owners: torch.Tensor, wanted: int, *, reserve: int = 0) -> torch.Tensor:
        """How many of ``wanted`` queries each of ``owners`` can spend now while keeping ``reserve`` for later.

        Returns int64 counts in ``0..wanted``, one per owner; under a total cap earlier rows come first, and the
        reserve of every row is set aside before anyone's counts.
        """
        counts = torch.clamp(self.remaining(owners) - reserve, min=0, max=wanted)
        if self.max_total is not None:
            room = max(self.max_total - self.total - reserve * len(owners), 0)
            before = torch.cumsum(counts, 0) - counts
            counts = torch.clamp(torch.minimum(counts, room - before), min=0)
        return counts

    def shared_room(self, owners: torch.Tensor) -> int:
        """The most queries that every one of ``owners`` can still spend when all spend the same (0 if none)."""
        if len(owners) == 0:
            return 0
        room = int(self.remaining(owners).min())
        if self.max_total is not None:
            room = min(room, max(self.max_total - self.total, 0) // len(owners))
        return room

    def setup_room(self, *, reserve: int = 0) -> int | None:
        """Setup queries the total cap still allows while keeping ``reserve`` for the candidates (``None``: no cap)."""
        if self.max_total is None:
            return None
        return max(self.max_total - self.total - reserve, 0)

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
