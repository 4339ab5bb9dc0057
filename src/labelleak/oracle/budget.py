"""Per-attack query accounting: who spent how many queries, and how many are left.

A :class:`QueryLedger` is plain bookkeeping and owns the budget arithmetic (what each candidate can still
afford); a :class:`BudgetedOracle` charges it before every batch it forwards, so an attack cannot exceed its
budget even by mistake. (An interrupted audit resumes by replaying its query journal, which rebuilds the ledger.)

A total cap is shared evenly: every candidate gets the same allowance, fixed before the first candidate query
(:func:`even_allowance`). Served in file order instead, the members (listed first) took the whole cap and the
non-members were starved, which made a target that leaks nothing look as if it did (issue 29).
"""

from __future__ import annotations

import torch

from labelleak.errors import BudgetExhaustedError, InvalidInputError
from labelleak.oracle.base import LabelOracle
from labelleak.oracle.scores import ScoreOracle


def even_allowance(total: int, n: int, per_sample: int | None = None) -> int:
    """The queries each of ``n`` candidates may spend when ``total`` is shared evenly: ``floor(total / n)``, at most
    ``per_sample``; the remainder (fewer than ``n``) goes to nobody, since any order of handing it out favours some
    candidates. ``n == 0``: ``per_sample`` (or ``total``)."""
    share = max(total, 0) // n if n > 0 else max(total, 0)
    return share if per_sample is None else min(per_sample, share)


class QueryLedger:
    """Queries charged to each of ``n_samples`` candidates, with optional per-sample and total caps.

    Under a total cap each candidate's allowance is :func:`even_allowance` of what the setup queries (spent
    first, e.g. labelling a shadow set) leave; it is fixed by the first candidate query and never changes after.
    """

    def __init__(self, n_samples: int, *, max_per_sample: int | None = None, max_total: int | None = None) -> None:
        for name, value in (("max_per_sample", max_per_sample), ("max_total", max_total)):
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 0):
                raise InvalidInputError(f"{name}: expected a non-negative integer or None, got {value!r}")
        self.max_per_sample = None if max_per_sample is None else int(max_per_sample)
        self.max_total = None if max_total is None else int(max_total)
        self.used = torch.zeros(n_samples, dtype=torch.int64)
        self.setup = 0  # queries not attributable to one candidate (e.g. labelling a shadow set)
        self._fixed: int | None = None  # the allowance, once the first candidate query has fixed it
        self._cut = torch.zeros(n_samples, dtype=torch.bool)  # refused what the per-sample cap would have granted

    def allowance(self) -> int | None:
        """Queries each candidate may spend in all (the same for every one); ``None``: unbounded."""
        if self._fixed is not None or self.max_total is None:
            return self._fixed if self._fixed is not None else self.max_per_sample
        return even_allowance(self.max_total - self.setup, len(self.used), self.max_per_sample)

    @property
    def lowered(self) -> bool:
        """Whether the total cap lowered each candidate's allowance below the per-sample cap."""
        allowance = self.allowance()
        return allowance is not None and (self.max_per_sample is None or allowance < self.max_per_sample)

    def cut_short(self) -> torch.Tensor:
        """Mask of the candidates the total cap cut short: the attack asked (through :meth:`affordable` or
        :meth:`affordable_counts`) for queries that their per-sample budget would have granted and the lowered
        allowance refused; such a candidate's status is ``budget_hit``."""
        return self._cut.clone()

    def _refused(self, owners: torch.Tensor, need: int) -> None:
        """Note the ``owners`` refused ``need`` more queries, where the lowered allowance is why."""
        if len(owners) == 0 or not self.lowered:
            return
        fits = torch.ones(len(owners), dtype=torch.bool)
        if self.max_per_sample is not None:
            fits = self.used[owners] + need <= self.max_per_sample
        self._cut[owners[fits]] = True

    @property
    def total(self) -> int:
        return int(self.used.sum()) + self.setup

    def remaining(self, owners: torch.Tensor | None = None) -> torch.Tensor:
        """Queries each of ``owners`` (default: every candidate) may still spend, int64: its allowance less what it
        spent, and never more than the total cap leaves."""
        big = torch.iinfo(torch.int64).max // 4
        left = torch.full_like(self.used, big)
        allowance = self.allowance()
        if allowance is not None:
            left = torch.clamp(allowance - self.used, min=0)
        if self.max_total is not None:
            left = torch.clamp(left, max=max(self.max_total - self.total, 0))
        return left if owners is None else left[owners]

    def affordable(self, cost: int, owners: torch.Tensor | None = None) -> torch.Tensor:
        """Mask over ``owners`` (default: every candidate) of those that can each spend ``cost`` more queries.

        Honours the allowance and the total cap. Allowances never sum past the cap, so the file-order rule below
        (earlier rows first) binds only for setup queries charged after the candidates' had begun.
        """
        owners = torch.arange(len(self.used)) if owners is None else owners
        if cost <= 0:
            return torch.ones(len(owners), dtype=torch.bool)
        mask = self.remaining(owners) >= cost
        if self.max_total is not None:
            room = max(self.max_total - self.total, 0) // cost
            mask &= torch.cumsum(mask.to(torch.int64), 0) <= room
        self._refused(owners[~mask], cost)
        return mask

    def affordable_counts(self, owners: torch.Tensor, wanted: int, *, reserve: int = 0) -> torch.Tensor:
        """How many of ``wanted`` queries each of ``owners`` can spend now while keeping ``reserve`` for later.

        Returns int64 counts in ``0..wanted``, one per owner, within each one's allowance; the reserve of every row
        is set aside before anyone's counts (the total-cap rule binds only as in :meth:`affordable`).
        """
        counts = torch.clamp(self.remaining(owners) - reserve, min=0, max=wanted)
        if self.max_total is not None:
            room = max(self.max_total - self.total - reserve * len(owners), 0)
            before = torch.cumsum(counts, 0) - counts
            counts = torch.clamp(torch.minimum(counts, room - before), min=0)
        self._refused(owners[counts < wanted], wanted + reserve)
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
        """Charge one query to each entry of ``owners`` (candidate indices), or raise without charging.

        The first charge fixes the allowance (see the class notes)."""
        counts = torch.bincount(owners, minlength=len(self.used))
        allowance = self.allowance()
        if allowance is not None and bool(((self.used + counts) > allowance).any()):
            over = int(((self.used + counts) > allowance).sum())
            what = f"per-sample budget {allowance}"
            if self.lowered:
                what = f"per-candidate allowance {allowance} (total budget {self.max_total} shared evenly)"
            raise BudgetExhaustedError(f"{what} would be exceeded for {over} sample(s)")
        self.charge_setup(0, extra=int(counts.sum()))
        if len(owners):
            self._fixed = allowance if self.max_total is not None else None
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
