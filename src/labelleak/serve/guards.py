"""What keeps ``labelleak serve`` reachable under hostile clients: a connection cap, a deadline for request headers
(uvicorn has none, so 1,100 half-sent requests used to hold the server), keep-alive and body deadlines, and a log
that cannot be flooded. The route-level limits (body size, JSON size and nesting, rate) live in :mod:`.app`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from labelleak.errors import InvalidInputError


class _HeaderDeadline(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline: a connection whose request headers are not complete
    ``header_timeout`` seconds after it opened (or after its last response) is closed."""

    header_timeout = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # headers are in: the body has its own deadline in the route

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def header_deadline_protocol(seconds: float) -> type[H11Protocol]:
    """The protocol class uvicorn should use (``Config(http=...)``) for a header deadline of ``seconds``."""
    return type("HeaderDeadlineH11Protocol", (_HeaderDeadline,), {"header_timeout": float(seconds)})


class LogRateLimit(logging.Filter):
    """Pass at most ``per_second`` records a second per logger, then one line saying how many were dropped."""

    def __init__(self, per_second: int) -> None:
        super().__init__()
        self.per_second = per_second
        self._window, self._count, self._dropped = 0, 0, 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = int(time.monotonic())
        if now != self._window:
            if self._dropped:
                record.msg = f"[{self._dropped} log lines dropped in the last second] {record.msg}"
            self._window, self._count, self._dropped = now, 0, 0
        self._count += 1
        if self._count > self.per_second:
            self._dropped += 1
            return False
        return True


def check_serve_options(
    *,
    port: int,
    max_batch: int,
    rate_limit: float | None,
    fault_rate: float = 0.0,
    latency: float = 0.0,
    max_connections: int = 256,
) -> None:
    """Raise one InvalidInputError naming every bad ``labelleak serve`` option."""
    bad = []
    if not 1 <= port <= 65535:
        bad.append(f"--port: expected 1..65535, got {port}")
    if max_batch < 1:
        bad.append(f"--max-batch: expected at least 1, got {max_batch}")
    if rate_limit is not None and not rate_limit > 0:
        bad.append(f"--rate-limit: expected a positive number of samples per second, got {rate_limit}")
    if not 0.0 <= fault_rate <= 1.0:
        bad.append(f"--fault-rate: expected a fraction in [0, 1], got {fault_rate}")
    if latency < 0:
        bad.append(f"--latency: expected seconds >= 0, got {latency}")
    if max_connections < 1:
        bad.append(f"--max-connections: expected at least 1, got {max_connections}")
    if bad:
        raise InvalidInputError("; ".join(bad))


def server_config(
    app: Any, *, host: str, port: int, header_timeout: float, max_connections: int, log_per_second: int
) -> Any:
    """A ``uvicorn.Config`` with the guards above: connection cap, header deadline, short keep-alive, small
    header buffer, and rate-limited logs."""
    import uvicorn

    limit = LogRateLimit(log_per_second)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).addFilter(limit)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        http=header_deadline_protocol(header_timeout),
        limit_concurrency=max_connections,
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=16 * 1024,
    )
