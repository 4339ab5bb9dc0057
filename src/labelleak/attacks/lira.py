"""LiRA, the likelihood-ratio attack (Carlini et al., "Membership Inference Attacks From First Principles",
S&P 2022), online and offline.

K reference models, each trained on a random set of the target's training-set size with the target's recipe
(:mod:`labelleak.attacks._reference`, shared with the other reference-calibrated attacks). For a candidate (x, y)
the attack compares
the target's logit-scaled confidence phi = log p_y - log(1 - p_y) (their Eq. 4) with the
distribution of phi over reference models that did (IN) and did not (OUT) train on x. 1 - p_y is never computed
as such, which loses every digit once p_y rounds to 1: the target's phi sums its other classes' probabilities, a
reference model's comes from its logits (log-sum-exp over the other classes).

* online: the models train on the candidates and the adversary's shadow data, each candidate IN for exactly half
  of them (K even); score = log N(phi; mu_in, sigma_in^2) - log N(phi; mu_out, sigma_out^2);
* offline: the models train on the shadow data only (every model is OUT); score = (phi - mu_out) / sigma_out.

Means are per candidate; variances are pooled over candidates ("global variance"), which the paper recommends
when K is small. Deviation: no query augmentations (one score query per candidate).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from labelleak.attacks._reference import ReferenceModelAttack
from labelleak.attacks._shadow import ShadowRecipe
from labelleak.attacks.base import RawScores, ShadowData
from labelleak.attacks.capabilities import QueryCost, ThreatModel
from labelleak.attacks.score_based import score_status, served_probabilities
from labelleak.errors import InvalidInputError
from labelleak.models import predict_logits
from labelleak.oracle.base import LabelOracle
from labelleak.oracle.budget import BudgetedOracle
from labelleak.oracle.scores import require_scores

_TINY = 1e-300  # a probability of exactly 0 (underflow in the served scores) counts as this


def logit_confidence(p: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """phi = log p_y - log(sum_{i != y} p_i) from probabilities ``p`` (N, C), for a target that serves scores.

    The other classes are summed directly: ``1 - p_y`` and ``p.sum(1) - p_y`` round to 0 in float64 once p_y is
    within 1e-16 of 1 (a logit margin of about 37), where phi would become the clamp (690.8) instead of the
    margin, and one such value inflates the pooled variances of every candidate.
    """
    p = p.double()
    py = p.gather(1, y[:, None]).squeeze(1)
    rest = p.scatter(1, y[:, None], 0.0).sum(1)
    return (torch.log(py.clamp_min(_TINY)) - torch.log(rest.clamp_min(_TINY))).numpy()


def logit_confidence_from_logits(logits: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """phi = z_y - log sum_{i != y} exp(z_i) from logits ``z`` (N, C): the same phi as :func:`logit_confidence` of
    softmax(z), exact at any margin (the reference models are in process, so their logits are at hand)."""
    z = logits.double()
    zy = z.gather(1, y[:, None]).squeeze(1)
    others = z.scatter(1, y[:, None], -math.inf).logsumexp(1)
    return (zy - others).numpy()


def _gauss_logpdf(v: np.ndarray, mu: np.ndarray, sigma: float) -> np.ndarray:
    return -0.5 * ((v - mu) / sigma) ** 2 - np.log(sigma)


class LiRA(ReferenceModelAttack):
    """Likelihood-ratio attack with ``n_reference`` reference models (``online`` or offline, where it must be
    even), each trained by ``shadow_recipe`` on ``reference_size`` rows (the target's training-set size, which the
    audit fills in; ``None``: half the shadow data)."""

    name = "lira"
    threat_model = ThreatModel.SCORES
    needs_shadow = True
    query_cost = QueryCost(1)  # one score query per candidate; the reference models cost the target nothing

    def __init__(
        self,
        *,
        n_reference: int = 8,
        online: bool = True,
        reference_size: int | None = None,
        shadow_recipe: ShadowRecipe = ShadowRecipe(),
        seed: int = 0,
    ) -> None:
        self.n_reference, self.online, self.reference_size = n_reference, online, reference_size
        self.shadow_recipe, self.seed = shadow_recipe, seed

    def _check_oracle(self, oracle: LabelOracle) -> None:
        require_scores(oracle, self.name)

    def _run(
        self, oracle: BudgetedOracle, x: torch.Tensor, y: torch.Tensor, *, shadow: ShadowData | None, progress: bool
    ) -> RawScores:
        assert shadow is not None
        if self.n_reference < 2:
            raise InvalidInputError(f"lira: n_reference must be at least 2, got {self.n_reference}")
        refs = self._reference_models(oracle, x, y, shadow, progress=progress)
        phis = np.stack([self._reference_phi(model, self.seed + 1 + k, x, y) for k, model in enumerate(refs.models)])
        inside = refs.inside

        p, served = served_probabilities(oracle, x)
        scores = self._score(logit_confidence(p, y), phis, inside)
        return RawScores(
            scores=scores,
            status=score_status(served, p, y),
            extras={
                "n_reference": self.n_reference,
                "online": self.online,
                "in_models_per_candidate": float(inside.sum(0).mean()),
                "reference_size": refs.size,
            },
        )

    def _reference_phi(self, model: torch.nn.Module, seed: int, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        """phi of one reference model, from what it answers served like the target: through the output-time
        defense of the recipe (the adaptive adversary's), else from its logits (exact at any margin)."""
        if not self.shadow_recipe.modifies_answers():
            return logit_confidence_from_logits(predict_logits(model, x), y)
        return logit_confidence(self.shadow_recipe.reveal(model, x, seed), y)

    def _score(self, phi: np.ndarray, phis: np.ndarray, inside: np.ndarray) -> np.ndarray:
        # a candidate without OUT (or IN) models cannot come from the shared reference models, whose online pairs
        # keep every candidate IN for exactly half of them; the guards only keep a hand-made mask finite
        out_count = (~inside).sum(0)
        mu_out = np.where(out_count > 0, (phis * ~inside).sum(0) / np.maximum(out_count, 1), phis.mean(0))
        sigma_out = max(float(np.sqrt(((phis - mu_out) ** 2 * ~inside).sum() / max((~inside).sum(), 1))), 1e-6)
        if not self.online:
            return (phi - mu_out) / sigma_out
        in_count = inside.sum(0)
        mu_in = np.where(in_count > 0, (phis * inside).sum(0) / np.maximum(in_count, 1), mu_out + sigma_out)
        sigma_in = max(float(np.sqrt(((phis - mu_in) ** 2 * inside).sum() / max(inside.sum(), 1))), 1e-6)
        return _gauss_logpdf(phi, mu_in, sigma_in) - _gauss_logpdf(phi, mu_out, sigma_out)
