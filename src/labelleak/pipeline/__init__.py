"""Orchestration: audit (and later reproduce, defend). No attack math lives here."""

from labelleak.pipeline.api import AuditResults, audit
from labelleak.pipeline.audit import run_audit
from labelleak.pipeline.config import AuditConfig, load_config, make_config

__all__ = ["AuditConfig", "AuditResults", "audit", "load_config", "make_config", "run_audit"]
