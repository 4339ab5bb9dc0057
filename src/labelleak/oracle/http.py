"""A label oracle behind ``labelleak serve``'s HTTP API: ``HttpOracle(url)``.

Kept as the short entry point; the protocols (labelleak, Open Inference Protocol v2, a REST spec), retries and
concurrency live in :mod:`labelleak.oracle.remote`.
"""

from __future__ import annotations

import httpx

from labelleak.errors import RemoteOracleError, RemoteOutageError
from labelleak.oracle.remote.labelleak import LabelleakOracle, encode_npy
from labelleak.oracle.remote.transport import RETRYABLE, RetryPolicy, Transport

__all__ = ["RETRYABLE", "HttpOracle", "RemoteOracleError", "RemoteOutageError", "encode_npy"]


class HttpOracle(LabelleakOracle):
    """``LabelleakOracle`` built from a URL and plain options (the signature earlier releases had)."""

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
        concurrency: int = 1,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        policy = RetryPolicy(timeout=timeout, retries=retries, backoff=backoff, max_wait=max_backoff)
        headers = {"X-API-Key": api_key} if api_key else {}
        http = Transport(url, policy=policy, headers=headers, concurrency=concurrency, transport=transport)
        try:
            super().__init__(http, batch_size=batch_size, max_queries=max_queries)
        except BaseException:
            http.close()
            raise
