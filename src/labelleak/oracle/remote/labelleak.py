"""The ``labelleak`` protocol, spoken by ``labelleak serve``: ``GET /info`` and ``POST /predict``.

``/info`` gives the input shape, value range, number of classes and the largest batch; ``/predict`` takes a batch
as a ``.npy`` body and answers ``{"labels": [...]}``.
"""

from __future__ import annotations

import io

import numpy as np

from labelleak.errors import RemoteOracleError
from labelleak.oracle.remote.base import RemoteOracle, decode_json, labels_from_output
from labelleak.oracle.remote.transport import Transport


def encode_npy(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(x, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


class LabelleakOracle(RemoteOracle):
    """Labels from ``labelleak serve`` (or anything with the same two routes)."""

    protocol = "labelleak"

    def __init__(self, transport: Transport, *, batch_size: int = 1024, max_queries: int | None = None) -> None:
        info = decode_json(transport.request("GET", "/info"), f"{transport.base_url}/info")
        try:
            shape, bounds, n_classes = tuple(info["input_shape"]), tuple(info["bounds"]), int(info["n_classes"])
            max_batch = int(info.get("max_batch", batch_size))
        except (KeyError, TypeError, ValueError) as exc:
            raise RemoteOracleError(f"{transport.base_url}/info: unexpected answer ({exc!r})") from None
        super().__init__(
            transport,
            input_shape=shape,
            n_classes=n_classes,
            bounds=bounds,
            request_batch=min(batch_size, max_batch),
            max_queries=max_queries,
        )

    def _send(self, chunk: np.ndarray) -> np.ndarray:
        response = self._request(
            len(chunk), "POST", "/predict", content=encode_npy(chunk), headers={"Content-Type": "application/x-npy"}
        )
        try:
            labels = decode_json(response, f"{self.url}/predict")["labels"]
        except (KeyError, TypeError) as exc:
            raise RemoteOracleError(f"{self.url}/predict: malformed answer ({exc!r})") from None
        return labels_from_output(labels, len(chunk), where=f"{self.url}/predict")
