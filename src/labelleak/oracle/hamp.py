"""HAMP's output modification (Chen & Pattabiraman, NDSS 2024): every answer made of a random sample's scores.

At inference, HAMP answers a query with the output scores the model gives a random sample (here each feature
uniform within the input bounds), rearranged so that they keep the query's own order of classes: the largest
random score goes to the query's predicted class, the second largest to its second class, and so on. A model
trained with HAMP's high-entropy soft labels gives random samples low-confidence scores, so members and
non-members alike are answered with low confidence, while every label (and so accuracy) is unchanged: a label-only
adversary sees exactly the trained model's labels.

The random sample is keyed by the query's content (:class:`labelleak.rng.KeyedStream`), so a repeated query gets
the same answer. Its forward pass is the defense's own work and is not counted as a query.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from labelleak.oracle.scores import TorchScoreOracle
from labelleak.rng import KeyedStream, content_keys


def rearrange_like(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``q``'s values (N, C) put in ``p``'s order of classes per row: ``q``'s largest where ``p`` is largest, ...;
    the predicted class is nudged up so that a tie in ``q`` never moves it."""
    order = torch.sort(p, dim=1, descending=True, stable=True).indices  # (N, C): classes of p, most likely first
    ranked = q.sort(1, descending=True).values
    out = torch.empty_like(q).scatter_(1, order, ranked)
    out[torch.arange(len(p)), order[:, 0]] += 1e-12
    return out


class HampScoreOracle(TorchScoreOracle):
    """A score oracle of a HAMP-trained model: labels as the model gives them, scores from random samples."""

    def __init__(
        self,
        model: nn.Module,
        *,
        input_shape: tuple[int, ...],
        n_classes: int,
        seed: int = 0,
        bounds: tuple[float, float] = (0.0, 1.0),
        batch_size: int | None = None,
        max_queries: int | None = None,
    ) -> None:
        super().__init__(
            model,
            input_shape=input_shape,
            n_classes=n_classes,
            bounds=bounds,
            batch_size=batch_size,
            max_queries=max_queries,
        )
        self.seed = int(seed)

    @torch.no_grad()
    def predict_proba(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        p = super().predict_proba(x)
        xt = torch.as_tensor(x).detach().to("cpu", torch.float32)  # super() has validated it
        if len(xt) == 0:
            return p
        lo, hi = self.bounds
        d = int(np.prod(self.input_shape))
        noise = KeyedStream(self.seed).uniform(content_keys(xt), 0, d)
        rand = (lo + (hi - lo) * noise).reshape(len(xt), *self.input_shape)
        q = torch.cat(
            [
                torch.softmax(self._forward(rand[i : i + self.batch_size]).double(), 1).cpu()
                for i in range(0, len(rand), self.batch_size)
            ]
        )
        return rearrange_like(p, q)
