"""Per-candidate Gaussians over reference-model values, and a variance model that survives few reference models.

LiRA (Carlini et al., S&P 2022) fits, for each candidate, a Gaussian to its K reference values (IN and OUT) and
scores the target's value by the likelihood ratio. With K = 4-16 a candidate's own variance rests on 2-8 values:
LiRA's paper falls back to one variance pooled over candidates ("global variance") for small K. Between the two
sits a conjugate prior (inverse-gamma, i.e. a scaled inverse chi-square with ``nu`` pseudo-observations at the
pooled variance): ``s_i^2 = (nu s_pool^2 + SS_i) / (nu + n_i - 1)``, per-example when ``nu = 0``, global as
``nu -> inf`` (the shrinkage idea behind BaVarIA, 2026; written here from that textbook posterior mean).

Which variance model fits is measured, never assumed: :func:`choose_variance` holds each reference model out in
turn, fits every option on the other K - 1, and keeps the option under which the held-out model's values are most
likely (a proper scoring rule). It reads only the adversary's own reference models, so the choice is made on data
disjoint from the target's candidates' membership, which it never sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from labelleak.errors import InvalidInputError

Variance = Literal["global", "per-example", "shrunk", "auto"]
VARIANCES: tuple[str, ...] = ("global", "per-example", "shrunk", "auto")
FIXED: tuple[str, ...] = ("global", "per-example", "shrunk")
TINY = 1e-6


@dataclass(frozen=True)
class Gaussians:
    """Per-candidate means and standard deviations (N,) fitted to the rows of a (K, N) array, with their counts."""

    mu: np.ndarray
    sd: np.ndarray
    count: np.ndarray


def check_variance(variance: str) -> None:
    """One line naming the choices when ``variance`` is not one of them."""
    if variance not in VARIANCES:
        raise InvalidInputError(f"variance: expected one of {', '.join(VARIANCES)}, got {variance!r}")


def fit(values: np.ndarray, mask: np.ndarray, variance: str, *, prior_strength: float = 4.0) -> Gaussians:
    """Gaussians per candidate over the rows of ``values`` (K, N) where ``mask`` (K, N) holds.

    ``global``: one standard deviation pooled over candidates (each candidate's deviations from its own mean);
    ``per-example``: the candidate's own, the pooled one where it has fewer than 2 values; ``shrunk``: the
    posterior mean under ``prior_strength`` pseudo-observations at the pooled variance (see the module docstring).
    """
    if variance not in FIXED:
        raise InvalidInputError(f"variance: expected one of {', '.join(FIXED)}, got {variance!r}")
    count = mask.sum(0)
    mu = (values * mask).sum(0) / np.maximum(count, 1)
    ss = ((values - mu) ** 2 * mask).sum(0)
    dof = int(mask.sum()) - int((count > 0).sum())
    pooled = max(math.sqrt(float(ss.sum()) / max(dof, 1)), TINY)
    if variance == "global":
        return Gaussians(mu, np.full(values.shape[1], pooled), count)
    if variance == "per-example":
        own = np.sqrt(ss / np.maximum(count - 1, 1))
        return Gaussians(mu, np.where(count >= 2, np.maximum(own, TINY), pooled), count)
    if not prior_strength > 0:
        raise InvalidInputError(f"prior_strength: expected a positive number, got {prior_strength!r}")
    shrunk = np.sqrt((prior_strength * pooled**2 + ss) / (prior_strength + np.maximum(count - 1, 0)))
    return Gaussians(mu, np.maximum(shrunk, TINY), count)


def logpdf(v: np.ndarray, g: Gaussians) -> np.ndarray:
    """log N(v; mu, sd^2) up to the constant -log(2 pi) / 2, elementwise over candidates."""
    return np.asarray(-0.5 * ((v - g.mu) / g.sd) ** 2 - np.log(g.sd))


def likelihood_scores(
    t: np.ndarray,
    ref: np.ndarray,
    inside: np.ndarray,
    *,
    online: bool,
    variance: str,
    prior_strength: float = 4.0,
) -> np.ndarray:
    """Score (N,) of target values ``t`` against reference values ``ref`` (K, N) with IN mask ``inside`` (K, N).

    Online: log N(t; mu_in, s_in^2) - log N(t; mu_out, s_out^2). A candidate without IN (or OUT) models takes
    the mean IN - OUT shift of the others. Offline: (t - mu_out) / s_out. ``variance="auto"`` is decided by
    :func:`choose_variance` on the reference values alone.
    """
    if variance == "auto":
        variance = choose_variance(ref, inside, online=online, prior_strength=prior_strength).chosen
    out = fit(ref, ~inside, variance, prior_strength=prior_strength)
    if not online:
        return np.asarray((t - out.mu) / out.sd)
    inn = fit(ref, inside, variance, prior_strength=prior_strength)
    both = (inn.count > 0) & (out.count > 0)
    shift = float((inn.mu - out.mu)[both].mean()) if both.any() else 0.0
    inn = Gaussians(np.where(inn.count > 0, inn.mu, out.mu + shift), inn.sd, inn.count)
    out = Gaussians(np.where(out.count > 0, out.mu, inn.mu - shift), out.sd, out.count)
    return logpdf(t, inn) - logpdf(t, out)


@dataclass(frozen=True)
class VarianceChoice:
    """The variance model :func:`choose_variance` kept, and the held-out mean log-likelihood of every option."""

    chosen: str
    heldout_loglik: dict[str, float]
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"chosen": self.chosen, "heldout_loglik": dict(self.heldout_loglik), "reason": self.reason}


def heldout_loglik(ref: np.ndarray, inside: np.ndarray, variance: str, *, prior_strength: float = 4.0) -> float:
    """Mean log-likelihood of each reference model's values under Gaussians fitted to the other K - 1 models.

    A value is scored under the IN fit of its candidate when that model held it IN, else under the OUT fit; values
    whose side has fewer than 2 other models are skipped (neither option could fit them)."""
    k = ref.shape[0]
    total, n = 0.0, 0
    for j in range(k):  # K is the number of reference models (4-64), not samples: every candidate is batched
        rest = np.arange(k) != j
        for side in (inside, ~inside):
            g = fit(ref[rest], side[rest], variance, prior_strength=prior_strength)
            usable = side[j] & (g.count >= 2)
            total += float(logpdf(ref[j], g)[usable].sum())
            n += int(usable.sum())
    return total / n if n else float("nan")


def choose_variance(
    ref: np.ndarray, inside: np.ndarray, *, online: bool, prior_strength: float = 4.0
) -> VarianceChoice:
    """The variance model (global, per-example, shrunk) under which held-out reference models are most likely.

    Needs at least 3 reference models per side used (online: IN and OUT; offline: OUT): below that no option can
    be judged, and ``global`` (LiRA's choice for few models) is kept, saying why. Ties keep the earlier option."""
    sides = (inside, ~inside) if online else (~inside,)
    least = min(int(side.sum(0).min()) for side in sides) if ref.size else 0
    if least < 3:
        return VarianceChoice("global", {}, f"fewer than 3 reference models on a side ({least}): global kept")
    scores = {v: heldout_loglik(ref, inside, v, prior_strength=prior_strength) for v in FIXED}
    ranked = {v: (s if math.isfinite(s) else -math.inf) for v, s in scores.items()}
    best = max(FIXED, key=lambda v: (ranked[v], -FIXED.index(v)))
    return VarianceChoice(best, scores, "highest held-out log-likelihood over leave-one-reference-model-out fits")


def _pooled_covariance(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-candidate means (N, V) and one covariance (V, V) pooled over candidates of ``values`` (K, N, V) where
    ``mask`` (K, N) holds; a small ridge keeps it invertible."""
    w = mask[:, :, None].astype(np.float64)
    count = mask.sum(0)
    mu = (values * w).sum(0) / np.maximum(count, 1)[:, None]
    dev = (values - mu[None]) * w
    dof = max(int(mask.sum()) - int((count > 0).sum()), 1)
    cov = np.einsum("knv,knw->vw", dev, dev) / dof
    ridge = max(float(np.trace(cov)) / len(cov), TINY**2) * 1e-6
    return mu, cov + ridge * np.eye(len(cov))


def _logpdf_mv(t: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """log N(t; mu, cov) (N,) up to the constant, for rows of ``t`` and ``mu`` (N, V) and one ``cov``."""
    inv = np.linalg.inv(cov)
    d = t - mu
    return np.asarray(-0.5 * np.einsum("nv,vw,nw->n", d, inv, d) - 0.5 * np.linalg.slogdet(cov)[1])


def multivariate_scores(t: np.ndarray, ref: np.ndarray, inside: np.ndarray, *, online: bool) -> np.ndarray:
    """Score (N,) of target values ``t`` (N, V) of V views against reference values ``ref`` (K, N, V), IN mask
    ``inside`` (K, N): one likelihood ratio over all views at once.

    Online: log N(t; mu_in, S_in) - log N(t; mu_out, S_out), means per candidate, one covariance per side pooled
    over candidates (LiRA's global variance, in V dimensions: the views' correlation is what the fit learns).
    Offline: the generalised-least-squares test of a shift of every view's mean in the same direction (members
    sit farther from the boundary in every view), ``z = w.(t - mu_out) / sqrt(w.S w)`` with ``w = S^-1 1``: the
    one-sided z of :func:`likelihood_scores` when V = 1.
    """
    if t.ndim != 2 or ref.ndim != 3 or ref.shape[1:] != t.shape or inside.shape != ref.shape[:2]:
        raise InvalidInputError(f"multivariate_scores: shapes t {t.shape}, ref {ref.shape}, inside {inside.shape}")
    mu_out, cov_out = _pooled_covariance(ref, ~inside)
    if not online:
        w = np.linalg.solve(cov_out, np.ones(t.shape[1]))
        return np.asarray((t - mu_out) @ w / math.sqrt(float(w @ cov_out @ w)))
    mu_in, cov_in = _pooled_covariance(ref, inside)
    has_in, has_out = inside.sum(0) > 0, (~inside).sum(0) > 0
    both = has_in & has_out
    shift = (mu_in - mu_out)[both].mean(0) if both.any() else np.zeros(t.shape[1])
    mu_in = np.where(has_in[:, None], mu_in, mu_out + shift)
    mu_out = np.where(has_out[:, None], mu_out, mu_in - shift)
    return _logpdf_mv(t, mu_in, cov_in) - _logpdf_mv(t, mu_out, cov_out)
