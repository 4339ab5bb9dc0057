"""Running a batch of audits, the defense points of ``labelleak defend`` (a strength sweep is a list of them, see
:mod:`labelleak.defenses.sweep`).

:func:`run_audits` is the one place that runs a batch of independent audits, each into its own checkpointed folder
(a parallel backend trains their targets first). Models come from the model cache, and with ``resume`` a point
whose ``results.json`` has the same run identity (:func:`labelleak.pipeline.checkpoint.run_identity`) is read back
instead of audited again.
"""

from __future__ import annotations

from typing import Any

from labelleak.data.cache import DatasetCache
from labelleak.logs import get_logger
from labelleak.pipeline.audit import run_audit
from labelleak.pipeline.checkpoint import finished_audit
from labelleak.pipeline.config import AuditConfig
from labelleak.pipeline.parallel import executor_for, train_in_parallel

log = get_logger(__name__)


def finished_results(cfg: AuditConfig) -> dict[str, Any] | None:
    """The results of a finished audit in ``cfg.out`` with the same run identity as ``cfg``, or ``None``."""
    return finished_audit(cfg.out, cfg.to_dict())


def run_audits(
    configs: list[AuditConfig], *, resume: bool = False, datasets: DatasetCache | None = None
) -> list[dict[str, Any]]:
    """Run a batch of independent audits and return their results in order: THE call site for an executor.

    With ``--backend ray`` every target still to audit is trained first, in parallel, as Ray tasks sharing the model
    cache; the audits then load them. Each audit writes into its own ``cfg.out`` (checkpointed). With ``resume``,
    finished audits are read back and interrupted ones continue from their checkpoint.
    """
    if not configs:
        return []
    datasets = datasets or DatasetCache()
    todo = [cfg for cfg in configs if not (resume and finished_results(cfg))]
    with executor_for(configs[0]) as executor:
        train_in_parallel(todo, executor)
    results = []
    for i, cfg in enumerate(configs, 1):
        done = finished_results(cfg) if resume else None
        log.info("[%d/%d] %s%s", i, len(configs), cfg.out, ": finished earlier" if done else "")
        results.append(done if done is not None else run_audit(cfg.replace(resume=resume), datasets=datasets))
    return results
