"""Label oracles (the attacks' only view of a target) and query budgets."""

from labelleak.oracle.backends import CallableOracle, SklearnOracle, TorchOracle
from labelleak.oracle.base import LabelOracle
from labelleak.oracle.budget import BudgetedOracle, QueryLedger
from labelleak.oracle.scores import ScoreOracle, TorchScoreOracle, require_scores

__all__ = [
    "BudgetedOracle",
    "CallableOracle",
    "LabelOracle",
    "QueryLedger",
    "ScoreOracle",
    "SklearnOracle",
    "TorchOracle",
    "TorchScoreOracle",
    "require_scores",
]
