"""Trained models on disk: safetensors weights plus a JSON config, keyed by a hash of everything that made them.

Loading never unpickles: weights come from safetensors and the config from JSON. :func:`train_or_load` is the
cache in front of training: the same data, rows, architecture and settings give the same key, and the model
trained once is loaded from then on.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from labelleak.errors import DataFileError
from labelleak.models.architectures import ModelSpec, build_model
from labelleak.models.settings import TrainSettings
from labelleak.models.training import accuracy, default_device, init_model, train_with_report

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


@dataclass
class TrainedModel:
    """A model trained (or loaded) by :func:`train_or_load`, with its accuracies and where it is stored."""

    model: nn.Module
    spec: ModelSpec
    train_accuracy: float
    test_accuracy: float
    path: Path
    cached: bool
    report: dict[str, Any] = field(default_factory=dict)
    trained_rows: int = 0  # rows the optimiser trained on: all of train_idx (validation rows come from elsewhere)


def _indices_hash(idx: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(idx, dtype=np.int64).tobytes()).hexdigest()[:16]


def train_or_load(
    store: ModelStore,
    x: np.ndarray,
    y: np.ndarray,
    fingerprint: str,
    spec: ModelSpec,
    settings: TrainSettings,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    *,
    role: str,
    progress: bool,
    init: TrainedModel | None = None,
    validation_idx: np.ndarray | None = None,
) -> TrainedModel:
    """Load the model trained on ``train_idx`` with these settings from ``store``, or train and save it; with
    ``init``, training starts from that model's weights (its cache key joins this model's).

    ``fingerprint`` names the data ``x, y`` (a dataset's fingerprint); ``validation_idx``: the held-out rows of
    early stopping and adversarial regularisation (part of the cache key when given), so that the optimiser trains
    on every row of ``train_idx``.
    """
    if init is not None:
        settings = replace(settings, init=init.path.name)
    held = {} if validation_idx is None else {"validation": _indices_hash(validation_idx)}
    key = model_key(
        dataset=fingerprint, train=_indices_hash(train_idx), spec=spec.to_dict(), settings=settings.to_dict(), **held
    )
    hit = store.get(key)
    if hit is not None:
        model, cached, report = hit[0], True, dict(hit[2].get("report", {}))
    else:
        model = (
            copy.deepcopy(init.model).train()
            if init is not None
            else init_model(lambda: build_model(spec), settings.seed)
        )
        model, rep = train_with_report(
            model,
            x[train_idx],
            y[train_idx],
            settings,
            n_classes=spec.n_classes,
            description=f"training {role} ({spec.arch})",
            progress=progress,
            validation=None if validation_idx is None else (x[validation_idx], y[validation_idx]),
        )
        cached, report = False, dict(vars(rep))
    trained_rows = int(report.get("trained_rows", len(train_idx)))  # models cached before it was reported: all
    assert trained_rows == len(train_idx), (role, trained_rows, len(train_idx))  # accuracy below is on those rows
    model.to(default_device())  # a GPU when there is one, whether the model was trained now or loaded
    trained = TrainedModel(
        model,
        spec,
        accuracy(model, x[train_idx], y[train_idx]),
        accuracy(model, x[test_idx], y[test_idx]),
        store.path(key),
        cached,
        report,
        trained_rows,
    )
    if not cached:
        store.put(
            key,
            model,
            spec,
            {
                "role": role,
                "train_accuracy": trained.train_accuracy,
                "test_accuracy": trained.test_accuracy,
                "settings": settings.to_dict(),
                "report": report,
            },
        )
    return trained
