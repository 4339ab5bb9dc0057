"""OSLO, one-shot label-only membership inference (Peng et al., NeurIPS 2024), with a sweepable strength.

Members survive larger adversarial perturbations than non-members. OSLO crafts, for each candidate, a
transfer-based adversarial example on surrogate models trained on the adversary's own data, and sizes the
perturbation per sample: it keeps stepping along the (normalised) gradient of the source models' loss until the
loss of separate validation models on the true label reaches a threshold ``tau``. The target is then queried
once; a candidate it still labels correctly is predicted a member.

Each value in ``taus`` is one such one-query attack (one operating point). All values share one perturbation
path per candidate (a candidate stops at the first step whose validation loss reaches tau), so a sweep of K
values costs K queries per candidate; the score is the number of values at which the target still answers
correctly, which turns the sweep into a ROC curve. ``extras["operating_points"]`` keeps each value's
predictions. Deviation from the paper: plain normalised-gradient L2 steps instead of its MI-FGSM variant.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from labelleak.attacks._shadow import ShadowRecipe
from labelleak.attacks.base import Attack, RawScores, ShadowData, Status
from labelleak.attacks.capabilities import QueryPlan, fixed_cost
from labelleak.errors import InvalidInputError
from labelleak.oracle.budget import BudgetedOracle


class OSLO(Attack):
    """One-shot label-only attack; ``taus`` are validation-loss thresholds (larger = stronger perturbation).

    The source and validation surrogates are trained by ``shadow_recipe`` on parts of the shadow-train data.
    """

    name = "oslo"
    needs_shadow = True
    shardable = True  # its surrogates train from the seed and the shadow data alone: the same in every shard

    def __init__(
        self,
        *,
        taus: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0),
        n_source: int = 2,
        n_validation: int = 1,
        steps: int = 40,
        step_size: float = 0.05,
        shadow_recipe: ShadowRecipe = ShadowRecipe(),
        seed: int = 0,
    ) -> None:
        self.taus, self.n_source, self.n_validation = tuple(taus), n_source, n_validation
        self.steps, self.step_size = steps, step_size
        self.shadow_recipe, self.seed = shadow_recipe, seed

    def query_plan(self, budget: int | None, *, shadow_train: int = 0, shadow_test: int = 0) -> QueryPlan:
        """One query per value of ``taus``, all at once."""
        return fixed_cost(len(self.taus), budget)

    def _surrogates(self, shadow: ShadowData, oracle: BudgetedOracle, progress: bool) -> list[torch.nn.Module]:
        rng = np.random.default_rng(self.seed)
        models = []
        for k in range(self.n_source + self.n_validation):
            part = rng.permutation(len(shadow.x_train))[: max(2, int(0.8 * len(shadow.x_train)))]
            models.append(
                self.shadow_recipe.train(
                    shadow.x_train[part],
                    shadow.y_train[part],
                    input_shape=oracle.input_shape,
                    n_classes=oracle.n_classes,
                    seed=self.seed + 1 + k,
                    description=f"OSLO surrogate {k + 1}",
                    progress=progress,
                )
            )
        return models

    def perturb(
        self, models: list[torch.nn.Module], x: torch.Tensor, y: torch.Tensor, bounds: tuple[float, float]
    ) -> torch.Tensor:
        """Adversarial copies for every tau, shape (len(taus), N, *input_shape)."""
        source, validation = models[: self.n_source], models[self.n_source :]
        lo, hi = bounds
        scale = self.step_size * (hi - lo) * math.sqrt(x[0].numel())
        taus = torch.tensor(self.taus, dtype=torch.float32)
        out = x[None].repeat(len(self.taus), *[1] * x.dim())
        done = torch.zeros(len(self.taus), len(x), dtype=torch.bool)
        cur = x.clone()
        for _ in range(self.steps + 1):
            with torch.no_grad():
                val_loss = torch.stack([F.cross_entropy(m(cur), y, reduction="none") for m in validation]).mean(0)
            reached = (val_loss[None, :] >= taus[:, None]) & ~done
            out[reached] = cur[None].expand_as(out)[reached]
            done |= reached
            if bool(done.all()):
                break
            cur.requires_grad_(True)
            loss = sum((F.cross_entropy(m(cur), y, reduction="sum") for m in source), torch.zeros(()))
            (grad,) = torch.autograd.grad(loss, cur)
            with torch.no_grad():
                norm = grad.reshape(len(x), -1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
                cur = torch.clamp(cur.detach() + scale * grad / norm, lo, hi)
        out[~done] = cur.detach()[None].expand_as(out)[~done]  # never reached tau: the strongest perturbation
        return out

    def _run(
        self, oracle: BudgetedOracle, x: torch.Tensor, y: torch.Tensor, *, shadow: ShadowData | None, progress: bool
    ) -> RawScores:
        assert shadow is not None
        if not self.taus or any(t <= 0 for t in self.taus):
            raise InvalidInputError(f"taus: expected positive loss thresholds, got {self.taus}")
        models = [m.eval() for m in self._surrogates(shadow, oracle, progress)]
        for m in models:
            for p in m.parameters():
                p.requires_grad_(False)
        k = len(self.taus)
        served = oracle.ledger.affordable(k)
        idx = torch.nonzero(served).flatten()
        survived = torch.zeros(k, len(x), dtype=torch.bool)
        if len(idx):  # a budget can leave every candidate fewer than K queries
            adv = self.perturb(models, x[idx], y[idx], oracle.bounds)  # (K, R, ...)
            labels = oracle.query(adv.reshape(k * len(idx), *x.shape[1:]), idx.repeat(k)).reshape(k, len(idx))
            survived[:, idx] = labels == y[idx][None, :]
        scores = survived.sum(0).numpy().astype(np.float64)
        status = np.full(len(x), Status.OK, dtype=np.int8)
        status[~served.numpy()] = Status.BUDGET_HIT
        points = {f"{t:g}": survived[i].numpy().astype(np.int8) for i, t in enumerate(self.taus)}
        return RawScores(scores=scores, status=status, extras={"operating_points": points})
