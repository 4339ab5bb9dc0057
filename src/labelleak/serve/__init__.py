"""Serving a trained model as a label-only HTTP API."""

from labelleak._extras import missing_extra

try:
    import fastapi  # noqa: F401  (checked here so that the whole package names its extra)
except ImportError as exc:
    raise missing_extra("serve", "labelleak serve") from exc

from labelleak.serve.app import FaultConfig, ServeLimits, create_app

__all__ = ["FaultConfig", "ServeLimits", "create_app"]
