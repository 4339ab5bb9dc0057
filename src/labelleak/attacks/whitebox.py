"""White-box reference: minimal L2 perturbation by Decoupled Direction and Norm (Rony et al., CVPR 2019).

This is not a label-only attack: it differentiates the target and therefore needs an in-process PyTorch model.
It gives the distance a label-only boundary attack approaches from above (Li & Zhang use it the same way).
DDN takes normalised gradient steps on the cross-entropy and, separately, grows the norm budget by (1 + gamma)
while the point is still correctly classified and shrinks it by (1 - gamma) once it is adversarial. A final
binary search along the best perturbation tightens the distance. Each forward/backward pass is charged as one
query per candidate, so its cost is comparable with the label-only attacks'.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from labelleak.attacks.base import Attack, RawScores, ShadowData, Status
from labelleak.attacks.capabilities import QueryPlan, ThreatModel
from labelleak.attacks.hsja import box_diameter, lp_distance
from labelleak.errors import InvalidInputError
from labelleak.oracle.backends import TorchOracle
from labelleak.oracle.base import LabelOracle
from labelleak.oracle.budget import BudgetedOracle


class WhiteBoxBoundary(Attack):
    """Score = L2 distance to the boundary found with gradients (DDN); needs a :class:`TorchOracle`."""

    name = "boundary-whitebox"
    threat_model = ThreatModel.WHITE_BOX
    shardable = True

    def __init__(
        self, *, steps: int = 100, gamma: float = 0.05, init_norm: float = 1.0, refine_steps: int = 12
    ) -> None:
        self.steps, self.gamma, self.init_norm, self.refine_steps = steps, gamma, init_norm, refine_steps

    def query_plan(self, budget: int | None, *, shadow_train: int = 0, shadow_test: int = 0) -> QueryPlan:
        """One label, then the gradient steps and the refinement every candidate can pay (a ceiling: a candidate
        the target misclassifies stops after the label, one whose search found nothing is not refined)."""
        if budget is None:
            return QueryPlan(1 + self.steps + self.refine_steps, exact=False)
        room = max(budget - 1, 0)
        steps = max(0, min(self.steps, room - self.refine_steps))
        refine = max(0, min(self.refine_steps, room - steps))
        return QueryPlan(min(budget, 1 + steps + refine), exact=False)

    def _check_oracle(self, oracle: LabelOracle) -> None:
        if not isinstance(oracle, TorchOracle):
            raise InvalidInputError(
                f"{self.name}: needs an in-process PyTorch target (TorchOracle), got {type(oracle).__name__}"
            )

    def _run(
        self, oracle: BudgetedOracle, x: torch.Tensor, y: torch.Tensor, *, shadow: ShadowData | None, progress: bool
    ) -> RawScores:
        target = oracle.oracle
        assert isinstance(target, TorchOracle)
        model, device = target.model, target.device
        lo, hi = oracle.bounds
        n = len(x)
        served = oracle.ledger.affordable(1)
        idx = torch.nonzero(served).flatten()
        correct = torch.zeros(n, dtype=torch.bool)
        correct[idx] = oracle.query(x[idx], idx) == y[idx]
        rows = torch.nonzero(correct).flatten()
        steps, refine = self._affordable_steps(oracle, rows)
        xs, ys = x[rows].to(device), y[rows].to(device)
        flat = lambda t: t.reshape(len(t), -1)  # noqa: E731
        delta = torch.zeros_like(xs, requires_grad=True)
        eps = torch.full((len(rows),), float(self.init_norm), device=device)
        best = torch.full((len(rows),), math.inf, device=device)
        best_delta = torch.zeros_like(xs)
        for i in range(steps):
            alpha = 0.01 + (1.0 - 0.01) * (1 + math.cos(math.pi * i / steps)) / 2
            logits = model(xs + delta)
            oracle.ledger.charge(rows)
            adv = logits.argmax(1) != ys
            norm = flat(delta.detach()).norm(dim=1)
            improve = adv & (norm < best)
            best = torch.where(improve, norm, best)
            best_delta[improve] = delta.detach()[improve]
            (grad,) = torch.autograd.grad(F.cross_entropy(logits, ys, reduction="sum"), delta)
            g = grad / flat(grad).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (grad.dim() - 1))
            with torch.no_grad():
                d = delta + alpha * g
                eps = torch.where(adv, eps * (1 - self.gamma), eps * (1 + self.gamma))
                d = d * (eps / flat(d).norm(dim=1).clamp_min(1e-12)).view(-1, *[1] * (d.dim() - 1))
                delta.copy_(torch.clamp(xs + d, lo, hi) - xs)
        dist = self._refine(oracle, rows, x[rows], y[rows], best_delta.cpu(), torch.isfinite(best).cpu(), refine)

        scores = np.zeros(n)
        status = np.full(n, Status.OK, dtype=np.int8)
        status[~correct.numpy()] = Status.MISCLASSIFIED
        status[~served.numpy()] = Status.BUDGET_HIT
        found = torch.isfinite(dist)
        r = rows.numpy()
        scores[r] = np.where(found.numpy(), dist.numpy(), box_diameter(oracle.bounds, flat(x).shape[1], "l2"))
        status[r[~found.numpy()]] = Status.FAILED
        if steps < self.steps:  # the budget cut the search short
            status[r[found.numpy()]] = Status.BUDGET_HIT
        return RawScores(scores=scores, status=status, extras={"score_norm": "l2"})

    def _affordable_steps(self, oracle: BudgetedOracle, rows: torch.Tensor) -> tuple[int, int]:
        """Gradient steps and refinement steps that every candidate in ``rows`` can pay for (budgets hold)."""
        room = oracle.ledger.shared_room(rows)
        steps = max(0, min(self.steps, room - self.refine_steps))
        return steps, max(0, min(self.refine_steps, room - steps))

    @torch.no_grad()
    def _refine(
        self,
        oracle: BudgetedOracle,
        rows: torch.Tensor,
        x: torch.Tensor,
        y: torch.Tensor,
        delta: torch.Tensor,
        found: torch.Tensor,
        n_steps: int,
    ) -> torch.Tensor:
        """Binary search of the scale in (0, 1] along each found perturbation; inf where none was found."""
        low, high = torch.zeros(len(rows)), torch.ones(len(rows))
        idx = torch.nonzero(found).flatten()
        for _ in range(n_steps):
            if len(idx) == 0:
                break
            mid = (low[idx] + high[idx]) / 2
            pts = x[idx] + mid.view(-1, *[1] * (x.dim() - 1)) * delta[idx]
            adv = oracle.query(pts, rows[idx]) != y[idx]
            high[idx] = torch.where(adv, mid, high[idx])
            low[idx] = torch.where(adv, low[idx], mid)
        dist = lp_distance((high.view(-1, *[1] * (x.dim() - 1)) * delta).flatten(1), "l2")
        return torch.where(found, dist, torch.full_like(dist, math.inf))
