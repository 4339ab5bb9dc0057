"""SELENA (Tang et al., USENIX Security 2022): Split-AI, then Self-Distillation; the distilled model is the target.

* **Split-AI.** K sub-models, each trained on a random part of the training set chosen so that every training
  sample is left out of exactly L of them (the paper: K = 25, L = 10; labelleak defaults to K = 4 and
  L = round(0.4 K) for CPU scale). A query that is a training sample is answered by the average of the L sub-models
  that never saw it, any other query by the average of all K, so a member is answered as a non-member would be.
* **Self-Distillation.** Split-AI's answers on the training set itself are soft labels, and one final model of
  the same architecture is trained on them; only that model is served (Split-AI's adaptive inference alone can be
  attacked by an adversary who queries near-copies of a training sample, which the distilled model answers
  without any lookup).

Training several models belongs here, above the defense mechanics (:mod:`labelleak.defenses`), which only
describe the defense; :func:`labelleak.models.training.train_with_report` calls :func:`train_selena` when
``TrainSettings.selena_k`` is set.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from labelleak.models.settings import TrainReport, TrainSettings
from labelleak.models.training import _train, init_model, predict_logits
from labelleak.rng import content_keys


def selena_split(n: int, k: int, left_out: int, seed: int) -> torch.Tensor:
    """Which sub-models leave out which samples: a bool (n, k) matrix with exactly ``left_out`` True per row,
    chosen uniformly at random per sample (the ranks of seeded uniform numbers)."""
    gen = torch.Generator().manual_seed(seed)
    ranks = torch.rand(n, k, generator=gen).argsort(1).argsort(1)
    return ranks < left_out


class SplitAI:
    """Split-AI's adaptive inference: sub-models ``models`` (K) and which of them left out each training row.

    ``train_x`` (N, ...) are the training rows and ``excluded`` (N, K) the split of :func:`selena_split`. A query
    row equal to a training row (matched by content key, then checked value for value) is averaged over the
    sub-models that excluded it; any other row over all of them.
    """

    def __init__(self, models: Sequence[nn.Module], train_x: torch.Tensor, excluded: torch.Tensor) -> None:
        assert excluded.shape == (len(train_x), len(models))
        self.models = list(models)
        self.train_x = train_x.to(torch.float32)
        self.excluded = excluded
        keys = content_keys(self.train_x)
        self._keys, self._order = keys.sort()

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """(N, K) float weights: a training row's exclusions, ones for any other row."""
        x = x.to(torch.float32)
        keys = content_keys(x)
        pos = torch.searchsorted(self._keys, keys).clamp_max(len(self._keys) - 1)
        row = self._order[pos]
        same = (self._keys[pos] == keys) & (self.train_x[row] == x).reshape(len(x), -1).all(1)
        mask = torch.ones(len(x), len(self.models), dtype=torch.bool)
        mask[same] = self.excluded[row[same]]
        return mask.float()

    def predict_proba(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Probabilities (N, C): each row averaged over the sub-models its weights allow."""
        xt = torch.as_tensor(x, dtype=torch.float32)
        probs = torch.stack([torch.softmax(predict_logits(m, xt), 1) for m in self.models])  # (K, N, C)
        w = self.weights(xt)  # (N, K)
        return torch.einsum("nk,knc->nc", w, probs) / w.sum(1, keepdim=True)


def _reset(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every layer re-initialised from the torch RNG."""
    sub = copy.deepcopy(model)
    for module in sub.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()
    return sub


def _fresh_copy(model: nn.Module, seed: int) -> nn.Module:
    """A new sub-model of the same kind, initialised from ``seed`` (``init_model``: the caller's global RNG is left
    as it was)."""
    return init_model(lambda: _reset(model), seed)


def train_split_ai(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    settings: TrainSettings,
    n_classes: int,
    device: torch.device,
    description: str = "training",
    progress: bool = True,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
) -> SplitAI:
    """Split-AI: ``settings.selena_k`` sub-models like ``model``, sub-model j trained with seed ``seed + 1 + j``
    on the rows it does not exclude, with the rest of ``settings`` (its other defenses included)."""
    k = settings.selena_k
    excluded = selena_split(len(x), k, settings.selena_excluded(), settings.seed)
    plain = replace(settings, selena_k=0, selena_l=None)
    subs = []
    for j in range(k):
        seed = settings.seed + 1 + j
        rows = (~excluded[:, j]).numpy()
        sub, _ = _train(
            _fresh_copy(model, seed), x[rows], y[rows], replace(plain, seed=seed), n_classes, device,
            f"{description} (Split-AI {j + 1}/{k})", progress, validation,
        )  # fmt: skip
        subs.append(sub.eval())
    return SplitAI(subs, torch.as_tensor(x, dtype=torch.float32), excluded)


def train_selena(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    settings: TrainSettings,
    n_classes: int,
    device: torch.device,
    description: str = "training",
    progress: bool = True,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[nn.Module, TrainReport]:
    """SELENA: Split-AI on (x, y), then ``model`` trained on Split-AI's soft labels of x (self-distillation)."""
    split = train_split_ai(model, x, y, settings, n_classes, device, description, progress, validation)
    soft = split.predict_proba(x)
    plain = replace(settings, selena_k=0, selena_l=None)
    return _train(
        model, x, y, plain, n_classes, device, f"{description} (self-distillation)", progress, validation,
        soft_targets=soft,
    )  # fmt: skip
