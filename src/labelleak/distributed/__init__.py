"""Running an audit on several workers (Ray) with the same results as one process. Orchestration only."""

from labelleak.distributed.backend import Executor, LocalExecutor, RayExecutor, make_executor
from labelleak.distributed.shards import is_shardable, merge_results, shard_bounds, split_total

__all__ = [
    "Executor",
    "LocalExecutor",
    "RayExecutor",
    "is_shardable",
    "make_executor",
    "merge_results",
    "shard_bounds",
    "split_total",
]
