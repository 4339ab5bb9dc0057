"""Query-time label randomisation: the target answers with the majority label of noised copies of each query.

The idea of LDL (Rajabi et al., AsiaCCS 2023: the decision is made over a sphere of noisy variants around the
query) and of randomized smoothing (Cohen et al., ICML 2019): ``copies`` Gaussian perturbations of scale ``sigma``
per query, one forward pass over all of them, the most frequent label returned (ties to the lowest class). Near a
decision boundary the vote is a coin the adversary cannot read, which is what boundary-distance attacks measure.

The noise is keyed by each query's content (:class:`labelleak.rng.KeyedStream`), so the same query always gets the
same answer: were it drawn afresh, an adversary could repeat a query and average the noise away (the vote's
frequencies would leak the smoothed confidence a label-only target should hide). The forward passes on the copies
are the defense's own work, not the adversary's queries: only the queries asked are counted.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from labelleak.errors import InvalidInputError
from labelleak.oracle.backends import TorchOracle
from labelleak.oracle.base import LabelOracle
from labelleak.rng import KeyedStream, content_keys

Forward = Callable[[torch.Tensor], torch.Tensor]  # a batch (B, *input_shape) -> logits (B, n_classes)


class SmoothedLabelOracle(LabelOracle):
    """Labels that are the majority vote of ``forward`` on ``copies`` noised copies of each query (scale
    ``sigma``; 0 answers with ``forward``'s own argmax). ``predict_proba`` gives the vote shares, the smoothed
    answer a score-revealing target of the same defense would show."""

    threat_model = "label-only"

    def __init__(
        self,
        forward: Forward,
        *,
        sigma: float,
        input_shape: tuple[int, ...],
        n_classes: int,
        copies: int = 15,
        seed: int = 0,
        bounds: tuple[float, float] = (0.0, 1.0),
        batch_size: int = 256,
        max_queries: int | None = None,
    ) -> None:
        if not sigma >= 0:
            raise InvalidInputError(f"label-noise: the noise scale sigma must be non-negative, got {sigma}")
        if copies < 1:
            raise InvalidInputError(f"label-noise: expected at least one noised copy, got {copies}")
        super().__init__(
            input_shape=input_shape, n_classes=n_classes, bounds=bounds, batch_size=batch_size, max_queries=max_queries
        )
        self.forward, self.sigma, self.copies, self.seed = forward, float(sigma), int(copies), int(seed)

    @torch.no_grad()
    def votes(self, x: torch.Tensor) -> torch.Tensor:
        """Vote counts (B, n_classes) of the noised copies of each row of ``x`` (B, *input_shape)."""
        b = len(x)
        if self.sigma == 0:
            labels = self.forward(x).argmax(1).cpu()
            return torch.nn.functional.one_hot(labels, self.n_classes) * self.copies
        keys, d, stream = content_keys(x), int(np.prod(self.input_shape)), KeyedStream(self.seed)
        noise = torch.stack([stream.normal(keys, step, d) for step in range(self.copies)], 1)  # (B, copies, D)
        noisy = x.reshape(b, 1, d) + self.sigma * noise
        labels = self.forward(noisy.reshape(b * self.copies, *self.input_shape)).argmax(1).cpu()
        onehot = torch.nn.functional.one_hot(labels.reshape(b, self.copies), self.n_classes)
        return onehot.sum(1)

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.votes(x).argmax(1)

    def predict_proba(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Vote shares (N, n_classes), float64; counted and validated like label queries."""
        xt = self._admit(x)
        shares = (
            torch.cat(
                [self.votes(xt[i : i + self.batch_size]) for i in range(0, len(xt), self.batch_size)]
                or [torch.empty(0, self.n_classes)]
            ).double()
            / self.copies
        )
        self.queries += len(xt)
        return shares


def smooth_labels(target: TorchOracle, sigma: float, *, seed: int = 0, copies: int = 15) -> SmoothedLabelOracle:
    """``target``'s model behind label randomisation at noise scale ``sigma`` (its shape, classes and bounds;
    its logits are padded per chunk, so a copy's vote never depends on its batch)."""
    return SmoothedLabelOracle(
        target.logits, sigma=sigma, input_shape=target.input_shape, n_classes=target.n_classes, copies=copies,
        seed=seed, bounds=target.bounds, max_queries=target.max_queries,
    )  # fmt: skip
