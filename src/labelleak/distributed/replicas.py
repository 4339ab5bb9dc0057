"""Each worker's own oracle: what is sent to a worker so it can rebuild the target there.

* an in-process target (a PyTorch module, a scikit-learn estimator, a callable) is pickled with its oracle, so
  the worker holds a replica of the model (its state_dict travels through Ray's object store);
* a remote HTTP target is rebuilt from its address and settings: every worker opens its own connection;
* a journaling wrapper (:class:`CachedOracle`) is not sent: each shard keeps its own journal (see ``backend``).
"""

from __future__ import annotations

from dataclasses import dataclass

from labelleak.oracle.base import LabelOracle
from labelleak.oracle.cache import CachedOracle


@dataclass(frozen=True)
class Shipped:
    """An oracle that travels by value: calling it in the worker returns the worker's copy."""

    oracle: LabelOracle

    def __call__(self) -> LabelOracle:
        return self.oracle


@dataclass(frozen=True)
class HttpReplica:
    """The settings of an :class:`~labelleak.oracle.http.HttpOracle`; each worker opens its own client.

    The API key travels with the task (through Ray's object store); on a shared cluster prefer a key limited to the
    audit.
    """

    url: str
    api_key: str | None
    timeout: float
    retries: int
    backoff: float
    max_backoff: float
    batch_size: int

    def __call__(self) -> LabelOracle:
        from labelleak.oracle.http import HttpOracle

        return HttpOracle(
            self.url,
            api_key=self.api_key,
            timeout=self.timeout,
            retries=self.retries,
            backoff=self.backoff,
            max_backoff=self.max_backoff,
            batch_size=self.batch_size,
        )


def replica_of(oracle: LabelOracle) -> Shipped | HttpReplica:
    """How a worker gets its own copy of ``oracle`` (the journal wrapper, if any, left out)."""
    inner = oracle.inner if isinstance(oracle, CachedOracle) else oracle
    if type(inner).__name__ == "HttpOracle":  # no import: httpx belongs to an extra
        client = inner.client  # type: ignore[attr-defined]
        return HttpReplica(
            url=inner.url,  # type: ignore[attr-defined]
            api_key=client.headers.get("X-API-Key"),
            timeout=float(client.timeout.read or 30.0),
            retries=inner.retries,  # type: ignore[attr-defined]
            backoff=inner.backoff,  # type: ignore[attr-defined]
            max_backoff=inner.max_backoff,  # type: ignore[attr-defined]
            batch_size=inner.batch_size,
        )
    return Shipped(inner)
