"""Orchestration: setup, the audit loop, checkpoints, defend, reproduce, repeats. No attack math lives here.

The names below are imported on first use, so that reading a configuration (and so the command line's options)
does not import the whole pipeline. The front door ``labelleak.audit`` is :func:`labelleak.pipeline.api.audit`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labelleak.pipeline.api import AuditResults
    from labelleak.pipeline.audit import run_audit
    from labelleak.pipeline.config import AuditConfig, load_config, make_config

_HOME = {
    "AuditConfig": "config",
    "load_config": "config",
    "make_config": "config",
    "AuditResults": "api",
    "run_audit": "audit",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"labelleak.pipeline.{_HOME[name]}"), name)
    raise AttributeError(f"module 'labelleak.pipeline' has no attribute {name!r}")


__all__ = ["AuditConfig", "AuditResults", "load_config", "make_config", "run_audit"]
