"""RMIA (Zarifzadeh, Liu, Mahloujifar & Shokri, "Low-Cost High-Power Membership Inference Attacks", ICML 2024).

A score-based attack (the target must reveal probabilities) that compares the candidate x with population
samples z drawn from the adversary's shadow data. With Pr(x | theta) the target's probability of x's label and
Pr(x) its average over reference models (:mod:`labelleak.attacks._reference`):

    LR(x, z) = [Pr(x | theta) / Pr(x)] / [Pr(z | theta) / Pr(z)],
    score(x) = fraction of z with LR(x, z) >= gamma.

* offline (default, registered as ``rmia``): reference models never see the candidates, so only the OUT mean
  Pr_OUT(x) is known; the paper's linear approximation gives Pr(x) = ((1 + a) Pr_OUT(x) + (1 - a)) / 2, with
  ``a`` in [0, 1] (``offline_a``; the paper tunes it per dataset on a reference model);
* online: Pr(x) is the mean over all reference models (x is IN for exactly half of them).

Each reference model trains on a random set of the target's training-set size: offline, drawn from the shadow
data, so a population sample z is IN for a share of the models (half of them when the shadow data is twice the
target's size); online, on half the candidates filled up with shadow rows, so z is IN only where a fill took it.
Pr(z) is the plain mean over all of them either way. The target is asked once per candidate (charged to the
candidate) and once per population sample (setup queries). Deviation: ties, which the fraction makes common at the
low-FPR end, are broken by the candidate's own ratio Pr(x | theta) / Pr(x): score = (count + tanh(log ratio) / 2)
/ |Z|, which keeps the order of the counts.
"""

from __future__ import annotations

import numpy as np
import torch

from labelleak.attacks._reference import ReferenceModelAttack
from labelleak.attacks._shadow import ShadowRecipe
from labelleak.attacks.base import RawScores, ShadowData
from labelleak.attacks.capabilities import QueryPlan, ThreatModel, fixed_cost
from labelleak.attacks.score_based import score_status, served_probabilities
from labelleak.errors import InvalidInputError
from labelleak.oracle.base import LabelOracle
from labelleak.oracle.budget import BudgetedOracle
from labelleak.oracle.scores import ScoreOracle, require_scores

_EPS = 1e-30


def true_label_probability(p: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Pr(x | theta): the probability (N,) each row of ``p`` (N, C) gives its label ``y``."""
    return p.double().gather(1, y[:, None]).squeeze(1).numpy()


def rmia_scores(ratio_x: np.ndarray, ratio_z: np.ndarray, gamma: float) -> np.ndarray:
    """Fraction of population ratios ``ratio_z`` (M,) with ratio_x / ratio_z >= gamma, ties broken by ratio_x."""
    z = np.sort(ratio_z)
    count = np.searchsorted(z, ratio_x / gamma, side="right")  # z <= x / gamma  <=>  LR(x, z) >= gamma
    return np.asarray((count + 0.5 * np.tanh(np.log(np.maximum(ratio_x, _EPS)))) / len(z))


class RMIA(ReferenceModelAttack):
    """Relative membership inference against ``population`` samples z (see the module docstring).

    Args:
        online: reference models train on the candidates too (default offline).
        n_reference: reference models (the audit's ``lira_models``).
        offline_a: the paper's ``a`` for the offline approximation of Pr(x).
        gamma: the LR threshold (the paper's gamma; 1 by default).
        n_population: population samples z drawn (seeded) from the shadow data; ``None``: all of it.
        reference_size: rows each reference model trains on (the target's; ``None``: half the shadow data).
    """

    threat_model = ThreatModel.SCORES
    needs_shadow = True

    def __init__(
        self,
        *,
        online: bool = False,
        n_reference: int = 8,
        offline_a: float = 0.3,
        gamma: float = 1.0,
        n_population: int | None = None,
        reference_size: int | None = None,
        shadow_recipe: ShadowRecipe = ShadowRecipe(),
        seed: int = 0,
    ) -> None:
        self.online, self.n_reference, self.offline_a = online, n_reference, offline_a
        self.gamma, self.n_population, self.reference_size = gamma, n_population, reference_size
        self.shadow_recipe, self.seed = shadow_recipe, seed

    def _check_oracle(self, oracle: LabelOracle) -> None:
        require_scores(oracle, self.name)

    def query_plan(self, budget: int | None, *, shadow_train: int = 0, shadow_test: int = 0) -> QueryPlan:
        """One score query per candidate; the target also scores the population (setup queries)."""
        pool = shadow_train + shadow_test
        population = pool if self.n_population is None else min(self.n_population, pool)
        return fixed_cost(1, budget, setup=population)

    def _population(self, shadow: ShadowData) -> tuple[np.ndarray, np.ndarray]:
        zx = np.concatenate([shadow.x_train, shadow.x_test])
        zy = np.concatenate([shadow.y_train, shadow.y_test])
        if self.n_population is None or self.n_population >= len(zx):
            return zx, zy
        pick = np.sort(np.random.default_rng([self.seed, 7]).choice(len(zx), self.n_population, replace=False))
        return zx[pick], zy[pick]

    def _run(
        self, oracle: BudgetedOracle, x: torch.Tensor, y: torch.Tensor, *, shadow: ShadowData | None, progress: bool
    ) -> RawScores:
        assert shadow is not None
        if not 0.0 <= self.offline_a <= 1.0:
            raise InvalidInputError(f"offline_a: expected a number in [0, 1], got {self.offline_a}")
        if self.gamma <= 0:
            raise InvalidInputError(f"gamma: expected a positive number, got {self.gamma}")
        if self.n_population is not None and self.n_population < 1:
            raise InvalidInputError(f"n_population: expected a positive integer or None, got {self.n_population}")
        zx, zy = self._population(shadow)
        z, z_labels = torch.from_numpy(np.ascontiguousarray(zx, dtype=np.float32)), torch.from_numpy(zy).long()
        refs = self._reference_models(oracle, x, y, shadow, progress=progress)
        # what each reference model answers served like the target (the recipe's output defense, when adaptive)
        reveal, seeds = self.shadow_recipe.reveal, [self.seed + 1 + k for k in range(refs.k)]
        ref_x = np.stack([true_label_probability(reveal(m, x, s), y) for m, s in zip(refs.models, seeds)])  # (K, N)
        ref_z = np.stack([true_label_probability(reveal(m, z, s), z_labels) for m, s in zip(refs.models, seeds)])
        if self.online:
            prior_x = ref_x.mean(0)
        else:
            prior_x = 0.5 * ((1 + self.offline_a) * ref_x.mean(0) + (1 - self.offline_a))
        target = oracle.oracle
        assert isinstance(target, ScoreOracle)  # checked by _check_oracle
        oracle.ledger.charge_setup(len(z))
        target_z = true_label_probability(target.predict_proba(z), z_labels)
        p, served = served_probabilities(oracle, x)
        ratio_x = true_label_probability(p, y) / np.maximum(prior_x, _EPS)
        ratio_z = target_z / np.maximum(ref_z.mean(0), _EPS)
        scores = rmia_scores(ratio_x, ratio_z, self.gamma)
        return RawScores(
            scores=scores,
            status=score_status(served, p, y),
            extras={
                "n_reference": refs.k,
                "online": self.online,
                "n_population": len(z),
                "reference_size": refs.size,
                "log_ratio": np.log(np.maximum(ratio_x, _EPS)),
            },
        )
