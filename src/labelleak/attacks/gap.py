"""The gap attack (Yeom et al. 2018; the label-only baseline of Li & Zhang): member iff correctly classified."""

from __future__ import annotations

import numpy as np
import torch

from labelleak.attacks.base import Attack, RawScores, ShadowData, Status
from labelleak.attacks.capabilities import QueryCost
from labelleak.oracle.budget import BudgetedOracle


class GapAttack(Attack):
    """Score 1 if the target labels the candidate correctly, else 0; one query per candidate.

    Its balanced accuracy is ``(1 + train_acc - test_acc) / 2``, the generalisation gap made into an attack.
    Candidates the budget cannot cover get score 0 and status ``BUDGET_HIT``.
    """

    name = "gap"
    reports_accuracy = True
    shardable = True
    query_cost = QueryCost(1)

    def __init__(self) -> None:
        pass

    def _run(
        self, oracle: BudgetedOracle, x: torch.Tensor, y: torch.Tensor, *, shadow: ShadowData | None, progress: bool
    ) -> RawScores:
        served = oracle.ledger.affordable(1)
        idx = torch.nonzero(served).flatten()
        labels = oracle.query(x[idx], idx)
        correct = torch.zeros(len(x), dtype=torch.bool)
        correct[idx] = labels == y[idx]
        status = np.where(correct.numpy(), Status.OK, Status.MISCLASSIFIED).astype(np.int8)
        status[~served.numpy()] = Status.BUDGET_HIT
        return RawScores(scores=correct.numpy().astype(np.float64), status=status)
