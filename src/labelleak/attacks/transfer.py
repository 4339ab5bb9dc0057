"""The transfer attack (Li & Zhang, CCS 2021, Sec. 4).

The adversary relabels its shadow dataset with the target's answers, trains a shadow model on those labels (so
the shadow model imitates the target), and scores a candidate by how confidently the *shadow* model fits it:
``-cross_entropy(shadow(x), y)`` (default), ``-entropy`` or ``max probability``. Each candidate costs one target
query, to find out whether the target labels it correctly; those it gets wrong receive the lowest score.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from labelleak.attacks._shadow import ShadowRecipe
from labelleak.attacks.base import Attack, RawScores, ShadowData, Status
from labelleak.errors import InvalidInputError
from labelleak.models import predict_logits
from labelleak.oracle.budget import BudgetedOracle

TransferScore = Literal["loss", "entropy", "confidence"]


def posterior_scores(logits: torch.Tensor, y: torch.Tensor, kind: TransferScore) -> np.ndarray:
    """Member-likeness from a model's logits: ``-CE``, ``-entropy`` or max probability (higher = member)."""
    logp = F.log_softmax(logits.double(), dim=1)
    if kind == "loss":
        return logp.gather(1, y[:, None]).squeeze(1).numpy()
    if kind == "entropy":
        return (logp.exp() * logp).sum(1).numpy()
    return logp.exp().max(1).values.numpy()


class TransferAttack(Attack):
    """Shadow model trained on target-relabelled shadow data; score = shadow model's fit of the candidate.

    Args:
        shadow_recipe: architecture and training of the shadow model (the paper uses the target's).
        score: ``"loss"``, ``"entropy"`` or ``"confidence"``.
        seed: seeds the shadow model's initialisation and shuffling.

    ``extras["calibration"]`` holds the shadow model's scores on its own members (shadow train) and non-members
    (shadow test), from which a threshold can be chosen without touching the target's candidates.
    """

    name = "transfer"
    needs_shadow = True

    def __init__(
        self,
        *,
        shadow_recipe: ShadowRecipe = ShadowRecipe(),
        score: TransferScore = "loss",
        seed: int = 0,
    ) -> None:
        self.shadow_recipe, self.score, self.seed = shadow_recipe, score, seed

    def _run(
        self, oracle: BudgetedOracle, x: torch.Tensor, y: torch.Tensor, *, shadow: ShadowData | None, progress: bool
    ) -> RawScores:
        assert shadow is not None
        if self.score not in ("loss", "entropy", "confidence"):
            raise InvalidInputError(f"transfer: score must be loss, entropy or confidence, got {self.score!r}")
        if len(shadow.x_train) < 2:
            raise InvalidInputError("transfer: the shadow train set needs at least 2 samples")
        shadow_x = torch.as_tensor(shadow.x_train, dtype=torch.float32)
        relabelled = oracle.query_setup(shadow_x).numpy()
        model = self.shadow_recipe.train(
            shadow.x_train,
            relabelled,
            input_shape=oracle.input_shape,
            n_classes=oracle.n_classes,
            seed=self.seed,
            description="shadow (transfer)",
            progress=progress,
        )

        served = oracle.ledger.affordable(1)
        idx = torch.nonzero(served).flatten()
        correct = torch.zeros(len(x), dtype=torch.bool)
        correct[idx] = oracle.query(x[idx], idx) == y[idx]
        scores = posterior_scores(predict_logits(model, x), y, self.score)
        ok = correct.numpy()
        floor = (scores[ok].min() if ok.any() else 0.0) - 1.0
        scores = np.where(ok, scores, floor)
        status = np.where(ok, Status.OK, Status.MISCLASSIFIED).astype(np.int8)
        status[~served.numpy()] = Status.BUDGET_HIT

        calibration = {
            "member_scores": posterior_scores(
                predict_logits(model, shadow.x_train), torch.as_tensor(shadow.y_train), self.score
            ),
            "nonmember_scores": posterior_scores(
                predict_logits(model, shadow.x_test), torch.as_tensor(shadow.y_test), self.score
            ),
        }
        agreement = float((relabelled == shadow.y_train).mean())
        return RawScores(
            scores=scores, status=status, extras={"calibration": calibration, "shadow_label_agreement": agreement}
        )
