"""What every remote oracle shares: request-sized chunks sent concurrently, placed back by position, and paid for.

A subclass says how one chunk becomes a request and how the answer becomes labels (``_send``, which sends through
:meth:`RemoteOracle._request`); this base splits a validated batch into chunks (:func:`request_size`), sends up to
``concurrency`` of them at once through the :class:`Transport`, and puts each chunk's labels at its own position,
so completion order never matters. A call smaller than ``concurrency`` full requests is cut into up to
``concurrency`` smaller ones (not below about :data:`MIN_REQUEST` samples), so that a search step asking for a few
hundred samples keeps several connections busy; labels are per sample, so how a call is cut never changes an
answer.

Spend is counted in samples *sent*: every attempt, retries and timed-out ones included (a request that timed out may
have been answered and billed). ``max_queries`` caps that count, and a retry that would pass it is not sent. With a
journal attached (:meth:`RemoteOracle.attach_journal`), each attempt is recorded before it goes out and each answer
as it arrives, before the attack sees it.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from labelleak.errors import BudgetExhaustedError, InvalidInputError, RemoteOracleError
from labelleak.oracle.base import AnswerJournal, LabelOracle
from labelleak.oracle.remote.transport import Transport  # names the missing 'serve' extra when httpx is absent

if TYPE_CHECKING:
    import httpx


MIN_REQUEST = 64  # samples: a call is cut into no more requests than one per 64 samples (see request_size)


def request_size(n: int, request_batch: int, concurrency: int) -> int:
    """Samples per request for a call of ``n`` samples: equal requests of at most ``request_batch``, enough of them
    to keep ``concurrency`` in flight, but no more than one per :data:`MIN_REQUEST` samples.

    More requests than that cost more than they save against ``labelleak serve``: a search step of 200 samples sent
    as 13 requests of 16 at once took about 1.5 times as long as one request (47 against 31 ms at 20 ms latency, on
    two busy cores), because each request has its fixed cost and a fixed latency is waited once per round of
    requests, whatever their size. Cutting pays where a server's time grows with the request's size (a slow model,
    replicas behind a load balancer)."""
    size = min(request_batch, max(MIN_REQUEST, -(-n // concurrency)))
    return -(-n // -(-n // size)) if n else size  # as many requests, of equal sizes (within one sample)


def decode_json(response: httpx.Response, where: str) -> Any:
    """The JSON of an answer, or one RemoteOracleError when the service sent something else (HTML, text, JSON
    nested too deep for the parser)."""
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        kind = "JSON nested too deeply" if isinstance(exc, RecursionError) else "not JSON"
        start = response.text[:60].replace("\n", " ") if not isinstance(exc, RecursionError) else ""
        raise RemoteOracleError(f"{where}: the answer is {kind}" + (f" ({start!r}...)" if start else "")) from None


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
        scores = arr.reshape(n, -1)
        bad = ~np.isfinite(scores).all(axis=1)
        if bad.any():  # argmax of a NaN row is class 0: a silent, wrong label
            raise RemoteOracleError(f"{where}: the scores of {int(bad.sum())} of {n} samples are NaN or infinite")
        return scores.argmax(axis=1).astype(np.int64)
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
        self.sent = 0  # samples sent to the target, every attempt counted: what it may have billed
        self._journal: AnswerJournal | None = None
        self._unjournaled = 0  # sent while no journal was attached (a probe before the audit's journal opens)
        self._lock = threading.Lock()
        self._charged = threading.local()  # samples charged by the current thread's chunk (an invariant check)

    def __getstate__(self) -> dict[str, Any]:
        """Travels (to a Ray worker) without its lock and journal: a worker attaches its own journal, and what was
        sent before it left is the sender's to journal."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_journal", "_lock", "_charged", "_unjournaled")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._journal, self._lock, self._charged, self._unjournaled = None, threading.Lock(), threading.local(), 0

    def attach_journal(self, journal: AnswerJournal | None) -> bool:
        """Record every attempt in ``journal`` before it is sent, and every answer as it arrives (``None``: stop).
        Samples sent while no journal was attached are recorded in it first."""
        with self._lock:
            self._journal = journal
            if journal is not None and self._unjournaled:
                journal.sent(self._unjournaled)
                self._unjournaled = 0
        return True

    @property
    def url(self) -> str:
        return self.transport.base_url

    @property
    def retried(self) -> int:
        """Requests sent again after a transient failure."""
        return self.transport.stats.retries

    @abstractmethod
    def _send(self, chunk: np.ndarray) -> np.ndarray:
        """Labels (int64, (B,)) for one chunk (B, *input_shape) of at most ``request_batch`` samples, asked
        through :meth:`_request` (which charges every attempt)."""

    def _admit(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        """As the base does, and the whole batch must fit the cap on samples sent, before any of it is sent."""
        xt = super()._admit(x)
        if self.max_queries is not None and self.sent + len(xt) > self.max_queries:
            raise BudgetExhaustedError(
                f"oracle budget: {len(xt)} more samples would exceed max_queries={self.max_queries} "
                f"({self.sent} sent, retries included)"
            )
        return xt

    def _charge(self, n: int) -> None:
        """Count ``n`` samples about to be sent (one attempt), journaled first; refused past ``max_queries``."""
        with self._lock:
            if self.max_queries is not None and self.sent + n > self.max_queries:
                raise BudgetExhaustedError(
                    f"oracle budget: sending {n} samples again (a retry) would exceed max_queries="
                    f"{self.max_queries} ({self.sent} sent, retries included)"
                )
            if self._journal is not None:
                self._journal.sent(n)
            else:
                self._unjournaled += n
            self.sent += n
        self._charged.n = getattr(self._charged, "n", 0) + n

    def _request(self, samples: int, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """``transport.request`` for ``samples`` samples, charged before each attempt."""
        return self.transport.request(method, path, before_attempt=lambda: self._charge(samples), **kwargs)

    def _answer(self, chunk: np.ndarray) -> np.ndarray:
        """One chunk's labels, checked and journaled as they arrive (before the attack sees them)."""
        self._charged.n = 0
        labels = self._send(chunk)
        assert self._charged.n >= len(chunk), f"{type(self).__name__}._send must send through _request"
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= self.n_classes):
            raise InvalidInputError(f"oracle backend returned a label outside 0..{self.n_classes - 1} (unknown class)")
        if self._journal is not None:
            self._journal.answered(chunk, labels)
        return labels

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.numpy()
        size = request_size(len(arr), self.request_batch, self.transport.concurrency)
        chunks = [arr[i : i + size] for i in range(0, len(arr), size)]
        answers = self.transport.map(self._answer, chunks)
        return torch.from_numpy(np.concatenate(answers) if answers else np.empty(0, dtype=np.int64))

    def stats(self) -> dict[str, Any]:
        """What this oracle cost (for results.json): samples answered (``queries_sent``, a name kept from earlier
        releases), samples sent with every retry (``samples_sent``, what ``max_queries`` caps), requests, retries and
        seconds waited."""
        return {
            "protocol": self.protocol,
            "url": self.url,
            "concurrency": self.transport.concurrency,
            "queries_sent": self.queries,
            "samples_sent": self.sent,
            **self.transport.stats.to_dict(),
        }

    def close(self) -> None:
        self.transport.close()
