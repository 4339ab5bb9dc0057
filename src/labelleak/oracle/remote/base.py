"""What every remote oracle shares: request-sized chunks sent concurrently, placed back by position.

A subclass says how one chunk becomes a request and how the answer becomes labels (``_send``); this base splits a
validated batch into chunks of ``request_batch`` samples, sends up to ``concurrency`` of them at once through the
:class:`Transport`, and puts each chunk's labels at its own position, so completion order never matters.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch

from labelleak.errors import InvalidInputError, RemoteOracleError
from labelleak.oracle.base import LabelOracle
from labelleak.oracle.remote.transport import Transport


def labels_from_output(values: Any, n: int, *, where: str) -> np.ndarray:
    """Labels for ``n`` samples from a decoded answer: ``n`` labels as they are, or ``n`` rows of scores reduced by
    argmax here, on the client (the scores themselves are dropped, never stored)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RemoteOracleError(f"{where}: the labels are not numbers ({exc})") from None
    if arr.size == n and (arr.ndim == 1 or arr.shape[-1] == 1 or arr.ndim == 0):
        flat = arr.reshape(n)
        if not np.all(np.isfinite(flat)) or not np.all(flat == np.round(flat)):
            raise RemoteOracleError(f"{where}: expected integer class labels, got non-integer values")
        return flat.astype(np.int64)
    if arr.ndim >= 2 and arr.shape[0] == n and arr.size > n:
        return arr.reshape(n, -1).argmax(axis=1).astype(np.int64)
    raise RemoteOracleError(f"{where}: expected {n} labels or {n} rows of scores, got shape {arr.shape}")


class RemoteOracle(LabelOracle):
    """Base of the HTTP oracles; ``_send(chunk) -> labels`` is the protocol, the rest is shared."""

    protocol: ClassVar[str] = "remote"

    def __init__(
        self,
        transport: Transport,
        *,
        input_shape: tuple[int, ...],
        n_classes: int,
        bounds: tuple[float, float],
        request_batch: int,
        max_queries: int | None = None,
    ) -> None:
        if isinstance(request_batch, bool) or not isinstance(request_batch, int) or request_batch < 1:
            raise InvalidInputError(f"batch_size: expected a positive integer, got {request_batch!r}")
        super().__init__(
            input_shape=input_shape,
            n_classes=n_classes,
            bounds=bounds,
            batch_size=1 << 30,  # _predict does its own chunking, so that chunks can be in flight together
            max_queries=max_queries,
        )
        self.transport = transport
        self.request_batch = request_batch

    @property
    def url(self) -> str:
        return self.transport.base_url

    @property
    def retried(self) -> int:
        """Requests sent again after a transient failure."""
        return self.transport.stats.retries

    @abstractmethod
    def _send(self, chunk: np.ndarray) -> np.ndarray:
        """Labels (int64, (B,)) for one chunk (B, *input_shape) of at most ``request_batch`` samples."""

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.numpy()
        chunks = [arr[i : i + self.request_batch] for i in range(0, len(arr), self.request_batch)]
        answers = self.transport.map(self._send, chunks)
        return torch.from_numpy(np.concatenate(answers) if answers else np.empty(0, dtype=np.int64))

    def stats(self) -> dict[str, Any]:
        """What this oracle cost: samples answered, requests, retries and seconds waited (for results.json)."""
        return {
            "protocol": self.protocol,
            "url": self.url,
            "concurrency": self.transport.concurrency,
            "queries_sent": self.queries,
            **self.transport.stats.to_dict(),
        }

    def close(self) -> None:
        self.transport.close()
