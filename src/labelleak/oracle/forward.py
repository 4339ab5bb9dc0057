"""A label oracle around any model's raw forward function: preprocessing in, labels out.

Model files (ONNX, torch.export, TorchScript, skops) answer with logits, scores or labels. The oracle applies the
declared :class:`~labelleak.oracle.preprocess.Preprocessing`, runs the model, and reduces scores to labels by
``argmax`` on the spot: scores never leave the oracle, so a label-only audit stays label-only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from labelleak.errors import InvalidInputError
from labelleak.oracle.base import LabelOracle
from labelleak.oracle.preprocess import Preprocessing


def labels_from_output(out: Any, n: int, n_classes: int, *, name: str = "model") -> np.ndarray:
    """Labels (int64, (n,)) from a model's output: (n,) or (n, 1) integer labels, or (n, n_classes) scores.

    Raises a one-line :class:`InvalidInputError` for anything that is not a classifier's answer.
    """
    z = out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
    if z.ndim == 0 or len(z) != n:
        raise InvalidInputError(f"{name}: returned output of shape {z.shape} for {n} inputs")
    if z.dtype.kind in "iu":
        if z.ndim > 2 or (z.ndim == 2 and z.shape[1] != 1):
            raise InvalidInputError(f"{name}: integer output must be one label per input, got shape {z.shape}")
        return z.reshape(-1).astype(np.int64)
    if z.dtype.kind != "f":
        raise InvalidInputError(f"{name}: expected labels or class scores, got dtype {z.dtype}")
    if z.ndim == 1 or (z.ndim == 2 and z.shape[1] == 1):
        raise InvalidInputError(
            f"{name}: not a classifier: its output has one value per input (shape {z.shape}: a regression or "
            "single-score output); labelleak needs one score per class or integer labels"
        )
    if z.ndim != 2:
        raise InvalidInputError(f"{name}: not a classifier: expected scores of shape (N, classes), got {z.shape}")
    if np.isnan(z).any():
        raise InvalidInputError(f"{name}: the model's output contains NaN")
    if z.shape[1] != n_classes:
        raise InvalidInputError(f"{name}: output has {z.shape[1]} class scores but n_classes is {n_classes}")
    return z.argmax(axis=1).astype(np.int64)


class ForwardOracle(LabelOracle):
    """Labels from ``forward(model_input: np.ndarray) -> output``, where ``model_input = preprocess(x)``.

    ``input_shape`` and ``bounds`` are the natural space the attacks search in; the model may expect another
    layout or normalisation, which ``preprocess`` declares.
    """

    def __init__(
        self,
        forward: Callable[[np.ndarray], Any],
        *,
        input_shape: tuple[int, ...],
        n_classes: int,
        bounds: tuple[float, float] = (0.0, 1.0),
        preprocess: Preprocessing | None = None,
        batch_size: int = 256,
        max_queries: int | None = None,
        name: str = "model",
    ) -> None:
        super().__init__(
            input_shape=input_shape, n_classes=n_classes, bounds=bounds, batch_size=batch_size, max_queries=max_queries
        )
        self.preprocess = preprocess or Preprocessing()
        self.preprocess.check(self.input_shape)
        self.forward = forward
        self.name = name

    reopen: Callable[[], LabelOracle] | None = None  # set by load_target: how a copy elsewhere opens the file again

    def __reduce_ex__(self, protocol: Any) -> str | tuple[Any, ...]:
        """A model-file oracle travels (to a Ray worker, another process) as the way to open its file again, with
        its counters: an ONNX session or an exported program cannot be pickled, and need not be."""
        if self.reopen is None:
            return super().__reduce_ex__(protocol)
        return (_reopened, (self.reopen, self.queries, self.max_queries))

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        model_input = self.preprocess(x).numpy()
        return torch.from_numpy(labels_from_output(self.forward(model_input), len(x), self.n_classes, name=self.name))


def _reopened(reopen: Callable[[], LabelOracle], queries: int, max_queries: int | None) -> LabelOracle:
    oracle = reopen()
    oracle.queries, oracle.max_queries = queries, max_queries
    return oracle
