"""Who may ask and how fast: the API key (compared in constant time) and a per-client token bucket of samples.

A client is ``api-key`` once the required key matches, else its address: with no key configured, a made-up
``X-API-Key`` header names nobody new, so it cannot open a fresh bucket. The bucket holds one second of samples;
a request is refused while it holds less than one, and a served batch draws its size (it may overdraw, and the
client then waits), so the limit counts samples, not requests.
"""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass, field

from starlette.requests import Request


class BadRequest(Exception):
    """A client error: answered with ``status``, ``detail`` and ``headers``, never a 500."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}


@dataclass
class Gate:
    """API key check, per-client sample rate limit, and the count of samples served per client."""

    api_key: str | None = None
    rate_limit: float | None = None  # samples per second per client
    served: dict[str, int] = field(default_factory=dict)
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def who(self, request: Request) -> str:
        """``api-key`` once the key matches, else the client's address; 401 for a missing or wrong key."""
        if self.api_key is not None:
            given = request.headers.get("x-api-key", "").encode()
            if not hmac.compare_digest(given, self.api_key.encode()):
                raise BadRequest(401, "missing or wrong API key (header X-API-Key)")
            return "api-key"
        return request.client.host if request.client else "unknown"

    def _refill(self, client: str, rate: float) -> float:
        now = time.monotonic()
        tokens, last = self._buckets.get(client, (rate, now))
        tokens = min(rate, tokens + (now - last) * rate)
        self._buckets[client] = (tokens, now)
        return tokens

    def throttle(self, client: str) -> None:
        """429 while the client's bucket holds less than one sample; Retry-After says when it will."""
        rate = self.rate_limit
        if rate is None:
            return
        with self._lock:
            tokens = self._refill(client, rate)
        if tokens < 1.0:
            raise BadRequest(429, "rate limit exceeded", {"Retry-After": f"{max((1.0 - tokens) / rate, 0.001):.3f}"})

    def charge(self, client: str, samples: int) -> None:
        with self._lock:
            self.served[client] = self.served.get(client, 0) + samples
            if self.rate_limit is not None:
                tokens = self._refill(client, self.rate_limit)
                self._buckets[client] = (tokens - samples, time.monotonic())

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.served)
