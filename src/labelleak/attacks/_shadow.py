"""Shadow/reference model training shared by the attacks that train their own models."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from labelleak.errors import InvalidInputError
from labelleak.models import (
    ModelSpec,
    ModelStore,
    TrainSettings,
    build_model,
    init_model,
    model_key,
    predict_logits,
    train_model,
)


def _digest(a: np.ndarray | torch.Tensor) -> str:
    """SHA-256 of an array's bytes, shape and dtype: the training data part of a cached model's key."""
    arr = np.ascontiguousarray(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a)
    return hashlib.sha256(f"{arr.shape}{arr.dtype}".encode() + arr.tobytes()).hexdigest()


@dataclass(frozen=True)
class ShadowRecipe:
    """Architecture and training settings of an adversary's model (the paper uses the target's recipe).

    Every attack that trains models takes one as ``shadow_recipe``; an audit hands each the recipe of its own
    training settings (see :func:`labelleak.attacks.registry.audit_params`).

    With ``cache_dir`` a model trained by this recipe on the same data with the same seed is saved there
    (safetensors) and loaded instead of trained again: a shadow model that does not depend on the target (ML-Leaks,
    robustness attacks, OSLO surrogates) is trained once for every target of an experiment, and reruns train none.
    Training is seeded, so a loaded model equals the one training would give.
    """

    arch: str = "mlp"
    width: float = 1.0
    hidden: tuple[int, ...] = (256, 256)
    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 128
    lr_schedule: str = "constant"
    cache_dir: str | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ShadowRecipe:
        """A recipe from plain data (a config file, command-line values); unknown keys are refused."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise InvalidInputError(f"shadow_recipe: unknown key(s) {unknown}; valid keys are {known}")
        clean = dict(values)
        if "hidden" in clean:
            clean["hidden"] = tuple(clean["hidden"])
        return cls(**clean)

    def train(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        input_shape: tuple[int, ...],
        n_classes: int,
        seed: int,
        description: str = "shadow",
        progress: bool = False,
    ) -> nn.Module:
        spec = ModelSpec(self.arch, tuple(input_shape), n_classes, self.width, tuple(self.hidden))
        settings = TrainSettings(
            epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, seed=seed, lr_schedule=self.lr_schedule
        )
        if self.cache_dir is None:
            return _fit(x, y, spec, settings, description, progress)
        store = ModelStore(self.cache_dir)
        key = model_key(role="adversary", x=_digest(x), y=_digest(y), spec=spec.to_dict(), settings=settings.to_dict())
        hit = store.get(key)
        if hit is not None:
            return hit[0]
        model = _fit(x, y, spec, settings, description, progress)
        store.put(key, model, spec, {"role": f"adversary: {description}", "settings": settings.to_dict()})
        return model


def _fit(
    x: np.ndarray, y: np.ndarray, spec: ModelSpec, settings: TrainSettings, description: str, progress: bool
) -> nn.Module:
    model = init_model(lambda: build_model(spec), settings.seed)
    return train_model(model, x, y, settings, n_classes=spec.n_classes, description=description, progress=progress)


def probabilities(model: nn.Module, x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Softmax probabilities (float64) of ``model`` on ``x``."""
    return F.softmax(predict_logits(model, x).double(), dim=1)
