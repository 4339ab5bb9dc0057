"""The label oracle: the only window through which a label-only attack sees its target.

An oracle answers a batch of inputs with one integer label per sample. It validates every batch (shape, dtype,
NaN, value range), splits it into chunks of ``batch_size`` for the backend, counts every queried **sample**
(not calls), and refuses to go past its lifetime budget ``max_queries``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Protocol, overload

import numpy as np
import torch

from labelleak.errors import BudgetExhaustedError, InvalidInputError


class AnswerJournal(Protocol):
    """Where a paid backend reports what it spends as it spends it (see :meth:`LabelOracle.attach_journal`)."""

    def sent(self, n: int) -> None:
        """``n`` samples are about to go out (one attempt; retries are attempts too): recorded before they do."""

    def answered(self, x: np.ndarray, labels: np.ndarray) -> None:
        """One request's answer arrived: ``labels`` (B,) for the rows ``x`` (B, *input_shape)."""


class LabelOracle(ABC):
    """Base class: subclasses implement ``_predict(x) -> labels`` on one validated float32 chunk."""

    threat_model = "label-only"

    def __init__(
        self,
        *,
        input_shape: tuple[int, ...],
        n_classes: int,
        bounds: tuple[float, float] = (0.0, 1.0),
        batch_size: int = 1024,
        max_queries: int | None = None,
    ) -> None:
        if n_classes < 2:
            raise InvalidInputError(f"n_classes: expected at least 2, got {n_classes}")
        lo, hi = float(bounds[0]), float(bounds[1])
        if not lo < hi:
            raise InvalidInputError(f"bounds: expected (low, high) with low < high, got {bounds}")
        if batch_size < 1:
            raise InvalidInputError(f"batch_size: expected a positive integer, got {batch_size}")
        if max_queries is not None and max_queries < 0:
            raise InvalidInputError(f"max_queries: expected a non-negative integer or None, got {max_queries}")
        self.input_shape = tuple(int(s) for s in input_shape)
        self.n_classes = int(n_classes)
        self.bounds = (lo, hi)
        self.batch_size = int(batch_size)
        self.max_queries = max_queries
        self.queries = 0  # samples answered over the oracle's lifetime

    @abstractmethod
    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        """Labels (int64, shape (B,)) for one validated chunk ``x`` of shape (B, *input_shape)."""

    def _validate(self, x: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != self.input_shape:
            raise InvalidInputError(
                f"oracle input: expected shape (N, {', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}"
            )
        if x.numel() == 0:
            return
        lo, hi = self.bounds
        x_min, x_max = (float(v) for v in torch.aminmax(x))  # one pass; NaN propagates into both
        if not (math.isfinite(x_min) and math.isfinite(x_max)):
            raise InvalidInputError("oracle input: contains NaN or infinite values")
        if x_min < lo - 1e-5 or x_max > hi + 1e-5:
            raise InvalidInputError(f"oracle input: values must lie in [{lo}, {hi}], got [{x_min:.4g}, {x_max:.4g}]")

    def _admit(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Convert, validate and check the lifetime budget for one batch; returns it as a CPU float32 tensor."""
        if not isinstance(x, torch.Tensor):
            arr = np.asarray(x)
            if arr.dtype.kind not in "biuf":
                raise InvalidInputError(f"oracle input: expected a numeric array, got dtype {arr.dtype}")
            xt = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        else:
            if x.dtype.is_complex or x.dtype == torch.bool:
                raise InvalidInputError(f"oracle input: expected a real tensor, got {x.dtype}")
            xt = x.detach().to("cpu", torch.float32)
        self._validate(xt)
        if self.max_queries is not None and self.queries + len(xt) > self.max_queries:
            raise BudgetExhaustedError(
                f"oracle budget: {len(xt)} more queries would exceed max_queries={self.max_queries} "
                f"({self.queries} used)"
            )
        return xt

    @overload
    def predict_labels(self, x: np.ndarray) -> np.ndarray: ...
    @overload
    def predict_labels(self, x: torch.Tensor) -> torch.Tensor: ...

    def predict_labels(self, x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Labels for a batch ``x`` of shape (N, *input_shape); NumPy in gives NumPy out, a tensor gives a tensor."""
        as_numpy = not isinstance(x, torch.Tensor)
        xt = self._admit(x)
        n = len(xt)
        out = torch.empty(n, dtype=torch.int64)
        for start in range(0, n, self.batch_size):
            chunk = xt[start : start + self.batch_size]
            labels = torch.as_tensor(self._predict(chunk)).reshape(-1).to(torch.int64)
            if len(labels) != len(chunk):
                raise InvalidInputError(f"oracle backend returned {len(labels)} labels for {len(chunk)} inputs")
            out[start : start + len(chunk)] = labels
        if n and (int(out.min()) < 0 or int(out.max()) >= self.n_classes):
            raise InvalidInputError(f"oracle backend returned a label outside 0..{self.n_classes - 1} (unknown class)")
        self.queries += n
        return out.numpy() if as_numpy else out

    def attach_journal(self, journal: AnswerJournal | None) -> bool:
        """Report every send and every answer to ``journal`` as it happens (``None``: stop); ``False``: this
        backend does not.

        Backends that pay per request (remote targets) do, so that a hard kill loses no answer already received and
        a resumed run knows everything it was charged for; an in-process model costs nothing to ask again."""
        return False

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(input_shape={self.input_shape}, n_classes={self.n_classes}, "
            f"bounds={self.bounds}, queries={self.queries})"
        )
