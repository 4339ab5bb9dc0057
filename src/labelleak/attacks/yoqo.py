"""YOQO, "You Only Query Once" (Wu, Qiu, Guo, Li & Zhang, ICLR 2024): one crafted query per candidate.

Taken from the paper and its official code (facts only):

* for a candidate (x, y) the adversary crafts a query x' on shadow models that did (IN) and did not (OUT) train on
  x, such that IN models still answer y while OUT models answer a wrong label; the target is queried once at x'
  and answering y means "member";
* each OUT model's wrong label is its own most likely label other than y at x (the "multi-label" variant);
* online objective: ``CE(IN(x'), y) + alpha * CE(OUT(x'), t)``; offline (OUT models only):
  ``CE(OUT(x'), t) + alpha * MSE(x', x)``, which keeps x' close to x so that a member, more robust around x,
  keeps its label; defaults alpha = 2 online and 5 offline;
* x' is found by gradient descent on the input, stopping once the loss is below a threshold or after at most
  ``max_steps`` (50) steps.

Deviations and additions (ours):

* the shadow models are the shared reference models (:mod:`labelleak.attacks._reference`, random sets of the
  target's size; online, each candidate is IN for exactly half of them) instead of IN/OUT models trained per
  candidate;
* losses are means over a candidate's IN and over its OUT models, weighted ``1 : alpha`` and divided by
  ``1 + alpha`` so that ``loss_threshold`` means the same for any K; steps are normalised-gradient L2 steps of
  ``step_size * span * sqrt(D)`` clipped to the oracle's bounds (the official code takes plain gradient steps and
  does not clip);
* a score per candidate, not just the bit, so that a ROC curve has more than one point: online, the
  log-likelihood ratio of the target's answer under the reference models' answers at x', with IN and OUT rates
  Laplace-smoothed (``(hits + 1) / (models + 2)``); offline, ``-log p_out`` for an answer y and
  ``log(1 - p_out)`` otherwise (how surprising the answer is under OUT). The rates are measured on the models x'
  was crafted on, so they are optimistic; the ranking they give is what we use them for;
* one query cannot tell whether the target misclassifies x itself; such a candidate almost surely answers a wrong
  label at x' and gets that answer's per-sample score (status ``OK``). Status ``FAILED`` marks candidates whose
  optimisation stopped above the loss threshold.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from labelleak.attacks._reference import ReferenceModelAttack
from labelleak.attacks._shadow import ShadowRecipe
from labelleak.attacks.base import RawScores, ShadowData, Status
from labelleak.attacks.capabilities import QueryCost
from labelleak.errors import InvalidInputError
from labelleak.oracle.budget import BudgetedOracle


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over models (dim 0) of ``values`` (K, N) where ``mask``; 0 for a candidate without such models."""
    m = mask.to(values.dtype)
    return (values * m).sum(0) / m.sum(0).clamp_min(1.0)


