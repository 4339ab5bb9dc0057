"""Label-only robustness attacks (Choquette-Choo et al., "Label-Only Membership Inference Attacks", ICML 2021).

Members tend to keep their label under small changes. Each candidate is queried on a set of perturbed copies
and scored by how many keep the true label:

* ``augmentation``: translations by up to ``d`` pixels along one axis (4d + 1 copies, the original included),
  rotations by -r..r degrees in 1-degree steps (2r + 1 copies), or the horizontal flip (2 copies);
* ``noise``: ``n_noise`` copies with Gaussian noise of standard deviation ``sigma`` (clipped to the bounds), or,
  for binary features, each feature flipped with probability ``flip_prob``.

The score is the fraction of copies labelled correctly, or (``scorer="model"``) the membership probability from
a small logistic-regression attack model trained on a shadow model's correctness vectors for its own members
(shadow train) and non-members (shadow test), as in the paper's Sec. 4.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression

from labelleak.attacks._shadow import ShadowRecipe
from labelleak.attacks.base import Attack, RawScores, ShadowData, Status
from labelleak.attacks.capabilities import Capabilities, QueryPlan, fixed_cost
from labelleak.errors import InvalidInputError
from labelleak.oracle.budget import BudgetedOracle
from labelleak.rng import KeyedStream, content_keys

Scorer = Literal["count", "model"]


def translate(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Shift images (N, C, H, W) by (dx, dy) pixels, filling the uncovered border with zeros."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = x[..., ys, xs]
    return out


def rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate images (N, C, H, W) about their centre (bilinear, zero padding)."""
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]], dtype=x.dtype)
    grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class _CopiesAttack(Attack):
    """Shared machinery: build copies, query them all in one batch, score by correctness."""

    scorer: Scorer
    shadow_recipe: ShadowRecipe
    seed: int

    def copies(self, x: torch.Tensor, bounds: tuple[float, float]) -> torch.Tensor:
        """Perturbed copies, shape (K, N, *input_shape), the unchanged original first."""
        raise NotImplementedError

    def n_copies(self) -> int:
        """K, the copies queried per candidate (the original included)."""
        raise NotImplementedError

    def capabilities(self) -> Capabilities:
        """Counting needs nothing but the target; ``scorer="model"`` trains a shadow model first (on the shadow
        data, which it then needs), once per call: such a run is not split into shards."""
        model = self.scorer == "model"
        return replace(super().capabilities(), shardable=not model, needs_shadow=model)

    def query_plan(self, budget: int | None, *, shadow_train: int = 0, shadow_test: int = 0) -> QueryPlan:
        """Every copy at once: K queries per candidate, or none where the budget cannot pay K."""
        return fixed_cost(self.n_copies(), budget)

    def _correctness(
        self,
        label_fn: Callable[[torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        y: torch.Tensor,
        bounds: tuple[float, float],
    ) -> torch.Tensor:
        c = self.copies(x, bounds)  # (K, N, ...)
        k, n = c.shape[:2]
        labels = label_fn(c.reshape(k * n, *c.shape[2:])).reshape(k, n)
        return (labels == y[None, :]).T.to(torch.float32)  # (N, K)

    def _run(
        self, oracle: BudgetedOracle, x: torch.Tensor, y: torch.Tensor, *, shadow: ShadowData | None, progress: bool
    ) -> RawScores:
        n_copies = int(self.copies(x[:1], oracle.bounds).shape[0])
        served = oracle.ledger.affordable(n_copies)
        idx = torch.nonzero(served).flatten()
        owners = idx.repeat(n_copies)  # copies are stacked copy-major
        vec = torch.zeros(len(x), n_copies)
        if len(idx):  # a total cap can leave each candidate fewer queries than one set of copies
            vec[idx] = self._correctness(lambda q: oracle.query(q, owners), x[idx], y[idx], oracle.bounds)
        if self.scorer == "count":
            scores = vec.mean(1).numpy().astype(np.float64)
        elif self.scorer == "model":
            if shadow is None:
                raise InvalidInputError(f"{self.name}: scorer='model' needs shadow data")
            scores = self._model_scores(vec.numpy(), shadow, oracle, progress)
        else:
            raise InvalidInputError(f"scorer: expected 'count' or 'model', got {self.scorer!r}")
        status = np.where(vec[:, 0].numpy() > 0, Status.OK, Status.MISCLASSIFIED).astype(np.int8)
        status[~served.numpy()] = Status.BUDGET_HIT
        scores[~served.numpy()] = 0.0
        return RawScores(scores=scores, status=status, extras={"copies_per_candidate": n_copies})

    def _model_scores(self, vec: np.ndarray, shadow: ShadowData, oracle: BudgetedOracle, progress: bool) -> np.ndarray:
        model = self.shadow_recipe.train(
            shadow.x_train,
            shadow.y_train,
            input_shape=oracle.input_shape,
            n_classes=oracle.n_classes,
            seed=self.seed,
            description="shadow (robustness)",
            progress=progress,
        )
        label_fn = self.shadow_recipe.labeller(model, n_classes=oracle.n_classes, seed=self.seed + 1)
        feats = np.concatenate(
            [
                self._correctness(
                    label_fn, torch.as_tensor(shadow.x_train), torch.as_tensor(shadow.y_train), oracle.bounds
                ).numpy(),
                self._correctness(
                    label_fn, torch.as_tensor(shadow.x_test), torch.as_tensor(shadow.y_test), oracle.bounds
                ).numpy(),
            ]
        )
        target = np.r_[np.ones(len(shadow.x_train)), np.zeros(len(shadow.x_test))]
        clf = LogisticRegression(max_iter=1000).fit(feats, target)
        return clf.predict_proba(vec)[:, 1]


class AugmentationAttack(_CopiesAttack):
    """Correctness of the target on translated, rotated or flipped copies (image inputs only).

    With ``scorer="model"`` the attack model learns from a shadow model trained by ``shadow_recipe``.
    """

    name = "augmentation"

    def __init__(
        self,
        *,
        kind: Literal["translate", "rotate", "flip"] = "translate",
        d: int = 1,
        r: int = 4,
        scorer: Scorer = "count",
        shadow_recipe: ShadowRecipe = ShadowRecipe(),
        seed: int = 0,
    ) -> None:
        self.kind, self.d, self.r, self.scorer, self.shadow_recipe, self.seed = kind, d, r, scorer, shadow_recipe, seed

    def n_copies(self) -> int:
        return {"translate": 4 * self.d + 1, "rotate": 2 * self.r + 1, "flip": 2}.get(self.kind, 1)

    def copies(self, x: torch.Tensor, bounds: tuple[float, float]) -> torch.Tensor:
        if x.dim() != 4:
            raise InvalidInputError(
                f"augmentation needs image inputs (N, C, H, W), got {tuple(x.shape)}; "
                "use the noise attack for tabular data"
            )
        if self.kind == "translate":
            shifts = [(0, 0)] + [s for i in range(1, self.d + 1) for s in ((i, 0), (-i, 0), (0, i), (0, -i))]
            return torch.stack([translate(x, dx, dy) for dx, dy in shifts])
        if self.kind == "rotate":
            return torch.stack([x if a == 0 else rotate(x, a) for a in range(-self.r, self.r + 1)])
        if self.kind == "flip":
            return torch.stack([x, torch.flip(x, dims=[-1])])
        raise InvalidInputError(f"kind: expected translate, rotate or flip, got {self.kind!r}")


class NoiseAttack(_CopiesAttack):
    """Correctness of the target on noisy copies: Gaussian (sigma) or bit flips for binary features.

    With ``scorer="model"`` the attack model learns from a shadow model trained by ``shadow_recipe``.
    """

    name = "noise"

    def __init__(
        self,
        *,
        n_noise: int = 50,
        sigma: float = 0.1,
        flip_prob: float | None = None,
        scorer: Scorer = "count",
        shadow_recipe: ShadowRecipe = ShadowRecipe(),
        seed: int = 0,
    ) -> None:
        self.n_noise, self.sigma, self.flip_prob = n_noise, sigma, flip_prob
        self.scorer, self.shadow_recipe, self.seed = scorer, shadow_recipe, seed

    def n_copies(self) -> int:
        return self.n_noise + 1  # the clean copy first

    def copies(self, x: torch.Tensor, bounds: tuple[float, float]) -> torch.Tensor:
        if self.n_noise < 1:
            raise InvalidInputError(f"n_noise: expected a positive integer, got {self.n_noise}")
        n = len(x)
        flat = x.reshape(n, -1)
        stream, keys, d = KeyedStream(self.seed), content_keys(flat), flat.shape[1]
        lo, hi = bounds
        if self.flip_prob is not None:
            u = stream.uniform(keys, 0, self.n_noise * d).reshape(n, self.n_noise, d)
            noisy = torch.where(u < self.flip_prob, lo + hi - flat[:, None, :], flat[:, None, :])
        else:
            z = stream.normal(keys, 0, self.n_noise * d).reshape(n, self.n_noise, d)
            noisy = torch.clamp(flat[:, None, :] + self.sigma * z, lo, hi)
        noisy = noisy.transpose(0, 1).reshape(self.n_noise, n, *x.shape[1:])
        return torch.cat([x[None], noisy])  # the clean copy first
