"""labelleak: measure membership leakage of classifiers that expose only predicted labels."""

import logging
from typing import Any

__version__ = "0.1.0"

# A library logs and leaves the output to the application (the CLI configures handlers in labelleak.logs).
logging.getLogger("labelleak").addHandler(logging.NullHandler())


def audit(*args: Any, **kwargs: Any) -> dict[str, Any]:  # thin lazy wrapper, so `import labelleak` stays fast
    """Run a membership audit; see :func:`labelleak.pipeline.audit.audit`."""
    from labelleak.pipeline.audit import audit as _audit

    return _audit(*args, **kwargs)


__all__ = ["__version__", "audit"]
