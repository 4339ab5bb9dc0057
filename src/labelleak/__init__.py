"""labelleak: measure membership leakage of classifiers that expose only predicted labels."""

import logging
from typing import TYPE_CHECKING, Any

from labelleak._version import __version__

# A library logs and leaves the output to the application (the CLI configures handlers in labelleak.logs).
logging.getLogger("labelleak").addHandler(logging.NullHandler())

if TYPE_CHECKING:  # the real function and its signature, for type checkers and IDEs
    from labelleak.pipeline.api import AuditResults, audit


def __getattr__(name: str) -> Any:
    """``labelleak.audit`` and ``labelleak.AuditResults`` are imported on first use, so ``import labelleak``
    stays fast; the attribute is the function itself, with its full signature."""
    if name in ("audit", "AuditResults"):
        from labelleak.pipeline import api

        return getattr(api, name)
    raise AttributeError(f"module 'labelleak' has no attribute {name!r}")


__all__ = ["AuditResults", "__version__", "audit"]
