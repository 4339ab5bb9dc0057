"""labelleak: measure membership leakage of classifiers that expose only predicted labels."""

from typing import Any

__version__ = "0.1.0"


def audit(*args: Any, **kwargs: Any) -> dict[str, Any]:  # thin lazy wrapper, so `import labelleak` stays fast
    """Run a membership audit; see :func:`labelleak.pipeline.audit.audit`."""
    from labelleak.pipeline.audit import audit as _audit

    return _audit(*args, **kwargs)


__all__ = ["__version__", "audit"]
