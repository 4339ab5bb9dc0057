"""Trained models on disk: safetensors weights plus a JSON config, keyed by a hash of everything that made them.

Loading never unpickles: weights come from safetensors and the config from JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from labelleak.errors import DataFileError
from labelleak.models.architectures import ModelSpec, build_model

WEIGHTS, CONFIG = "model.safetensors", "config.json"


def model_key(**parts: Any) -> str:
    """A stable hash of JSON-serialisable parts (dataset fingerprint, split, seed, spec, settings)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def save_model(folder: str | Path, model: nn.Module, spec: ModelSpec, meta: dict[str, Any] | None = None) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``folder`` atomically (write, then rename).

    Safe with concurrent writers of the same key (Ray workers sharing a model cache): each writer has its own
    temporary names, and the config is renamed first, so a reader that sees the weights also sees a config.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tag = f".{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    tmp_w, tmp_c = folder / (WEIGHTS + tag), folder / (CONFIG + tag)
    try:
        save_file(state, str(tmp_w))
        tmp_c.write_text(json.dumps({"spec": spec.to_dict(), "meta": meta or {}}, indent=2, sort_keys=True))
        os.replace(tmp_c, folder / CONFIG)
        os.replace(tmp_w, folder / WEIGHTS)
    finally:
        tmp_w.unlink(missing_ok=True)
        tmp_c.unlink(missing_ok=True)
    return folder


def load_model(folder: str | Path) -> tuple[nn.Module, ModelSpec, dict[str, Any]]:
    """Rebuild a model saved by :func:`save_model`; raises ``DataFileError`` for missing or corrupt files."""
    folder = Path(folder)
    w, c = folder / WEIGHTS, folder / CONFIG
    if not w.is_file() or not c.is_file():
        raise DataFileError(f"{folder}: expected {WEIGHTS} and {CONFIG}")
    try:
        cfg = json.loads(c.read_text())
        spec = ModelSpec.from_dict(cfg["spec"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DataFileError(f"{c}: corrupt model config ({exc})") from None
    model = build_model(spec)
    try:
        state = load_file(str(w))
        model.load_state_dict(state)
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise DataFileError(f"{w}: corrupt or mismatched weights ({str(exc).splitlines()[0]})") from None
    return model.eval(), spec, dict(cfg.get("meta", {}))


class ModelStore:
    """A folder of cached models, one sub-folder per key."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key

    def get(self, key: str) -> tuple[nn.Module, ModelSpec, dict[str, Any]] | None:
        """The cached model for ``key``, or ``None``; a corrupt entry is treated as missing."""
        if not (self.path(key) / WEIGHTS).is_file():
            return None
        try:
            return load_model(self.path(key))
        except DataFileError:
            return None

    def put(self, key: str, model: nn.Module, spec: ModelSpec, meta: dict[str, Any]) -> Path:
        return save_model(self.path(key), model, spec, meta)
