"""The transfer attack (Li & Zhang, CCS 2021, Sec. 4).

The adversary relabels its shadow dataset with the target's answers, trains a shadow model on those labels (so
the shadow model imitates the target), and scores a candidate by how confidently the *shadow* model fits it:
``-cross_entropy(shadow(x), y)`` (default), ``-entropy`` or ``max probability``. Each candidate costs one target
query, to find out whether the target labels it correctly; those it gets wrong receive the lowest score.

``relabel="once"`` (the default) labels each shadow image once, as the paper's text describes. ``relabel="online"``
does what the official code does: every batch of every epoch the target labels a fresh RandAugment view of each
shadow image, and the checkpoint that agrees best with the target on the shadow-test images is kept (see
:mod:`labelleak.attacks._relabel`; about ``epochs x |shadow train| + |shadow test|`` setup queries).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from labelleak.attacks._relabel import OnlineRelabelling, batch_sizes
from labelleak.attacks._shadow import ShadowRecipe
from labelleak.attacks.base import Attack, RawScores, ShadowData, Status
from labelleak.attacks.capabilities import QueryPlan, fixed_cost
from labelleak.errors import InvalidInputError
from labelleak.models import predict_logits
from labelleak.oracle.budget import BudgetedOracle

TransferScore = Literal["loss", "entropy", "confidence"]
Relabel = Literal["once", "online"]


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
        seed: seeds the shadow model's initialisation and shuffling (and, online, the augmentation).
        relabel: ``"once"`` (each shadow image labelled once) or ``"online"`` (augmented views labelled every
            batch of every epoch; images only). Online relabelling is capped by the total query budget, keeping
            one query per candidate: it stops before a batch the cap cannot pay (``extras["relabel_budget_hit"]``)
            and raises ``BudgetExhaustedError`` when the cap cannot pay the held-out set and one epoch.
        relabel_epochs: epochs of online relabelling (``None``: the recipe's epochs).
        augment_ops: RandAugment's N (operations per view) for the online views.
        augment_magnitude: RandAugment's M (0..30) for the online views.

    ``extras["calibration"]`` holds the shadow model's scores on its own members (shadow train) and non-members
    (shadow test), from which a threshold can be chosen without touching the target's candidates.
    ``extras["shadow_label_agreement"]`` is the share of shadow images the target labels with their true label
    (shadow train once; the held-out shadow-test set online), and online relabelling adds ``relabel_*`` extras:
    queries, epochs run, the kept epoch, the held-out agreement per epoch and whether the budget cut it.
    """

    name = "transfer"
    needs_shadow = True

    def __init__(
        self,
        *,
        shadow_recipe: ShadowRecipe = ShadowRecipe(),
        score: TransferScore = "loss",
        seed: int = 0,
        relabel: Relabel = "once",
        relabel_epochs: int | None = None,
        augment_ops: int = 2,
        augment_magnitude: int = 9,
    ) -> None:
        self.shadow_recipe, self.score, self.seed = shadow_recipe, score, seed
        self.relabel, self.relabel_epochs = relabel, relabel_epochs
        self.augment_ops, self.augment_magnitude = augment_ops, augment_magnitude

    def query_plan(self, budget: int | None, *, shadow_train: int = 0, shadow_test: int = 0) -> QueryPlan:
        """One label per candidate; setup: the shadow-train set once, or online the held-out shadow-test set and
        one view of each shadow-train image per epoch (a last batch of one is skipped, as in training)."""
        if self.relabel != "online":
            return fixed_cost(1, budget, setup=shadow_train)
        epochs = self.relabel_epochs or self.shadow_recipe.epochs
        return fixed_cost(
            1, budget, setup=shadow_test + epochs * sum(batch_sizes(shadow_train, self.shadow_recipe.batch_size))
        )

    def _run(
        self, oracle: BudgetedOracle, x: torch.Tensor, y: torch.Tensor, *, shadow: ShadowData | None, progress: bool
    ) -> RawScores:
        assert shadow is not None
        if self.score not in ("loss", "entropy", "confidence"):
            raise InvalidInputError(f"transfer: score must be loss, entropy or confidence, got {self.score!r}")
        if self.relabel not in ("once", "online"):
            raise InvalidInputError(f"transfer: relabel must be once or online, got {self.relabel!r}")
        if len(shadow.x_train) < 2:
            raise InvalidInputError("transfer: the shadow train set needs at least 2 samples")
        if self.relabel == "online":
            model, extras = self._online(oracle, shadow, reserve=len(x), progress=progress)
        else:
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
            extras = {"shadow_label_agreement": float((relabelled == shadow.y_train).mean())}

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
        return RawScores(scores=scores, status=status, extras={"calibration": calibration, **extras})

    def _online(
        self, oracle: BudgetedOracle, shadow: ShadowData, *, reserve: int, progress: bool
    ) -> tuple[nn.Module, dict[str, Any]]:
        """The shadow model trained with online relabelling, and the extras that report it."""
        if self.relabel_epochs is not None and (isinstance(self.relabel_epochs, bool) or self.relabel_epochs < 1):
            raise InvalidInputError(f"transfer: relabel_epochs must be a positive integer, got {self.relabel_epochs!r}")
        if len(shadow.x_test) < 1:
            raise InvalidInputError("transfer: relabel=online holds out the shadow test set, which is empty")
        trainer = OnlineRelabelling(
            self.shadow_recipe,
            self.relabel_epochs or self.shadow_recipe.epochs,
            num_ops=self.augment_ops,
            magnitude=self.augment_magnitude,
            seed=self.seed,
        )
        model, log = trainer.train(oracle, shadow.x_train, shadow.x_test, reserve=reserve, progress=progress)
        return model, {
            "shadow_label_agreement": float((log.holdout_labels == shadow.y_test).mean()),
            "relabel_queries": log.queries,
            "relabel_epochs_run": log.epochs_run,
            "relabel_best_epoch": log.best_epoch,
            "relabel_agreement_by_epoch": log.agreement_by_epoch,
            "relabel_budget_hit": log.budget_hit,
            "relabel_defense_left_out": log.defense_left_out,
        }
