"""Score oracles: a stronger threat model in which the target also reveals its output probabilities.

Only the score-based baselines (``score-*``, ``lira``) use them. A score oracle is also a label oracle, but an
attack that needs scores refuses a plain label oracle, and results of attacks that used scores are marked
``threat_model = "scores"`` in every report.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from labelleak.errors import InvalidInputError
from labelleak.oracle.backends import TorchOracle
from labelleak.rng import in_content_order


@runtime_checkable
class ScoreOracle(Protocol):
    """A target that reveals its output probabilities, not only labels (the ``scores`` threat model).

    A label oracle that also has ``predict_proba`` satisfies it; score-based attacks check for it at the edge.
    """

    n_classes: int

    def predict_proba(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Probabilities (N, n_classes), float64, one row per sample of ``x``."""
        ...


class TorchScoreOracle(TorchOracle):
    """A PyTorch target that answers with softmax probabilities as well as labels."""

    threat_model = "scores"

    @torch.no_grad()
    def predict_proba(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Probabilities (N, n_classes) for ``x``; counted and validated like label queries."""
        xt = self._admit(x)
        if len(xt) == 0:
            return torch.empty(0, self.n_classes, dtype=torch.float64)

        def batches(rows: torch.Tensor) -> torch.Tensor:
            return torch.cat(
                [
                    torch.softmax(self._forward(rows[i : i + self.batch_size]).double(), 1).cpu()
                    for i in range(0, len(rows), self.batch_size)
                ]
            )

        out = in_content_order(xt, batches)  # the same probabilities for a sample whatever the order of the others
        self.queries += len(xt)
        return out


class OutputTransform(Protocol):
    """What a serving side does to the probabilities it reveals, e.g. :class:`labelleak.defenses.OutputDefense`."""

    def apply(self, p: torch.Tensor) -> torch.Tensor:
        """Probabilities (N, C) as revealed, with the same argmax as ``p``."""
        ...


class DefendedScoreOracle(TorchScoreOracle):
    """A score oracle whose probabilities pass through an output-time defense (labels are unchanged)."""

    def __init__(
        self,
        model: nn.Module,
        *,
        defense: OutputTransform,
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


def require_scores(oracle: object, attack_name: str) -> None:
    """Raise unless ``oracle`` is a :class:`ScoreOracle`."""
    if not isinstance(oracle, ScoreOracle):
        raise InvalidInputError(
            f"{attack_name}: needs an oracle that returns scores (e.g. TorchScoreOracle); "
            f"got the label-only {type(oracle).__name__}"
        )
