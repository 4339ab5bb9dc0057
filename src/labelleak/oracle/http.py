"""A label oracle behind an HTTP API (served by ``labelleak serve`` or anything with the same two routes).

``GET /info`` gives the input shape, value range and number of classes; ``POST /predict`` takes a batch as a
``.npy`` body and answers ``{"labels": [...]}``. The client reuses one connection pool, sends batches of at most
the server's ``max_batch``, and retries with exponential backoff on connection errors, 429 (honouring
``Retry-After``) and 5xx answers. Other 4xx answers are the caller's fault and raise at once with the server's
message. The query budget is enforced here, on the client.
"""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
import torch

from labelleak._extras import missing_extra
from labelleak.errors import InvalidInputError, LabelleakError
from labelleak.oracle.base import LabelOracle

try:
    import httpx
except ImportError as exc:  # the HTTP client ships with the serve extra
    raise missing_extra("serve", "remote targets (--target URL)") from exc

RETRYABLE = {429, 500, 502, 503, 504}


class RemoteOracleError(LabelleakError, RuntimeError):
    """The remote target could not be reached or kept failing after all retries."""


def encode_npy(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(x, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


class HttpOracle(LabelOracle):
    """Labels from a remote endpoint; see the module docstring for the protocol."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 8,
        backoff: float = 0.05,
        max_backoff: float = 5.0,
        batch_size: int = 1024,
        max_queries: int | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"X-API-Key": api_key} if api_key else {}
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self.retried = 0  # requests sent again after a transient failure
        info = self._request("GET", "/info").json()
        try:
            shape, bounds, n_classes = tuple(info["input_shape"]), tuple(info["bounds"]), int(info["n_classes"])
            max_batch = int(info.get("max_batch", batch_size))
        except (KeyError, TypeError, ValueError) as exc:
            raise RemoteOracleError(f"{self.url}/info: unexpected answer ({exc!r})") from None
        super().__init__(
            input_shape=shape,
            n_classes=n_classes,
            bounds=bounds,
            batch_size=min(batch_size, max_batch),
            max_queries=max_queries,
        )

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(self.retries + 1):
            wait = min(self.backoff * 2**attempt, self.max_backoff)
            try:
                response = self.client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    return response
                if response.status_code not in RETRYABLE:
                    try:
                        detail = response.json().get("detail", response.text)
                    except ValueError:
                        detail = response.text
                    raise InvalidInputError(f"{self.url}{path}: {response.status_code} {detail}")
                failure = f"HTTP {response.status_code}"
                after = response.headers.get("Retry-After")
                if after is not None:
                    try:
                        wait = min(max(float(after), wait), self.max_backoff)
                    except ValueError:
                        pass
            if attempt == self.retries:
                raise RemoteOracleError(f"{self.url}{path}: gave up after {self.retries + 1} attempts ({failure})")
            self.retried += 1
            time.sleep(wait)
        raise AssertionError("unreachable")

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        response = self._request(
            "POST", "/predict", content=encode_npy(x.numpy()), headers={"Content-Type": "application/x-npy"}
        )
        try:
            labels = np.asarray(response.json()["labels"], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as exc:
            raise RemoteOracleError(f"{self.url}/predict: malformed answer ({exc!r})") from None
        return torch.from_numpy(labels)

    def close(self) -> None:
        self.client.close()
