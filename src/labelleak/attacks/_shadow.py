"""Shadow/reference model training shared by the attacks that train their own models."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from labelleak.models import ModelSpec, TrainSettings, build_model, init_model, predict_logits, train_model


@dataclass(frozen=True)
class ShadowRecipe:
    """Architecture and training settings of an adversary's model (the paper uses the target's recipe)."""

    arch: str = "mlp"
    width: float = 1.0
    hidden: tuple[int, ...] = (256, 256)
    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 128
    lr_schedule: str = "constant"

    def train(self, x: np.ndarray, y: np.ndarray, *, input_shape: tuple[int, ...], n_classes: int, seed: int,
              description: str = "shadow", progress: bool = False) -> nn.Module:
        spec = ModelSpec(self.arch, tuple(input_shape), n_classes, self.width, tuple(self.hidden))
        settings = TrainSettings(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, seed=seed,
                                 lr_schedule=self.lr_schedule)
        model = init_model(lambda: build_model(spec), seed)
        return train_model(model, x, y, settings, n_classes=n_classes, description=description, progress=progress)


def probabilities(model: nn.Module, x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Softmax probabilities (float64) of ``model`` on ``x``."""
    return F.softmax(predict_logits(model, x).double(), dim=1)
