"""What an attack can do and what it costs, asked of the attack instead of read from its name.

Like scikit-learn's estimator tags, every consumer (``--estimate``, the executors' sharding, the audit's data-free
threshold, the attack catalogue, the contract tests) asks :meth:`Attack.capabilities` and
:meth:`Attack.query_plan`; no code outside ``attacks/`` tests an attack's name or class.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from labelleak.oracle.budget import QueryPlan

ShadowPart = Literal["none", "train", "all"]  # the shadow data a call labels as setup

__all__ = ["Capabilities", "QueryCost", "QueryPlan", "ThreatModel", "bounded_search", "fixed_cost"]


class ThreatModel(str, Enum):
    """What the attack sees of the target (the values are the strings written to results files; a member equals
    its value, ``ThreatModel.SCORES == "scores"``)."""

    LABEL_ONLY = "label-only"  # predicted labels only (the attacks this library is about)
    SCORES = "scores"  # the class probabilities: the stronger baselines
    WHITE_BOX = "white-box"  # the model itself (gradients): an in-process PyTorch target

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


@dataclass(frozen=True)
class Capabilities:
    """An attack's declared needs and properties (see :meth:`labelleak.attacks.Attack.capabilities`).

    Attributes:
        threat_model: what it sees of the target.
        needs_shadow: it cannot run without the adversary's own data (``shadow=ShadowData(...)``).
        uses_reference_models: it trains reference models that mimic the target (an executor trains them on its
            workers, ``Attack.train_map``).
        shardable: each candidate's score, status and query count depend only on that candidate and the seed, so
            its candidates may be split over workers and the shards' results concatenated.
        gives_distances: it reports boundary distances (``extras["distances"]``), for which the audit sets a
            data-free threshold from random-noise inputs.
        reports_accuracy: its statuses say, from one label query per candidate, which candidates the target gets
            right, so the audit reads the target's accuracy from them for free.
    """

    threat_model: ThreatModel
    needs_shadow: bool
    uses_reference_models: bool
    shardable: bool
    gives_distances: bool
    reports_accuracy: bool


def fixed_cost(cost: int, budget: int | None, *, setup: int = 0) -> QueryPlan:
    """The plan of an attack that asks ``cost`` queries per candidate at once: a candidate whose budget cannot pay
    them all is not queried at all (status ``budget_hit``)."""
    return QueryPlan(cost if budget is None or budget >= cost else 0, setup)


def bounded_search(ceiling: int | None, budget: int | None, *, setup: int = 0) -> QueryPlan:
    """The plan of a search that spends at most ``ceiling`` queries per candidate (``None``: as many as the budget
    allows) and stops at the budget."""
    if ceiling is None:
        return QueryPlan(budget, setup, exact=False)
    return QueryPlan(ceiling if budget is None else min(ceiling, budget), setup, exact=False)


@dataclass(frozen=True)
class QueryCost:
    """How an attack spends queries, declared on its class (``query_cost = QueryCost(1)``) and turned into a
    :class:`QueryPlan` for a budget by :meth:`plan`.

    Attributes:
        per_candidate: queries per candidate: a number, the name of the attack's parameter that holds it
            (``"max_queries"``), or ``None`` for a search that spends what the budget allows.
        all_at_once: the candidate's queries are asked together, so a budget that cannot pay them all pays none
            (exact); otherwise the attack searches, and the figure is a ceiling.
        setup: the part of the shadow data the target labels once per call (``"train"``: shadow-train;
            ``"all"``: shadow-train and shadow-test).
    """

    per_candidate: int | str | None = 1
    all_at_once: bool = True
    setup: ShadowPart = "none"

    def plan(self, attack: Any, budget: int | None, *, shadow_train: int = 0, shadow_test: int = 0) -> QueryPlan:
        cost = self.per_candidate
        if isinstance(cost, str):
            cost = int(getattr(attack, cost))
        setup = {"none": 0, "train": shadow_train, "all": shadow_train + shadow_test}[self.setup]
        if self.all_at_once and cost is not None:
            return fixed_cost(cost, budget, setup=setup)
        return bounded_search(cost, budget, setup=setup)
