"""Each worker's own oracle: what is sent to a worker so it can rebuild the target there.

* an in-process target (a PyTorch module, a scikit-learn estimator, a callable) is pickled with its oracle, so
  the worker holds a replica of the model (its state_dict travels through Ray's object store);
* a remote HTTP target travels as its settings and opens its own connection in the worker;
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


def replica_of(oracle: LabelOracle) -> Shipped:
    """How a worker gets its own copy of ``oracle`` (the journal wrapper, if any, left out). Remote oracles travel
    as their settings and open their own HTTP client in the worker (``Transport.__getstate__``); the API key
    travels with the task through Ray's object store, so on a shared cluster prefer a key limited to the audit."""
    return Shipped(oracle.inner if isinstance(oracle, CachedOracle) else oracle)
