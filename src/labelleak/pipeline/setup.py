"""Audit setup: dataset -> four-way split -> target and shadow models (trained once, then loaded from cache)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from labelleak.attacks.base import ShadowData
from labelleak.data import Dataset, Split, SplitSizes, four_way_split, load_dataset
from labelleak.models import (ModelSpec, ModelStore, TrainSettings, accuracy, build_model, init_model, model_key,
                              train_model)
from labelleak.oracle import TorchOracle, TorchScoreOracle
from labelleak.pipeline.config import AuditConfig


@dataclass
class TrainedModel:
    model: nn.Module
    spec: ModelSpec
    train_accuracy: float
    test_accuracy: float
    path: Path
    cached: bool


@dataclass
class AuditSetup:
    """Everything the attacks need, built from a config."""

    dataset: Dataset
    split: Split
    target: TrainedModel
    shadow: TrainedModel  # trained by the adversary on shadow-train with true labels (for calibration)
    oracle: TorchOracle
    shadow_oracle: TorchOracle
    score_oracle: TorchScoreOracle  # the stronger threat model, for score-based baselines only
    shadow_score_oracle: TorchScoreOracle
    members: np.ndarray  # pool indices of member candidates
    nonmembers: np.ndarray
    shadow_data: ShadowData

    def candidates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(pool indices, x, y, is_member) of the evaluation candidates, members first."""
        idx = np.concatenate([self.members, self.nonmembers])
        x = self.dataset.features()[idx]
        is_member = np.r_[np.ones(len(self.members), bool), np.zeros(len(self.nonmembers), bool)]
        return idx, x, self.dataset.y[idx], is_member


def resolve_arch(cfg: AuditConfig, dataset: Dataset) -> str:
    """``auto`` means mlp for tabular data and small images, cnn7 for images of 16x16 and more."""
    if cfg.arch != "auto":
        return cfg.arch
    return "cnn7" if dataset.kind == "image" and min(dataset.x.shape[1:3]) >= 16 else "mlp"


def split_sizes(cfg: AuditConfig) -> SplitSizes:
    shadow = cfg.shadow_size or cfg.train_size
    return SplitSizes(cfg.train_size, cfg.train_size, shadow, shadow)


def _indices_hash(idx: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(idx, dtype=np.int64).tobytes()).hexdigest()[:16]


def train_or_load(store: ModelStore, dataset: Dataset, spec: ModelSpec, settings: TrainSettings,
                  train_idx: np.ndarray, test_idx: np.ndarray, *, role: str, progress: bool) -> TrainedModel:
    """Load the model trained on ``train_idx`` with these settings from ``store``, or train and save it."""
    key = model_key(dataset=dataset.fingerprint(), train=_indices_hash(train_idx), spec=spec.to_dict(),
                    settings=settings.to_dict())
    x, y = dataset.features(), dataset.y
    hit = store.get(key)
    if hit is not None:
        model, cached = hit[0], True
    else:
        model = init_model(lambda: build_model(spec), settings.seed)
        model = train_model(model, x[train_idx], y[train_idx], settings, n_classes=dataset.n_classes,
                            description=f"training {role} ({spec.arch})", progress=progress)
        cached = False
    trained = TrainedModel(model, spec, accuracy(model, x[train_idx], y[train_idx]),
                           accuracy(model, x[test_idx], y[test_idx]), store.path(key), cached)
    if not cached:
        store.put(key, model, spec, {"role": role, "dataset": dataset.name, "train_accuracy": trained.train_accuracy,
                                     "test_accuracy": trained.test_accuracy, "settings": settings.to_dict()})
    return trained


def prepare(cfg: AuditConfig) -> AuditSetup:
    """Load data, split it, and get the target and the adversary's shadow model."""
    dataset = load_dataset(cfg.dataset, cfg.data)
    split = four_way_split(len(dataset), split_sizes(cfg), seed=cfg.seed)
    spec = ModelSpec(resolve_arch(cfg, dataset), dataset.input_shape, dataset.n_classes, cfg.width)
    build_model(spec)  # fail early on an architecture that cannot take this input
    settings = TrainSettings(epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, seed=cfg.seed)
    store = ModelStore(cfg.cache_dir)
    target = train_or_load(store, dataset, spec, settings, split.target_train, split.target_test, role="target",
                           progress=cfg.progress)
    shadow = train_or_load(store, dataset, spec, settings, split.shadow_train, split.shadow_test, role="shadow",
                           progress=cfg.progress)
    n_eval = cfg.eval_size or cfg.train_size
    x, y = dataset.features(), dataset.y
    shadow_data = ShadowData(x[split.shadow_train], y[split.shadow_train], x[split.shadow_test], y[split.shadow_test])
    def oracle(kind: type[TorchOracle], m: TrainedModel) -> TorchOracle:
        return kind(m.model, input_shape=dataset.input_shape, n_classes=dataset.n_classes)

    return AuditSetup(dataset, split, target, shadow, oracle(TorchOracle, target), oracle(TorchOracle, shadow),
                      oracle(TorchScoreOracle, target), oracle(TorchScoreOracle, shadow),
                      split.target_train[:n_eval], split.target_test[:n_eval], shadow_data)
