"""Oracle backends: an in-process PyTorch module, a scikit-learn estimator, any Python callable."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from labelleak.errors import InvalidInputError
from labelleak.oracle.base import LabelOracle


def default_batch_size(model: nn.Module, device: torch.device) -> int:
    """Chunk size for the model: on a CPU, convolutions run fastest in chunks of a few hundred (measured: CNN7 at
    width 0.25 reaches 2,566 samples/s at 256 against 1,771 at 4,096), dense layers in chunks of about a thousand."""
    if device.type != "cpu":
        return 4096
    has_conv = any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())
    return 256 if has_conv else 1024


# CPU kernels (oneDNN convolutions, small-M matrix products) take another code path for a handful of rows, and that
# path's logits depend on the thread count: measured on every labelleak architecture, chunks of 1 to 11 rows differ
# in the 6th digit from the same rows inside a chunk of 256, chunks of 12 to 256 rows agree bit for bit at 1 and 2
# threads. Padding small chunks keeps a candidate's label independent of its batch, shard and worker.
MIN_CHUNK_ROWS = 16


def _pad_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    """``x`` with its last row repeated up to ``rows`` rows (rows stay independent in eval mode)."""
    if len(x) == 0 or len(x) >= rows:
        return x
    return torch.cat([x, x[-1:].expand(rows - len(x), *x.shape[1:])])


class TorchOracle(LabelOracle):
    """Labels from ``argmax`` of a PyTorch classifier's logits; the model is put in eval mode.

    A model handed over in train mode would let BatchNorm statistics and dropout change the answers between
    queries, so the oracle warns and switches it to eval mode. Chunks under ``MIN_CHUNK_ROWS`` rows are padded
    (the padding is neither answered nor counted) so that a sample's answer never depends on its batch.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        input_shape: tuple[int, ...],
        n_classes: int,
        bounds: tuple[float, float] = (0.0, 1.0),
        batch_size: int | None = None,
        max_queries: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        dev = torch.device(device) if device is not None else next(model.parameters()).device
        super().__init__(
            input_shape=input_shape,
            n_classes=n_classes,
            bounds=bounds,
            batch_size=batch_size or default_batch_size(model, dev),
            max_queries=max_queries,
        )
        if model.training:
            warnings.warn("TorchOracle: the model was in train mode; switching it to eval mode", stacklevel=2)
        self.model = model.eval()
        self.device = dev
        self.model.to(self.device)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(_pad_rows(x, MIN_CHUNK_ROWS).to(self.device))[: len(x)]

    @torch.no_grad()
    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x).argmax(dim=1).cpu()

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Raw logits (for white-box references and score-based baselines, never for label-only attacks)."""
        return self._forward(x).float().cpu()


class SklearnOracle(LabelOracle):
    """Labels from a fitted scikit-learn classifier; inputs are flattened to (N, features) first.

    The estimator's ``classes_`` must be the integers 0..n_classes-1 (as produced by fitting on such labels).
    """

    def __init__(
        self,
        estimator: Any,
        *,
        input_shape: tuple[int, ...],
        bounds: tuple[float, float] = (0.0, 1.0),
        n_classes: int | None = None,
        batch_size: int = 4096,
        max_queries: int | None = None,
    ) -> None:
        classes = getattr(estimator, "classes_", None)
        if classes is None:
            raise InvalidInputError("SklearnOracle: the estimator is not fitted (it has no classes_)")
        classes = np.asarray(classes)
        if classes.dtype.kind not in "iu" or classes.min() < 0:
            raise InvalidInputError(f"SklearnOracle: classes_ must be non-negative integers, got {classes[:5]}")
        n = int(n_classes) if n_classes is not None else int(classes.max()) + 1
        super().__init__(
            input_shape=input_shape, n_classes=n, bounds=bounds, batch_size=batch_size, max_queries=max_queries
        )
        self.estimator = estimator

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        labels = self.estimator.predict(x.reshape(len(x), -1).numpy())
        return torch.from_numpy(np.asarray(labels).astype(np.int64))


class CallableOracle(LabelOracle):
    """Labels from any function ``fn(x: np.ndarray (B, *input_shape)) -> labels (B,)``."""

    def __init__(
        self,
        fn: Callable[[np.ndarray], Any],
        *,
        input_shape: tuple[int, ...],
        n_classes: int,
        bounds: tuple[float, float] = (0.0, 1.0),
        batch_size: int = 4096,
        max_queries: int | None = None,
    ) -> None:
        if not callable(fn):
            raise InvalidInputError(f"CallableOracle: expected a callable, got {type(fn).__name__}")
        super().__init__(
            input_shape=input_shape, n_classes=n_classes, bounds=bounds, batch_size=batch_size, max_queries=max_queries
        )
        self.fn = fn

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        labels = np.asarray(self.fn(x.numpy()))
        if labels.dtype.kind not in "iu":
            if labels.dtype.kind == "f" and np.all(labels == np.round(labels)):
                labels = labels.astype(np.int64)
            else:
                raise InvalidInputError(f"CallableOracle: the function returned non-integer labels ({labels.dtype})")
        return torch.from_numpy(labels.astype(np.int64).reshape(-1))
