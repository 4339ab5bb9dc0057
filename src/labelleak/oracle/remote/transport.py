"""HTTP for remote oracles: one connection pool, retries with jittered exponential backoff, and spend statistics.

A request is retried on connection errors, timeouts, 429 and 5xx answers. The wait before attempt ``k`` is drawn
uniformly from ``[0, min(backoff * 2**k, max_wait)]`` ("full jitter", so many clients do not retry in step),
unless the server sent ``Retry-After`` (seconds or an HTTP date), which is honoured up to ``max_wait``. Other 4xx
answers are the caller's fault and raise at once with the server's message. Retries stop after ``window`` seconds
of waiting (default 60, enough for a typical server restart: the old count of 8 retries waited 6-13 s, and a 9 s
restart used them all) or ``retries`` attempts, whichever comes first. Then the target is taken to be down:
:class:`RemoteOutageError`, which the CLI turns into exit code 3 and a ``--resume`` hint (the journal keeps every
answer received so far).
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar

from labelleak._extras import missing_extra
from labelleak.errors import InvalidInputError, RemoteOutageError

try:
    import httpx
except ImportError as exc:  # the HTTP client ships with the serve extra
    raise missing_extra("serve", "remote targets (--target URL)") from exc

RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait for one answer (``timeout``), how often to try again, and how long to wait in between."""

    timeout: float = 30.0
    retries: int = 30  # at most this many attempts after the first
    backoff: float = 0.05  # first backoff ceiling in seconds; doubled at each attempt
    max_wait: float = 60.0  # ceiling of any single wait, Retry-After included
    window: float = 60.0  # seconds of waiting between attempts before giving up: covers a typical server restart

    def problems(self) -> list[str]:
        found = []
        if not self.timeout > 0:
            found.append(f"timeout: expected a positive number of seconds, got {self.timeout!r}")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            found.append(f"retries: expected a non-negative integer, got {self.retries!r}")
        if not self.backoff >= 0:
            found.append(f"backoff: expected a non-negative number of seconds, got {self.backoff!r}")
        if not self.max_wait >= 0:
            found.append(f"max_retry_wait: expected a non-negative number of seconds, got {self.max_wait!r}")
        if not self.window >= 0:
            found.append(f"retry_window: expected a non-negative number of seconds, got {self.window!r}")
        return found


@dataclass
class TransportStats:
    """What talking to the target cost: requests answered, retries, and seconds spent waiting to retry."""

    requests: int = 0
    retries: int = 0
    wait_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, requests: int = 0, retries: int = 0, wait: float = 0.0) -> None:
        with self.lock:
            self.requests += requests
            self.retries += retries
            self.wait_seconds += wait

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "retries": self.retries, "retry_wait_seconds": round(self.wait_seconds, 3)}


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds asked by a ``Retry-After`` header: a number of seconds or an HTTP date; ``None`` if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max((when - (now or datetime.now(timezone.utc))).total_seconds(), 0.0)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        for key in ("detail", "error", "message"):
            if key in body:
                return str(body[key])[:200]
    return response.text[:200]


class Transport:
    """A pooled ``httpx.Client`` with the retry policy; thread-safe, so ``map`` may send requests concurrently."""

    def __init__(
        self,
        base_url: str,
        *,
        policy: RetryPolicy | None = None,
        headers: dict[str, str] | None = None,
        concurrency: int = 1,
        transport: httpx.BaseTransport | None = None,
        seed: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.policy = policy or RetryPolicy()
        found = self.policy.problems()
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            found.append(f"concurrency: expected a positive integer, got {concurrency!r}")
        if found:
            raise InvalidInputError("remote target: " + "; ".join(found))
        self.base_url = base_url.rstrip("/")
        self.concurrency = concurrency
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.client = httpx.Client(
            base_url=self.base_url,
            headers=headers or {},
            timeout=self.policy.timeout,
            transport=transport,
            limits=limits,
        )
        self.stats = TransportStats()
        self._jitter = random.Random(seed)  # jitter only spaces retries out; it never changes an answer
        self._jitter_lock = threading.Lock()
        self._sleep = sleep
        self._pool: ThreadPoolExecutor | None = None
        self._headers, self._seed = dict(headers or {}), seed

    def __getstate__(self) -> dict[str, Any]:
        """A transport travels as its settings (to a Ray worker, say) and opens its own client where it lands; a
        custom ``httpx`` transport (tests) and the sleep function stay behind."""
        return {
            "base_url": self.base_url,
            "policy": self.policy,
            "headers": self._headers,
            "concurrency": self.concurrency,
            "seed": self._seed,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["base_url"],
            policy=state["policy"],
            headers=state["headers"],
            concurrency=state["concurrency"],
            seed=state["seed"],
        )

    def _wait(self, attempt: int, asked: float | None) -> float:
        if asked is not None:
            return min(asked, self.policy.max_wait)
        with self._jitter_lock:
            u = self._jitter.random()
        return u * min(self.policy.backoff * 2**attempt, self.policy.max_wait)

    def request(
        self, method: str, path: str, *, before_attempt: Callable[[], None] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One request, retried as the policy says; 4xx other than 408/425/429 raise ``InvalidInputError``.

        ``path`` is relative to the base URL, or an absolute URL (a REST endpoint is used exactly as written).
        ``before_attempt`` runs before every attempt, the first and each retry: a timed-out request may still have
        been answered and billed, so that is where samples are charged (and where a budget refuses a retry)."""
        where = path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"
        waited = 0.0
        for attempt in range(self.policy.retries + 1):
            asked = None
            if before_attempt is not None:
                before_attempt()  # may refuse this attempt: a retry that is not sent is not counted
            if attempt:
                self.stats.add(retries=1)
            try:
                response = self.client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if response.status_code < 400:
                    self.stats.add(requests=1)
                    return response
                if response.status_code not in RETRYABLE:
                    raise InvalidInputError(f"{where}: {response.status_code} {_detail(response)}")
                failure = f"HTTP {response.status_code}"
                asked = retry_after_seconds(response.headers.get("Retry-After"))
            remaining = self.policy.window - waited
            if attempt == self.policy.retries or remaining <= 0:
                raise RemoteOutageError(
                    f"{where}: gave up after {attempt + 1} attempts and {waited:.1f} s of waiting ({failure}); "
                    "--retry-window sets how long to wait"
                )
            wait = min(self._wait(attempt, asked), remaining)
            waited += wait
            self.stats.add(wait=wait)
            self._sleep(wait)
        raise AssertionError("unreachable")

    def map(self, fn: Callable[[T], Any], items: Sequence[T]) -> list[Any]:
        """``[fn(item) for item in items]`` with up to ``concurrency`` calls in flight; results keep their order.

        When one call fails (or the caller is interrupted), calls not yet started are cancelled and those in flight
        are waited for before the error is raised: their answers are paid for, so they are let finish (and be
        journaled), and nothing runs on after the caller has moved on."""
        if self.concurrency == 1 or len(items) <= 1:
            return [fn(item) for item in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="labelleak-http")
        futures = [self._pool.submit(fn, item) for item in items]
        try:
            return [f.result() for f in futures]  # in submission order, whatever finishes first
        except BaseException:
            for f in futures:
                f.cancel()
            wait(futures)
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.client.close()
