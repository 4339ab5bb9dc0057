"""Optional dependency groups: one place that turns a missing package into a message naming the extra to install.

The core (torch, numpy, scipy, scikit-learn, safetensors, pyyaml, typer, rich) runs a label-only audit; serving,
remote targets, DP-SGD, ONNX models, figures and reports each need an extra (see ``pyproject.toml``).
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from labelleak.errors import MissingExtraError


def missing_extra(extra: str, feature: str) -> MissingExtraError:
    """The error for ``feature`` when the packages of ``extra`` are not installed."""
    return MissingExtraError(f"{feature} needs the optional '{extra}' dependencies: pip install 'labelleak[{extra}]'")


def has_module(name: str) -> bool:
    """Whether ``name`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing_extra(extra, feature) from exc
