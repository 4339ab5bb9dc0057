"""Query budgets: the audit's (:class:`AuditBudget`) and each attack call's (:class:`QueryLedger`).

All budget arithmetic lives here. :class:`AuditBudget` is the audit-wide owner: the per-candidate budget
(``--queries``) and the total cap (``--max-total-queries``); it says what is left to each attack, charges what the
attack asked of the target, splits a cap across shards (:func:`shard_totals`, :func:`split_total`) and, before
anything runs, estimates what every attack will spend from its :class:`QueryPlan` (``--estimate``). A
:class:`QueryLedger` is one attack call's bookkeeping (what each candidate can still afford); a
:class:`BudgetedOracle` charges it before every batch it forwards, so an attack cannot exceed its budget even by
mistake. (An interrupted audit resumes by replaying its query journal, which rebuilds the ledger.)

A total cap is shared evenly: every candidate gets the same allowance, fixed before the first candidate query
(:func:`even_allowance`). Served in file order instead, the members (listed first) took the whole cap and the
non-members were starved, which made a target that leaks nothing look as if it did (issue 29).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


def split_total(total: int | None, sizes: list[int]) -> list[int | None]:
    """A cap split over shards in proportion to their sizes (the oracle's lifetime cap, which a shard's worker
    enforces on its own replica); the remainder goes to the first shards."""
    if total is None:
        return [None] * len(sizes)
    n = sum(sizes)
    base = [total * s // n if n else 0 for s in sizes]
    left = total - sum(base)
    return [b + (1 if i < left else 0) for i, b in enumerate(base)]


@dataclass(frozen=True)
class QueryPlan:
    """The target queries one attack call will send, known before it runs (``Attack.query_plan``).

    Attributes:
        per_candidate: queries one candidate spends at most (``None``: no bound without a budget).
        setup: queries that belong to no candidate (e.g. labelling the shadow set), each call.
        exact: every candidate spends exactly ``per_candidate``; otherwise ``per_candidate`` is a ceiling (a
            search that stops early, or a candidate the target misclassifies, spends less).
    """

    per_candidate: int | None
    setup: int = 0
    exact: bool = True

    def total(self, n: int) -> int | None:
        """Queries for ``n`` candidates (a ceiling unless ``exact``); ``None`` where unbounded."""
        return None if self.per_candidate is None else n * self.per_candidate + self.setup


PlanFor = Callable[[int | None], QueryPlan]  # an attack's plan for a per-candidate allowance


@dataclass(frozen=True)
class Estimate:
    """What :meth:`AuditBudget.estimate` expects one attack to spend: its main run and its data-free threshold
    (``None`` where unbounded), why it would be skipped (``skipped``; then it spends nothing), and whether the
    total cap gives it less than the per-candidate budget would (``cut``)."""

    plan: QueryPlan
    main: int | None
    data_free: int | None = 0
    skipped: str | None = None
    cut: bool = False

    @property
    def total(self) -> int | None:
        if self.main is None or self.data_free is None:
            return None
        return self.main + self.plan.setup + self.data_free


class AuditBudget:
    """The audit's one budget: ``per_candidate`` queries per candidate and call (``--queries``, ``None``: no
    limit) and a ``total`` cap over the whole audit (``--max-total-queries``), charged with what each step asked
    of the target."""

    def __init__(self, per_candidate: int | None = None, total: int | None = None) -> None:
        for name, value in (("per_candidate", per_candidate), ("total", total)):
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 0):
                raise InvalidInputError(f"{name}: expected a non-negative integer or None, got {value!r}")
        self.per_candidate, self.total = per_candidate, total
        self.spent = 0  # target queries charged so far

    def charge(self, n: int) -> None:
        """Count ``n`` target queries a finished step asked (the cap was enforced by the step's own ledger)."""
        self.spent += int(n)

    def left(self, *, after: int = 0) -> int | None:
        """What the total cap leaves (``after`` more queries spent); ``None``: no cap."""
        return None if self.total is None else self.total - self.spent - after

    def oracle_cap(self, spent_before: int) -> int | None:
        """The target oracle's lifetime cap, the hard stop behind every ledger: what the total cap leaves after
        the ``spent_before`` queries an interrupted run already sent (retries included)."""
        return None if self.total is None else max(self.total - spent_before, 0)

    def allowance(self, n: int, *, left: int | None, setup: int = 0) -> int | None:
        """Each of ``n`` candidates' queries in a call given ``left`` (``None``: no cap), its ``setup`` queries
        spent first: the even share of the rest (:func:`even_allowance`), at most ``per_candidate``."""
        if left is None:
            return self.per_candidate
        return even_allowance(max(left - setup, 0), n, self.per_candidate)

    def estimate(self, plan_for: PlanFor, n: int, *, noise: int = 0) -> Estimate:
        """What one attack on ``n`` candidates will spend, charged to this budget as the audit would: skipped when
        the cap leaves less than one query each; ``noise`` inputs labelled, then attacked under what is left, for
        a data-free threshold. Where a plan is a ceiling, so is the estimate, and under a cap the attacks after it
        may in fact get more than estimated."""
        left = self.left()
        free = plan_for(self.per_candidate)  # without a total cap
        plan = plan_for(self.allowance(n, left=left, setup=free.setup))
        if left is not None and left < n:
            return Estimate(plan, 0, 0, skipped=f"the cap leaves {max(left, 0)} queries for {n} candidates", cut=True)
        main = None if plan.per_candidate is None else n * plan.per_candidate
        data_free: int | None = 0
        cut = plan != free
        if noise:
            rest = self.left(after=(main or 0) + plan.setup)
            if rest is None or rest >= noise:
                inner = None if rest is None else rest - noise
                again = plan_for(self.allowance(noise, left=inner, setup=plan.setup))
                data_free = None if again.per_candidate is None else noise * (1 + again.per_candidate) + again.setup
                cut |= again != free
            else:
                cut = True  # the data-free threshold is skipped
        estimate = Estimate(plan, main, data_free, cut=cut)
        self.charge(estimate.total or 0)
        return estimate

    def estimate_utility(self, n: int) -> int:
        """One label per candidate for the target's accuracy, where the cap leaves that many (else none)."""
        left = self.left()
        spent = n if left is None or left >= n else 0
        self.charge(spent)
        return spent


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
        return self._answer_rows(x, owners)

    def _answer_rows(self, x: torch.Tensor, owners: torch.Tensor) -> torch.Tensor:
        """The labels of rows already charged to ``owners``: the oracle's (a routed oracle asks each row's model)."""
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


class _ShareLedger(QueryLedger):
    """The ledger of a :class:`BudgetShare`: ``cap`` per candidate, the share the per-sample budget alone would
    give being ``natural``; a refusal that ``natural`` would have granted was cut short by the total cap."""

    def __init__(self, n_samples: int, cap: int | None, natural: int | None) -> None:
        super().__init__(n_samples, max_per_sample=cap)
        self.natural = natural

    @property
    def lowered(self) -> bool:
        cap = self.max_per_sample
        return cap is not None and (self.natural is None or cap < self.natural)

    def _refused(self, owners: torch.Tensor, need: int) -> None:
        if len(owners) == 0 or not self.lowered:
            return
        fits = torch.ones(len(owners), dtype=torch.bool)
        if self.natural is not None:
            fits = self.used[owners] + need <= self.natural
        self._cut[owners[fits]] = True


class BudgetShare(BudgetedOracle):
    """A share of ``parent``'s budget: its own ledger holds each candidate to ``cap`` queries, and every query is
    charged to, and answered through, ``parent`` (its caps, journal and accounting see each one). Several
    searches of one candidate (boundary-LiRA's augmented views) each get a share and never pass the whole. Where
    a total cap lowered the parent's allowance, ``natural`` is the share the per-sample budget alone would give:
    a candidate refused what that share would have granted was cut short (``ledger.cut_short()``)."""

    def __init__(self, parent: BudgetedOracle, cap: int | None, *, natural: int | None = None) -> None:
        natural = natural if parent.ledger.lowered else cap  # without a lowered allowance nothing is cut short
        super().__init__(parent.oracle, _ShareLedger(len(parent.ledger.used), cap, natural))
        self.parent = parent
        self.input_shape, self.n_classes, self.bounds = parent.input_shape, parent.n_classes, parent.bounds

    def _answer_rows(self, x: torch.Tensor, owners: torch.Tensor) -> torch.Tensor:
        return self.parent.query(x, owners)

    def query_setup(self, x: torch.Tensor) -> torch.Tensor:
        return self.parent.query_setup(x)
