"""Serving a trained model as a label-only HTTP API."""

from labelleak.serve.app import FaultConfig, ServeLimits, create_app

__all__ = ["FaultConfig", "ServeLimits", "create_app"]