def wrong_labels(models: list[torch.nn.Module], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each model's most likely label other than ``y`` at ``x``: shape (K, N)."""
    with torch.no_grad():
        logits = torch.stack([m(x) for m in models])  # (K, N, C)
    logits = logits.scatter(2, y[None, :, None].expand(len(models), -1, 1), -math.inf)
    return logits.argmax(2)


def craft_queries(
    models: list[torch.nn.Module],
    inside: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    online: bool,
    alpha: float,
    step_size: float,
    max_steps: int,
    loss_threshold: float,
    bounds: tuple[float, float],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Crafted queries x' (same shape as ``x``), the final loss (N,) and whether it reached the threshold (N,).

    ``inside`` (K, N) bool says which models trained on which candidate (ignored offline). Every candidate's loss
    and step depend only on its own row, so x' does not depend on the batch.
    """
    lo, hi = bounds
    n = len(x)
    scale = step_size * (hi - lo) * math.sqrt(x[0].numel()) if n else 0.0
    targets = wrong_labels(models, x, y)  # (K, N)
    flat_dims = tuple(range(1, x.dim()))

    def loss_of(cur: torch.Tensor) -> torch.Tensor:
        logits = torch.stack([m(cur) for m in models])  # (K, N, C)
        k = len(models)
        ce_out = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view(k, n)
        if online:
            ce_in = F.cross_entropy(logits.flatten(0, 1), y.repeat(k), reduction="none").view(k, n)
            total = _masked_mean(ce_in, inside) + alpha * _masked_mean(ce_out, ~inside)
        else:
            total = ce_out.mean(0) + alpha * ((cur - x) ** 2).mean(dim=flat_dims)
        return total / (1.0 + alpha)

    cur = x.clone()
    done = torch.zeros(n, dtype=torch.bool)
    for _ in range(max_steps):
        cur.requires_grad_(True)
        loss = loss_of(cur)
        done = done | (loss.detach() <= loss_threshold)
        if bool(done.all()):
            break
        (grad,) = torch.autograd.grad(loss.sum(), cur)
        with torch.no_grad():
            norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
            move = (~done).to(x.dtype).view(-1, *[1] * (x.dim() - 1))
            cur = torch.clamp(cur.detach() - move * scale * grad / norm, lo, hi)
    with torch.no_grad():
        final = loss_of(cur.detach())
    return cur.detach(), final, done | (final <= loss_threshold)


def answer_scores(hit: np.ndarray, ref_hits: np.ndarray, inside: np.ndarray, *, online: bool) -> np.ndarray:
    """Per-candidate score of the target's answer (``hit``: it answered y) given the reference models' answers
    ``ref_hits`` (K, N) at the same queries: a Laplace-smoothed log-likelihood ratio online, the OUT surprise
    offline (see the module docstring)."""
    out = ~inside if online else np.ones_like(inside)
    p_out = ((ref_hits & out).sum(0) + 1.0) / (out.sum(0) + 2.0)
    if not online:
        return np.where(hit, -np.log(p_out), np.log1p(-p_out))
    p_in = ((ref_hits & inside).sum(0) + 1.0) / (inside.sum(0) + 2.0)
    return np.where(hit, np.log(p_in) - np.log(p_out), np.log1p(-p_in) - np.log1p(-p_out))


class YOQO(ReferenceModelAttack):
    """One crafted query per candidate; the crafted point separates IN from OUT reference models.

    Args:
        n_reference: reference models (shared with LiRA: same recipe, seed and data give the same models).
        online: candidates are in the reference pool (IN for exactly half the models; K even) or not (OUT only).
        alpha: weight of the OUT term (online) or of the closeness term (offline); default 2 online, 5 offline.
        step_size: L2 step per iteration as a fraction of the input box's diameter.
        max_steps: optimisation steps at most.
        loss_threshold: a candidate stops once its (normalised) loss is at most this.
        batch_size: candidates crafted together (bounds memory; rows are independent, so it changes nothing else).
        reference_size: rows each reference model trains on (the target's; ``None``: half the shadow data).
        seed: seeds the reference models.
    """

    name = "yoqo"
    needs_shadow = True
    query_cost = QueryCost(1)  # the one crafted query

    def __init__(
        self,
        *,
        n_reference: int = 8,
        online: bool = True,
        alpha: float | None = None,
        step_size: float = 0.01,
        max_steps: int = 50,
        loss_threshold: float = 0.5,
        batch_size: int = 256,
        reference_size: int | None = None,
        shadow_recipe: ShadowRecipe = ShadowRecipe(),
        seed: int = 0,
    ) -> None:
        self.reference_size = reference_size
        self.n_reference, self.online, self.alpha = n_reference, online, alpha
        self.step_size, self.max_steps, self.loss_threshold = step_size, max_steps, loss_threshold
        self.batch_size, self.shadow_recipe, self.seed = batch_size, shadow_recipe, seed

    def _check(self) -> float:
        alpha = (2.0 if self.online else 5.0) if self.alpha is None else float(self.alpha)
        if alpha < 0:
            raise InvalidInputError(f"yoqo: alpha must be non-negative, got {alpha}")
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int) or self.max_steps < 1:
            raise InvalidInputError(f"yoqo: max_steps must be a positive integer, got {self.max_steps!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise InvalidInputError(f"yoqo: batch_size must be a positive integer, got {self.batch_size!r}")
        if self.step_size <= 0 or self.loss_threshold < 0:
            raise InvalidInputError(
                f"yoqo: step_size must be positive and loss_threshold non-negative, got {self.step_size}, "
                f"{self.loss_threshold}"
            )
        return alpha

    def _run(
        self, oracle: BudgetedOracle, x: torch.Tensor, y: torch.Tensor, *, shadow: ShadowData | None, progress: bool
    ) -> RawScores:
        assert shadow is not None
        alpha = self._check()
        refs = self._reference_models(oracle, x, y, shadow, progress=progress)
        models = [m.eval() for m in refs.models]
        for m in models:
            for p in m.parameters():
                p.requires_grad_(False)
        inside = torch.from_numpy(refs.inside)
        parts = [
            craft_queries(
                models,
                inside[:, s : s + self.batch_size],
                x[s : s + self.batch_size],
                y[s : s + self.batch_size],
                online=self.online,
                alpha=alpha,
                step_size=self.step_size,
                max_steps=self.max_steps,
                loss_threshold=self.loss_threshold,
                bounds=oracle.bounds,
            )
            for s in range(0, len(x), self.batch_size)
        ]
        crafted = torch.cat([p[0] for p in parts]) if parts else x.clone()
        loss = torch.cat([p[1] for p in parts]) if parts else torch.empty(0)
        converged = torch.cat([p[2] for p in parts]) if parts else torch.empty(0, dtype=torch.bool)
        with torch.no_grad():
            # each reference model answers as the target serves (label randomisation, when adaptive), by its seed
            labels = [
                self.shadow_recipe.labeller(m, n_classes=oracle.n_classes, seed=self.seed + 1 + k)
                for k, m in enumerate(models)
            ]
            ref_hits = torch.stack([label(crafted) == y for label in labels]).numpy()  # (K, N)

        served = oracle.ledger.affordable(1)
        idx = torch.nonzero(served).flatten()
        hit = torch.zeros(len(x), dtype=torch.bool)
        hit[idx] = oracle.query(crafted[idx], idx) == y[idx]
        scores = answer_scores(hit.numpy(), ref_hits, refs.inside, online=self.online)
        status = np.where(converged.numpy(), Status.OK, Status.FAILED).astype(np.int8)
        scores[~served.numpy()] = 0.0  # no answer, no evidence
        status[~served.numpy()] = Status.BUDGET_HIT
        return RawScores(
            scores=scores,
            status=status,
            extras={
                "answered_label": hit.numpy().astype(np.int8),  # the paper's one-bit prediction
                "craft_loss": loss.numpy(),
                "perturbation_l2": (crafted - x).flatten(1).norm(dim=1).numpy(),
                "in_models_per_candidate": float(refs.inside.sum(0).mean()),
                "reference_size": refs.size,
                "alpha": alpha,
            },
        )
