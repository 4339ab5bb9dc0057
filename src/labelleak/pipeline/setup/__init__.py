"""Audit setup by target kind: everything the attacks need, ending as the same :class:`AuditSetup`.

- :mod:`~labelleak.pipeline.setup.trained`: a model labelleak trains (dataset -> split -> target and shadow model);
- :mod:`~labelleak.pipeline.setup.own`: the auditor's model file, or a label oracle built in Python;
- :mod:`~labelleak.pipeline.setup.remote`: a target behind a URL (labelleak, v2) or a REST spec;
- :mod:`~labelleak.pipeline.setup.common`: the setup itself and the candidate layout the last two share.
"""

from __future__ import annotations

from labelleak.data.cache import DatasetCache
from labelleak.logs import get_logger
from labelleak.pipeline.config import AuditConfig
from labelleak.pipeline.setup.common import AuditSetup, OwnData
from labelleak.pipeline.setup.own import prepare_model, prepare_oracle, target_from_config, target_from_options
from labelleak.pipeline.setup.remote import prepare_remote
from labelleak.pipeline.setup.trained import prepare_local

log = get_logger(__name__)


def prepare(cfg: AuditConfig, datasets: DatasetCache | None = None) -> AuditSetup:
    """The setup for ``cfg``: a remote target (``target`` URL or a REST spec), a model file (``model``), or a model
    labelleak trains (reading its dataset through ``datasets`` when given).

    Only a target labelleak trains has a known defense, so ``non_adaptive`` means nothing for the others: the
    adversary's models are then always plain, and a note says so."""
    if cfg.non_adaptive and (cfg.is_remote or cfg.model):
        log.warning("non_adaptive: ignored, the defense of a target labelleak did not train is unknown")
    if cfg.is_remote:
        return prepare_remote(cfg)
    if cfg.model:
        return prepare_model(cfg)
    return prepare_local(cfg, datasets)


__all__ = [
    "AuditSetup",
    "OwnData",
    "prepare",
    "prepare_local",
    "prepare_model",
    "prepare_oracle",
    "prepare_remote",
    "target_from_config",
    "target_from_options",
]
