"""Model training as parallel jobs: the targets and shadow models of several audits (``defend``, ``reproduce``)
are trained on the workers first, so the audits that follow load them from the shared model cache.

Every model is cached under a key of everything that made it (:mod:`labelleak.models.store`), and the store's
writes are atomic for concurrent writers, so two workers that train the same shadow model both write it safely
and the audits load whichever landed. On a multi-node cluster ``cache_dir`` must be on a filesystem every node
sees (NFS, a mounted bucket); otherwise each audit trains its models again on the driver.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labelleak.distributed.backend import Executor, LocalExecutor
from labelleak.logs import get_logger
from labelleak.pipeline.setup import prepare

log = get_logger(__name__)


def prepare_models(cfg: Any) -> str:
    """Train or load ``cfg``'s target and shadow model (a worker's job); returns the target's model folder."""

    setup = prepare(cfg)
    for close in setup.closers:
        close()
    return str(setup.target.get("model_dir", ""))


def train_in_parallel(cfgs: Sequence[Any], executor: Executor) -> list[str]:
    """Train the models of every local-target config in ``cfgs`` on ``executor``'s workers (a no-op in-process,
    where each audit trains its own as it starts). Paths are made absolute: a worker's working folder differs."""
    if isinstance(executor, LocalExecutor):
        return []
    todo = [
        c.replace(
            cache_dir=str(Path(c.cache_dir).resolve()),
            data=None if c.data is None else str(Path(c.data).resolve()),
            progress=False,
        )
        for c in cfgs
        if not c.is_remote and c.model is None  # the auditor's own targets need no training
    ]
    log.info("training the models of %d audit(s) on %d worker(s)", len(todo), executor.workers)
    return executor.map(prepare_models, todo)


def executor_for(cfg: Any) -> Executor:
    """The executor of ``cfg.backend`` with its worker options (no journal: for training jobs)."""
    from labelleak.distributed.backend import make_executor

    return make_executor(
        cfg.backend,
        address=cfg.ray_address,
        workers=cfg.workers,
        worker_cpus=cfg.worker_cpus,
        worker_gpus=cfg.worker_gpus,
    )
