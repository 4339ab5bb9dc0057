"""Score-based baselines (a stronger threat model: the target reveals probabilities).

* metric attacks on the target's output for the true label (Yeom et al. 2018; Salem et al. 2019; Song & Mittal,
  USENIX Security 2021): ``loss`` (log p_y), ``confidence`` (p_y), ``entropy`` (-H(p)) and ``mentropy`` (minus
  Song & Mittal's modified entropy, Mentr = -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i));
* ``score-nn`` (ML-Leaks, Salem et al., NDSS 2019): an MLP trained on the sorted top-3 posteriors of a shadow
  model on its members (shadow train) and non-members (shadow test), applied to the target's top-3 posteriors.

Each candidate costs one score query.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from sklearn.neural_network import MLPClassifier

from labelleak.attacks._shadow import ShadowRecipe
from labelleak.attacks.base import Attack, RawScores, ShadowData, Status
from labelleak.attacks.capabilities import QueryCost, ThreatModel
from labelleak.errors import InvalidInputError
from labelleak.oracle.base import LabelOracle
from labelleak.oracle.budget import BudgetedOracle
from labelleak.oracle.scores import require_scores

Metric = Literal["loss", "confidence", "entropy", "mentropy"]
_EPS = 1e-30


def metric_scores(p: torch.Tensor, y: torch.Tensor, metric: Metric) -> np.ndarray:
    """Member-likeness (higher = member) of probabilities ``p`` (N, C) for true labels ``y``."""
    p = p.double().clamp(_EPS, 1.0)
    py = p.gather(1, y[:, None]).squeeze(1)
    if metric == "loss":
        return torch.log(py).numpy()
    if metric == "confidence":
        return py.numpy()
    if metric == "entropy":
        return (p * torch.log(p)).sum(1).numpy()
    if metric == "mentropy":
        others = torch.ones_like(p, dtype=torch.bool).scatter_(1, y[:, None], False)
        rest = torch.where(others, p * torch.log((1 - p).clamp_min(_EPS)), torch.zeros_like(p)).sum(1)
        return ((1 - py) * torch.log(py) + rest).numpy()
    raise InvalidInputError(f"metric: expected loss, confidence, entropy or mentropy, got {metric!r}")


def served_probabilities(oracle: BudgetedOracle, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One score query per affordable candidate; rows without budget get uniform probabilities."""
    served = oracle.ledger.affordable(1)
    idx = torch.nonzero(served).flatten()
    p = torch.full((len(x), oracle.n_classes), 1.0 / oracle.n_classes, dtype=torch.float64)
    p[idx] = oracle.query_proba(x[idx], idx)
    return p, served


def score_status(served: torch.Tensor, p: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    status = np.where((p.argmax(1) == y).numpy(), Status.OK, Status.MISCLASSIFIED).astype(np.int8)
    status[~served.numpy()] = Status.BUDGET_HIT
    return status


class MetricAttack(Attack):
    """Threshold on a metric of the target's probability vector for the true label."""

    name = "score-loss"
    threat_model = ThreatModel.SCORES
    shardable = True
    query_cost = QueryCost(1)

    def __init__(self, *, metric: Metric = "loss") -> None:
        self.metric = metric

    def _check_oracle(self, oracle: LabelOracle) -> None:
        require_scores(oracle, self.name)

    def _run(
        self, oracle: BudgetedOracle, x: torch.Tensor, y: torch.Tensor, *, shadow: ShadowData | None, progress: bool
    ) -> RawScores:
        p, served = served_probabilities(oracle, x)
        return RawScores(scores=metric_scores(p, y, self.metric), status=score_status(served, p, y))


def top3(p: torch.Tensor) -> np.ndarray:
    """The three largest posteriors of each row, in descending order (ML-Leaks' attack features)."""
    k = min(3, p.shape[1])
    return p.topk(k, dim=1).values.numpy()


class ShadowNNAttack(Attack):
    """ML-Leaks: an MLP on sorted top-3 posteriors, trained with a shadow model's known members.

    The shadow model is trained by ``shadow_recipe``; ``attack_hidden`` sizes the attack MLP.
    """

    name = "score-nn"
    threat_model = ThreatModel.SCORES
    needs_shadow = True
    query_cost = QueryCost(1)  # trains a model first: never sharded

    def __init__(
        self,
        *,
        shadow_recipe: ShadowRecipe = ShadowRecipe(),
        attack_hidden: tuple[int, ...] = (64,),
        seed: int = 0,
    ) -> None:
        self.shadow_recipe, self.attack_hidden, self.seed = shadow_recipe, attack_hidden, seed

    def _check_oracle(self, oracle: LabelOracle) -> None:
        require_scores(oracle, self.name)

    def _run(
        self, oracle: BudgetedOracle, x: torch.Tensor, y: torch.Tensor, *, shadow: ShadowData | None, progress: bool
    ) -> RawScores:
        assert shadow is not None
        model = self.shadow_recipe.train(
            shadow.x_train,
            shadow.y_train,
            input_shape=oracle.input_shape,
            n_classes=oracle.n_classes,
            seed=self.seed,
            description="shadow (ML-Leaks)",
            progress=progress,
        )
        # the shadow model answers as the target serves (the recipe's output defense, when adaptive)
        parts = (shadow.x_train, shadow.x_test)
        feats = np.concatenate([top3(self.shadow_recipe.reveal(model, part, self.seed + 1)) for part in parts])
        labels = np.r_[np.ones(len(shadow.x_train)), np.zeros(len(shadow.x_test))]
        clf = MLPClassifier(hidden_layer_sizes=tuple(self.attack_hidden), max_iter=500, random_state=self.seed)
        clf.fit(feats, labels)
        p, served = served_probabilities(oracle, x)
        scores = clf.predict_proba(top3(p))[:, 1]
        return RawScores(scores=scores, status=score_status(served, p, y))
