"""A paid label-only target for the budget tests: ``labelleak serve``'s two routes over a fixed linear model, with
injected faults, counting every sample it computes a label for (what a paying client is billed), whether or not
the answer reaches the client. Also the client loop the tests interrupt, runnable in a child process:

    python tests/_paid_target.py URL JOURNAL CAP SEED BATCH CONCURRENCY
"""

from __future__ import annotations

import asyncio
import io
import sys
import threading
from collections.abc import Iterator

import numpy as np
import torch
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

SHAPE = (1, 4, 4)
CLASSES = 4
FAULTS = ("refused", "lost", "slow")  # 503 unanswered; answered then 500; answered after the client's timeout
_WEIGHTS = np.random.default_rng(7).normal(size=(int(np.prod(SHAPE)), CLASSES))


def labels_of(x: np.ndarray) -> np.ndarray:
    """The target's labels for ``x`` (N, *SHAPE)."""
    return np.asarray(x.reshape(len(x), -1) @ _WEIGHTS).argmax(1)


class PaidTarget:
    """The ASGI app (``app``) and its bill: ``answered`` samples in all, and each billed row's digest per phase.

    ``faults`` gives each kind's probability per request, drawn from a seeded generator; ``stall`` is how long a
    ``slow`` answer waits (longer than the client's timeout)."""

    def __init__(self, *, seed: int, faults: dict[str, float] | None = None, stall: float = 0.3) -> None:
        self.stall = stall
        self.lock = threading.Lock()
        self.in_flight = 0
        self.reset(seed=seed, faults=faults)
        self.app = Starlette(routes=[Route("/info", self.info), Route("/predict", self.predict, methods=["POST"])])

    def reset(self, *, seed: int, faults: dict[str, float] | None = None) -> None:
        """A new bill and fault sequence (between trials, with nothing in flight)."""
        self.faults = dict(faults or {})
        self.rng = np.random.default_rng(seed)
        self.answered = 0
        self.phase = 0
        self.billed: dict[int, list[bytes]] = {}  # phase -> digests of the rows billed in it, repeats included

    async def info(self, request: Request) -> JSONResponse:
        return JSONResponse({"input_shape": list(SHAPE), "bounds": [0.0, 1.0], "n_classes": CLASSES, "max_batch": 64})

    def _fault(self) -> str | None:
        u, edge = float(self.rng.random()), 0.0
        for kind in FAULTS:
            edge += self.faults.get(kind, 0.0)
            if u < edge:
                return kind
        return None

    def _bill(self, x: np.ndarray) -> None:
        from labelleak.oracle.cache import row_digests

        keys = row_digests(torch.from_numpy(x)).tolist()
        with self.lock:
            self.answered += len(x)
            self.billed.setdefault(self.phase, []).extend(keys)

    async def predict(self, request: Request) -> JSONResponse:
        with self.lock:
            self.in_flight += 1
            fault = self._fault()
        try:
            if fault == "refused":
                return JSONResponse({"error": "injected: busy"}, status_code=503)
            x = np.load(io.BytesIO(await request.body()), allow_pickle=False)
            labels = labels_of(x)
            self._bill(x)
            if fault == "lost":
                return JSONResponse({"error": "injected: answered, then failed"}, status_code=500)
            if fault == "slow":
                await asyncio.sleep(self.stall)
            return JSONResponse({"labels": labels.tolist()})
        finally:
            with self.lock:
                self.in_flight -= 1


def workload(seed: int, *, batches: int = 30) -> Iterator[np.ndarray]:
    """The batches a deterministic attack asks, the same in every run with ``seed``: mostly new rows, some asked
    before (answered from the journal)."""
    rng = np.random.default_rng(seed)
    asked: list[np.ndarray] = []
    for _ in range(batches):
        fresh = rng.uniform(0, 1, (int(rng.integers(4, 24)), *SHAPE)).astype(np.float32)
        old = [asked[int(i)] for i in rng.integers(0, len(asked), int(rng.integers(0, 6)))] if asked else []
        batch = np.concatenate([fresh, *(o[None] for o in old)])
        asked.extend(fresh)
        yield batch[rng.permutation(len(batch))]


def spend(
    url: str,
    journal: str,
    cap: int,
    *,
    seed: int,
    batch: int,
    concurrency: int,
    timeout: float = 0.1,
    retries: int = 6,
    transport: object = None,
) -> int:
    """Ask the ``workload`` through a journaled oracle capped at ``cap`` samples sent over all runs on ``journal``
    (a resumed run starts from what the journal says was sent); returns the batches answered, each checked."""
    from labelleak.errors import BudgetExhaustedError, RemoteOutageError
    from labelleak.oracle.cache import CachedOracle
    from labelleak.oracle.remote.labelleak import LabelleakOracle
    from labelleak.oracle.remote.transport import RetryPolicy, Transport

    policy = RetryPolicy(timeout=timeout, retries=retries, backoff=0.0, max_wait=0.0)
    http = Transport(url, policy=policy, concurrency=concurrency, transport=transport)  # type: ignore[arg-type]
    target = LabelleakOracle(http, batch_size=batch)
    cached = CachedOracle(target, journal)
    target.max_queries = max(cap - cached.spent_before, 0)
    done = 0
    try:
        for x in workload(seed):
            got = cached.predict_labels(x)
            assert np.array_equal(got, labels_of(x)), "a label differs from the target's"
            done += 1
    except (BudgetExhaustedError, RemoteOutageError):
        pass  # the cap, or a target that stayed down: the journal keeps what was answered
    except BaseException:
        target.close()  # a kill: the journal is left as it is, unflushed
        raise
    cached.close()
    target.close()
    return done


if __name__ == "__main__":
    url, journal, cap, seed, batch, concurrency = sys.argv[1:7]
    print("spending", flush=True)
    spend(url, journal, int(cap), seed=int(seed), batch=int(batch), concurrency=int(concurrency))
