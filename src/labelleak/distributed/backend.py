"""Executors: where an audit's attacks and training jobs run. ``LocalExecutor`` runs them in this process;
``RayExecutor`` sends candidate shards and training jobs to Ray workers (a laptop, a GPU box or a cluster).

An attack that scores each candidate on its own (:func:`~labelleak.distributed.shards.is_shardable`) is split
into one shard of consecutive candidates per worker; every worker rebuilds the target from a replica
(:mod:`labelleak.distributed.replicas`) and attacks its shard with the same per-candidate budget, and the shards'
results are concatenated in candidate order. Because the attacks' randomness is keyed by candidate content, the
scores, statuses and query counts equal those of one process. An attack that trains reference models (``lira``,
``dhattack``, ``yoqo``, ...) runs in the driver and trains its models on the workers (``Attack.train_map``);
other attacks run whole on one worker.

Fault tolerance: a shard whose worker dies is retried by Ray (``max_retries``). With a checkpoint, each shard
journals the target's answers to its own file ``OUT/checkpoint/shards/<attack>-<i>-of-<k>.bin`` (one writer per
file; a journal is never shared between processes), and reads back every journal of the checkpoint at start, so
a retried shard, a ``--resume`` on either backend, or a resume with another number of workers replays the answers
already paid for.
"""

from __future__ import annotations

import copy
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from labelleak._extras import require
from labelleak.attacks import Attack, AttackResult, ShadowData
from labelleak.distributed.replicas import Shipped, replica_of
from labelleak.distributed.shards import is_shardable, merge_results, shard_bounds
from labelleak.errors import LabelleakError
from labelleak.logs import get_logger
from labelleak.oracle.base import LabelOracle
from labelleak.oracle.budget import shard_totals, split_total
from labelleak.oracle.cache import CachedOracle

log = get_logger(__name__)
T = TypeVar("T")
R = TypeVar("R")


class WorkerLostError(LabelleakError, RuntimeError):
    """A worker died more often than the task's retries allow."""


@dataclass(frozen=True)
class ShardTask:
    """One shard's share of the work: its candidates, budget and journal."""

    start: int
    stop: int
    max_total: int | None = None  # this shard's share of the total query cap
    oracle_cap: int | None = None  # this shard's share of the oracle's lifetime cap (``max_queries``)
    journal: str | None = None  # where this shard journals the target's answers
    seed_journals: tuple[str, ...] = ()  # journals read back (other shards, earlier runs)
    lookup: bool = False


def run_shard(
    attack: Attack,
    replica: Shipped | Callable[[], LabelOracle],
    x: np.ndarray,
    y: np.ndarray,
    shadow: ShadowData | None,
    max_queries_per_sample: int | None,
    task: ShardTask,
) -> tuple[AttackResult, int, dict[str, float]]:
    """Attack one shard against this worker's own oracle; returns the result, the queries the target answered,
    and what this worker's HTTP client spent (empty for an in-process target) for the driver's ``remote`` stats."""
    target = replica()
    target.max_queries = None if task.oracle_cap is None else target.queries + task.oracle_cap
    before = target.queries
    oracle: LabelOracle = target
    if task.journal is not None:
        oracle = CachedOracle(target, task.journal, lookup=task.lookup, seed=task.seed_journals)
    try:
        result = attack(
            oracle, x, y, shadow=shadow, max_queries_per_sample=max_queries_per_sample, max_total_queries=task.max_total
        )
    finally:
        if isinstance(oracle, CachedOracle):
            oracle.close()
    return result, target.queries - before, transport_counts(target)


def transport_counts(oracle: LabelOracle) -> dict[str, float]:
    """Requests, retries and retry wait of a remote oracle's client; empty for an in-process one."""
    stats = getattr(getattr(oracle, "transport", None), "stats", None)
    if stats is None:
        return {}
    return {"requests": stats.requests, "retries": stats.retries, "wait": stats.wait_seconds}


def add_transport_counts(oracle: LabelOracle, counts: Sequence[dict[str, float]]) -> None:
    """Credit the workers' client statistics to the driver's remote oracle, so results.json counts every request."""
    base = oracle.inner if isinstance(oracle, CachedOracle) else oracle
    stats = getattr(getattr(base, "transport", None), "stats", None)
    if stats is None:
        return
    for c in counts:
        if c:
            stats.add(requests=int(c["requests"]), retries=int(c["retries"]), wait=float(c["wait"]))


