"""Training and evaluation of classifiers (the paper: Adam, lr 1e-3, batch 128)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from labelleak.errors import InvalidInputError
from labelleak.progress import progress_bar


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings; part of the key under which a trained model is cached."""

    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 128
    weight_decay: float = 0.0
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def default_device() -> torch.device:
    """CUDA when present, otherwise the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _check_training_data(x: np.ndarray, y: np.ndarray, n_classes: int) -> None:
    if len(x) == 0:
        raise InvalidInputError("training data: no samples")
    if len(x) != len(y):
        raise InvalidInputError(f"training data: {len(x)} samples but {len(y)} labels")
    if y.min() < 0 or y.max() >= n_classes:
        raise InvalidInputError(f"training labels must lie in 0..{n_classes - 1}, got {y.min()}..{y.max()}")


def train_model(model: nn.Module, x: np.ndarray, y: np.ndarray, settings: TrainSettings, *, n_classes: int,
                description: str = "training", progress: bool = True,
                device: torch.device | None = None) -> nn.Module:
    """Train ``model`` in place with Adam and cross-entropy; returns it in eval mode on the CPU.

    Shuffling uses a generator seeded from ``settings.seed``; the global RNG is not used.
    """
    _check_training_data(x, y, n_classes)
    if settings.epochs < 1 or settings.batch_size < 1 or settings.lr <= 0:
        raise InvalidInputError(f"train settings: epochs, batch_size and lr must be positive, got {settings}")
    device = device or default_device()
    model.to(device).train()
    xt = torch.as_tensor(x, dtype=torch.float32, device=device)
    yt = torch.as_tensor(y, dtype=torch.int64, device=device)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(settings.seed)
    with progress_bar(description, settings.epochs, enabled=progress) as bar:
        for _epoch in range(settings.epochs):
            order = torch.randperm(len(xt), generator=gen).to(device)
            total = 0.0
            for start in range(0, len(order), settings.batch_size):
                idx = order[start:start + settings.batch_size]
                if len(idx) < 2 and len(order) > 1:
                    continue  # BatchNorm cannot train on a batch of one
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(xt[idx]), yt[idx])
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            if bar is not None:
                bar.update(bar.task_ids[0], advance=1, info=f"loss {total / len(order):.4f}")
    return model.eval().cpu()


def init_model(build, seed: int) -> nn.Module:
    """Call ``build()`` with the torch RNG seeded by ``seed``, without changing the caller's global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


@torch.no_grad()
def predict_logits(model: nn.Module, x: np.ndarray | torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    """Logits of ``model`` (in eval mode) for ``x``, in batches; returns a CPU float32 tensor (N, classes)."""
    model.eval()
    device = next(model.parameters()).device
    xt = torch.as_tensor(x, dtype=torch.float32)
    outs = [model(xt[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(xt), batch_size)]
    return torch.cat(outs) if outs else torch.empty(0)


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``."""
    if len(x) == 0:
        return float("nan")
    return float((predict_logits(model, x).argmax(1).numpy() == y).mean())
