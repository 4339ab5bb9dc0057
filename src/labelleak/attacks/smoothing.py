"""Certified radius under randomized smoothing (Cohen, Rosenfeld & Kolter, ICML 2019) as a membership signal.

The smoothed classifier ``g(x) = argmax_c P(f(x + e) = c)``, ``e ~ N(0, sigma^2 I)``, is robust within the L2
radius ``sigma * Phi^-1(p_A)`` around ``x``, where ``p_A`` is the probability of its top class. CERTIFY estimates
``p_A`` from ``n`` noisy labels and certifies with its one-sided Clopper-Pearson lower bound at level ``1 - alpha``.
Li & Zhang use this radius as a second, query-only view of "distance to the boundary": members should be
certified farther out than non-members.

Deviations from Cohen et al. (stated so that results can be read correctly):

* the class certified is the candidate's own label ``y`` (the adversary knows it), so CERTIFY's ``n0`` selection
  samples are not needed and the lower bound is that of ``P(f(x + e) = y)``;
* the score is the signed value ``sigma * Phi^-1(p_lower)``, negative when ``y`` cannot be certified, which ranks
  candidates that CERTIFY would all report as "abstain"; ``extras["per_sample"]["certified_radius"]`` holds the
  radius proper (the score where positive, 0 where CERTIFY abstains);
* noisy inputs are clipped to the oracle's bounds, because the target only answers inputs within them.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import beta, norm

from labelleak.attacks.base import Attack, RawScores, ShadowData, Status
from labelleak.attacks.capabilities import QueryPlan
from labelleak.errors import InvalidInputError
from labelleak.oracle.budget import BudgetedOracle
from labelleak.progress import progress_bar
from labelleak.rng import KeyedStream, content_keys

_CHUNK_ELEMENTS = 1 << 22  # noisy-input elements held at once (16 MiB of float32)


def clopper_pearson_lower(successes: np.ndarray, trials: np.ndarray, alpha: float) -> np.ndarray:
    """One-sided ``1 - alpha`` lower confidence bound of a binomial proportion (0 where there are no successes)."""
    k, n = np.asarray(successes, dtype=np.float64), np.asarray(trials, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        low = beta.ppf(alpha, k, n - k + 1)
    return np.where(k > 0, np.nan_to_num(low, nan=0.0), 0.0)


class SmoothingRadius(Attack):
    """Score = ``sigma * Phi^-1(p_lower)`` for the candidate's label under Gaussian noise (see the module notes).

    Args:
        sigma: standard deviation of the Gaussian noise, in input units.
        n: noisy queries per candidate (Cohen et al. use 100,000; thousands suffice to rank candidates).
        alpha: the certificate's error probability.
        seed: seeds the noise; each candidate's noise depends only on the seed and its content.
    """

    name = "smoothing"
    shardable = True

    def __init__(self, *, sigma: float = 0.25, n: int = 1000, alpha: float = 0.001, seed: int = 0) -> None:
        self.sigma, self.n, self.alpha, self.seed = sigma, n, alpha, seed

    def query_plan(self, budget: int | None, *, shadow_train: int = 0, shadow_test: int = 0) -> QueryPlan:
        """``n`` noisy queries per candidate; a budget below ``n`` is spent in chunks (a ceiling)."""
        if budget is None or budget >= self.n:
            return QueryPlan(self.n)
        return QueryPlan(budget, exact=False)

    def _run(
        self, oracle: BudgetedOracle, x: torch.Tensor, y: torch.Tensor, *, shadow: ShadowData | None, progress: bool
    ) -> RawScores:
        if not self.sigma > 0 or not 0 < self.alpha < 1 or self.n < 1:
            raise InvalidInputError(
                f"smoothing: need sigma > 0, 0 < alpha < 1 and n >= 1; got sigma={self.sigma}, "
                f"alpha={self.alpha}, n={self.n}"
            )
        n_cand = len(x)
        flat = x.reshape(n_cand, -1)
        d = flat.shape[1]
        keys, stream = content_keys(flat), KeyedStream(self.seed)
        hits = torch.zeros(n_cand, dtype=torch.int64)
        draws = torch.zeros(n_cand, dtype=torch.int64)
        active = torch.arange(n_cand)
        lo, hi = oracle.bounds
        per_chunk = max(1, min(self.n, _CHUNK_ELEMENTS // max(1, n_cand * d)))
        room = int(oracle.ledger.remaining().min()) if n_cand else 0
        per_chunk = max(1, min(per_chunk, room))  # under a budget, spend it all before the bound is computed
        with progress_bar("randomized smoothing", total=self.n, enabled=progress) as bar:
            for start in range(0, self.n, per_chunk):
                m = min(per_chunk, self.n - start)
                active = active[oracle.ledger.affordable(m, active)]
                if len(active) == 0:
                    break
                z = stream.normal(keys[active], 0, m * d, offset=start * d).reshape(len(active), m, d)
                noisy = torch.clamp(flat[active, None, :] + self.sigma * z, lo, hi)
                owners = active.repeat_interleave(m)
                labels = oracle.query(noisy.reshape(len(active) * m, *x.shape[1:]), owners).reshape(len(active), m)
                hits[active] += (labels == y[active, None]).sum(1)
                draws[active] += m
                if bar is not None:
                    bar.update(bar.task_ids[0], advance=m)
        p_lower = clopper_pearson_lower(hits.numpy(), np.maximum(draws.numpy(), 1), self.alpha)
        scores = self.sigma * norm.ppf(np.clip(p_lower, 1e-12, 1 - 1e-12))
        status = np.full(n_cand, Status.OK, dtype=np.int8)
        status[draws.numpy() < self.n] = Status.BUDGET_HIT
        scores[draws.numpy() == 0] = -np.inf
        finite_floor = scores[np.isfinite(scores)].min() - 1.0 if np.isfinite(scores).any() else -1.0
        scores = np.where(np.isfinite(scores), scores, finite_floor)
        radius = np.where(p_lower > 0.5, scores, 0.0)
        return RawScores(
            scores=scores,
            status=status,
            extras={
                "per_sample": {"certified_radius": radius, "p_lower": p_lower},
                "abstained": int((p_lower <= 0.5).sum()),
            },
        )