class Executor(ABC):
    """Runs attacks on candidates and training jobs; ``with`` closes it."""

    workers: int = 1

    def unjournaled(self) -> Executor:
        """This executor for queries that must not enter the target's journal (the adversary's own shadow model
        answers them); the same workers, nothing to close."""
        return self

    @abstractmethod
    def run_attack(
        self,
        attack: Attack,
        oracle: LabelOracle,
        x: np.ndarray,
        y: np.ndarray,
        *,
        shadow: ShadowData | None = None,
        max_queries_per_sample: int | None = None,
        max_total_queries: int | None = None,
        progress: bool = False,
    ) -> AttackResult:
        """``attack(oracle, x, y, ...)``, possibly split over workers; the same result either way."""

    @abstractmethod
    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``[fn(item) for item in items]``, possibly in parallel (training jobs); results in order."""

    def close(self) -> None:
        """Release the workers (nothing to do in-process)."""
        return None

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tasks(
        self, attack: Attack, oracle: LabelOracle, n: int, shards: int, max_total: int | None, journal_dir: Path | None
    ) -> list[ShardTask]:
        """The shards of an attack on ``n`` candidates (one when the attack cannot be sharded)."""
        bounds = shard_bounds(n, shards if is_shardable(attack) else 1) or [(0, 0)]
        sizes = [b - a for a, b in bounds]
        totals = shard_totals(max_total, sizes)
        target = oracle.inner if isinstance(oracle, CachedOracle) else oracle
        left = None if target.max_queries is None else max(target.max_queries - target.queries, 0)
        caps = split_total(left, sizes)
        tasks = [ShardTask(a, b, t, c) for (a, b), t, c in zip(bounds, totals, caps)]
        if journal_dir is None or not isinstance(oracle, CachedOracle):
            return tasks  # score and white-box attacks get the target itself, unjournaled
        oracle.flush()
        journal_dir.mkdir(parents=True, exist_ok=True)
        seeds = tuple(str(p) for p in [oracle.path, *sorted(journal_dir.glob("*.bin"))])
        k = len(tasks)
        return [
            replace(t, journal=str(journal_dir / f"{attack.name}-{i}-of-{k}.bin"), seed_journals=seeds, lookup=True)
            for i, t in enumerate(tasks)
        ]


class LocalExecutor(Executor):
    """Everything in this process. ``shards > 1`` runs an attack's shards one after another (for tests: the
    merged result must equal the unsharded one)."""

    def __init__(self, *, shards: int = 1) -> None:
        self.shards = shards

    def run_attack(
        self,
        attack: Attack,
        oracle: LabelOracle,
        x: np.ndarray,
        y: np.ndarray,
        *,
        shadow: ShadowData | None = None,
        max_queries_per_sample: int | None = None,
        max_total_queries: int | None = None,
        progress: bool = False,
    ) -> AttackResult:
        tasks = self._tasks(attack, oracle, len(x), self.shards, max_total_queries, None)
        if len(tasks) == 1:
            return attack(
                oracle,
                x,
                y,
                shadow=shadow,
                max_queries_per_sample=max_queries_per_sample,
                max_total_queries=max_total_queries,
                progress=progress,
            )
        started = time.perf_counter()
        parts = [
            attack(
                oracle,
                x[t.start : t.stop],
                y[t.start : t.stop],
                shadow=shadow,
                max_queries_per_sample=max_queries_per_sample,
                max_total_queries=t.max_total,
            )
            for t in tasks
        ]
        return merge_results(parts, seconds=time.perf_counter() - started)

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        return [fn(item) for item in items]


def _on_worker(threads: int, fn: Callable[..., R], *args: Any) -> R:
    """Run ``fn`` on a worker with torch using the worker's CPUs. Ray sets ``OMP_NUM_THREADS`` for a task, but
    torch sizes its pool once per process and Ray reuses a process for tasks of other sizes, so it is set here."""
    import torch

    torch.set_num_threads(threads)
    return fn(*args)


class RayExecutor(Executor):
    """Shards and training jobs as Ray tasks, ``workers`` at a time, each with ``worker_cpus`` / ``worker_gpus``.

    Connects to ``address`` (``"auto"``: the cluster started with ``ray start``; ``"ray://HOST:PORT"``: a Ray
    client) or, without one, starts a local Ray instance, which it shuts down on ``close``. A Ray instance already
    running in this process (``ray.init`` by the caller) is used as is and left running.
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        workers: int = 2,
        worker_cpus: float = 1.0,
        worker_gpus: float = 0.0,
        max_retries: int = 3,
        journal_dir: str | Path | None = None,
    ) -> None:
        self._ray = require("ray", "ray", "--backend ray")
        self.workers, self.worker_cpus, self.worker_gpus = workers, worker_cpus, worker_gpus
        self.max_retries = max_retries
        self.journal_dir = None if journal_dir is None else Path(journal_dir)
        self._owner = not self._ray.is_initialized()
        if self._owner:
            self._ray.init(address=address, include_dashboard=False, log_to_driver=False)
        self._options = {"num_cpus": worker_cpus, "num_gpus": worker_gpus, "max_retries": max_retries}
        self._threads = max(1, int(worker_cpus))

    def _get(self, refs: list[Any]) -> list[Any]:
        """Results of ``refs``, with a worker's labelleak error raised here as itself (one line, no traceback)."""
        exceptions = self._ray.exceptions
        try:
            return list(self._ray.get(refs))
        except exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, LabelleakError):
                raise cause from None
            raise
        except (exceptions.WorkerCrashedError, exceptions.NodeDiedError, exceptions.ActorDiedError) as exc:
            raise WorkerLostError(
                f"a Ray worker died {self.max_retries + 1} times ({type(exc).__name__}); its shard's answers are "
                "journaled: rerun with --resume"
            ) from None

    def run_attack(
        self,
        attack: Attack,
        oracle: LabelOracle,
        x: np.ndarray,
        y: np.ndarray,
        *,
        shadow: ShadowData | None = None,
        max_queries_per_sample: int | None = None,
        max_total_queries: int | None = None,
        progress: bool = False,
    ) -> AttackResult:
        if attack.capabilities().uses_reference_models and not is_shardable(attack):
            # runs in the driver (its models are the work): the reference models train on the workers
            twin = copy.copy(attack)
            twin.train_map = self.map
            return twin(
                oracle,
                x,
                y,
                shadow=shadow,
                max_queries_per_sample=max_queries_per_sample,
                max_total_queries=max_total_queries,
                progress=progress,
            )
        started = time.perf_counter()
        tasks = self._tasks(attack, oracle, len(x), self.workers, max_total_queries, self.journal_dir)
        log.info("%s: %d shard(s) on Ray", attack.name, len(tasks))
        remote = self._ray.remote(_on_worker).options(**self._options)
        replica, shadow_ref = replica_of(oracle), self._ray.put(shadow)
        refs = [
            remote.remote(
                self._threads,
                run_shard,
                attack,
                replica,
                x[t.start : t.stop],
                y[t.start : t.stop],
                shadow_ref,
                max_queries_per_sample,
                t,
            )
            for t in tasks
        ]
        done = self._get(refs)
        asked = sum(q for _, q, _ in done)
        oracle.queries += asked
        if isinstance(oracle, CachedOracle):
            oracle.inner.queries += asked
        add_transport_counts(oracle, [c for _, _, c in done])
        if len(done) == 1:
            return replace_seconds(done[0][0], time.perf_counter() - started)
        return merge_results([r for r, _, _ in done], seconds=time.perf_counter() - started)

    def unjournaled(self) -> RayExecutor:
        twin = copy.copy(self)
        twin.journal_dir, twin._owner = None, False  # the twin never shuts Ray down
        return twin

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``fn`` over ``items`` with at most ``workers`` tasks in flight (Ray alone would start as many as the
        cluster's CPUs allow, so ``--workers`` would not bound training jobs)."""
        remote = self._ray.remote(_on_worker).options(**self._options)
        refs: list[Any] = []
        in_flight: list[Any] = []
        for item in items:
            if len(in_flight) >= self.workers:
                _, in_flight = self._ray.wait(in_flight, num_returns=1)
            ref = remote.remote(self._threads, fn, item)
            refs.append(ref)
            in_flight.append(ref)
        return self._get(refs)

    def close(self) -> None:
        if self._owner and self._ray.is_initialized():
            self._ray.shutdown()


def replace_seconds(result: AttackResult, seconds: float) -> AttackResult:
    """``result`` timed by the caller (the wall time the audit waited, transfers included)."""
    result.seconds = seconds
    return result


def make_executor(
    backend: str = "local",
    *,
    address: str | None = None,
    workers: int = 1,
    worker_cpus: float = 1.0,
    worker_gpus: float = 0.0,
    journal_dir: str | Path | None = None,
) -> Executor:
    """The executor for ``--backend`` (``local`` or ``ray``) and its options."""
    if backend == "ray":
        return RayExecutor(
            address=address, workers=workers, worker_cpus=worker_cpus, worker_gpus=worker_gpus, journal_dir=journal_dir
        )
    return LocalExecutor()
