"""Output-time defenses, applied by the serving side to the probabilities a target reveals.

They never change the label (the argmax), which is exactly why label-only attacks walk straight through them:
* ``memguard``: MemGuard-style confidence perturbation (Jia et al., CCS 2019, simplified): seeded noise of scale
  ``strength`` on the log-probabilities, with the original top class restored when the noise would move it;
* ``top1``: only a one-hot vector of the predicted class;
* ``round``: probabilities rounded to ``strength`` decimals (ties broken in favour of the predicted class).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from labelleak.errors import InvalidInputError
from labelleak.oracle.scores import TorchScoreOracle
from labelleak.rng import KeyedStream, content_keys

OutputKind = Literal["none", "memguard", "top1", "round"]


@dataclass(frozen=True)
class OutputDefense:
    kind: OutputKind = "none"
    strength: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("none", "memguard", "top1", "round"):
            raise InvalidInputError(f"output defense: expected none, memguard, top1 or round, got {self.kind!r}")
        if self.kind == "round" and (self.strength < 0 or self.strength != int(self.strength)):
            raise InvalidInputError(f"round: expected a whole number of decimals, got {self.strength}")

    def apply(self, p: torch.Tensor) -> torch.Tensor:
        """Defended probabilities (N, C) with the same argmax as ``p``."""
        top = p.argmax(1)
        rows = torch.arange(len(p))
        if self.kind == "none":
            return p
        if self.kind == "top1":
            return torch.nn.functional.one_hot(top, p.shape[1]).to(p.dtype)
        if self.kind == "round":
            q = torch.round(p * 10 ** int(self.strength)) / 10 ** int(self.strength)
            q[rows, top] += 1e-12  # keep the label when rounding creates a tie
            return q
        z = KeyedStream(self.seed).normal(content_keys(p.float()), 0, p.shape[1]).to(p.dtype)
        q = torch.softmax(torch.log(p.clamp_min(1e-30)) + self.strength * z, dim=1)
        moved = q.argmax(1)
        swap = moved != top
        a, b = q[rows, top].clone(), q[rows, moved].clone()
        q[rows[swap], top[swap]], q[rows[swap], moved[swap]] = b[swap], a[swap]
        return q


class DefendedScoreOracle(TorchScoreOracle):
    """A score oracle whose probabilities pass through an output defense (labels are unchanged)."""

    def __init__(
        self,
        model: nn.Module,
        *,
        defense: OutputDefense,
        input_shape: tuple[int, ...],
        n_classes: int,
        bounds: tuple[float, float] = (0.0, 1.0),
        batch_size: int | None = None,
        max_queries: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(
            model,
            input_shape=input_shape,
            n_classes=n_classes,
            bounds=bounds,
            batch_size=batch_size,
            max_queries=max_queries,
            device=device,
        )
        self.defense = defense

    def predict_proba(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        return self.defense.apply(super().predict_proba(x))
