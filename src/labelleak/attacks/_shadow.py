"""Shadow/reference model training shared by the attacks that train their own models."""

from __future__ import annotations

import copy
import functools
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from labelleak.defenses import OutputDefense, parse_defense
from labelleak.errors import InvalidInputError
from labelleak.models import (
    ModelSpec,
    ModelStore,
    TrainSettings,
    build_model,
    init_model,
    load_model,
    model_key,
    predict_logits,
    train_model,
)
from labelleak.oracle.base import LabelOracle
from labelleak.oracle.defended import serve


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

    ``defense`` is the target's defense as the adaptive adversary knows it (a specification such as ``l2=5e-4`` or
    ``dp=8+round=1``, :func:`labelleak.defenses.parse_defense`): its training-time part (settings, model spec) trains
    every model of this recipe, so the cache keys them apart, and :meth:`reveal` applies its output-time part to
    what those models answer. ``init`` (the public pre-trained model of a ``public=N`` target, which the adversary
    has as the owner does) starts every model of this recipe whose architecture is its own.
    ``none`` (the default, and ``--non-adaptive``) trains the plain recipe.
    """

    arch: str = "mlp"
    width: float = 1.0
    hidden: tuple[int, ...] = (256, 256)
    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 128
    lr_schedule: str = "constant"
    cache_dir: str | None = None
    defense: str = "none"
    init: str | None = None  # a stored model (folder) the recipe's models start from: the public pre-trained one

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
        spec, settings = self.defended(spec, settings)
        start = self._start(spec)
        if start is not None:  # the start joins the cache key, as the target's does
            settings = replace(settings, init=Path(self.init or "").name)
        if self.cache_dir is None:
            return _fit(x, y, spec, settings, description, progress, start)
        store = ModelStore(self.cache_dir)
        key = model_key(role="adversary", x=_digest(x), y=_digest(y), spec=spec.to_dict(), settings=settings.to_dict())
        hit = store.get(key)
        if hit is not None:
            return hit[0]
        model = _fit(x, y, spec, settings, description, progress, start)
        store.put(key, model, spec, {"role": f"adversary: {description}", "settings": settings.to_dict()})
        return model

    def _start(self, spec: ModelSpec) -> nn.Module | None:
        """The stored model ``init`` names when it has this ``spec`` (the adversary's models then fine-tune the
        public model, as the target did); ``None`` without ``init`` or for another architecture or input."""
        if self.init is None:
            return None
        model, stored = _stored_model(self.init)
        return model if stored.to_dict() == spec.to_dict() else None

    def defended(self, spec: ModelSpec, settings: TrainSettings) -> tuple[ModelSpec, TrainSettings]:
        """``spec`` and ``settings`` with the training-time part of ``defense`` (unchanged for ``none``)."""
        plan = parse_defense(self.defense, seed=settings.seed)
        return replace(spec, **plan.spec), replace(settings, **plan.train)

    def output_defense(self, seed: int) -> OutputDefense | None:
        """The output-time part of ``defense`` (its noise seeded by ``seed``, not the target's key), or ``None``."""
        output = parse_defense(self.defense, seed=seed).output
        return None if output.kind == "none" else output

    def modifies_answers(self) -> bool:
        """Do this recipe's models answer other than their own softmax (an output defense, HAMP's scores, label
        randomisation)? When not, an attack may read their logits directly."""
        plan = parse_defense(self.defense)
        return bool(plan.label_noise) or "hamp" in plan.train or plan.output.kind != "none"

    def randomises_labels(self) -> bool:
        """Does the target answer labels through label randomisation (so must this recipe's models)?"""
        return bool(parse_defense(self.defense).label_noise)

    def label_oracle(
        self,
        model: nn.Module,
        *,
        input_shape: tuple[int, ...],
        n_classes: int,
        seed: int,
        bounds: tuple[float, float] = (0.0, 1.0),
    ) -> LabelOracle:
        """``model``'s labels as the target serves its own: through label randomisation, its votes keyed by
        ``seed``, when the defense has it; else the model's argmax."""
        plan = parse_defense(self.defense, seed=seed)
        return serve(model, plan, input_shape=input_shape, n_classes=n_classes, seed=seed, bounds=bounds).labels

    def labeller(self, model: nn.Module, *, n_classes: int, seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """``points -> labels`` of ``model`` served like the target (points of any input shape)."""
        if not self.randomises_labels():
            return lambda q: predict_logits(model, q).argmax(1)

        def labels(q: torch.Tensor) -> torch.Tensor:
            served = self.label_oracle(model, input_shape=tuple(q.shape[1:]), n_classes=n_classes, seed=seed)
            return served.predict_labels(q)

        return labels

    def reveal(self, model: nn.Module, x: np.ndarray | torch.Tensor, seed: int) -> torch.Tensor:
        """What ``model`` answers on ``x`` when it serves like the target: its probabilities (float64) through the
        output-time part of ``defense`` (HAMP's answers of random samples, the vote shares of label
        randomisation), seeded by ``seed``."""
        plan = parse_defense(self.defense, seed=seed)
        p = probabilities(model, x)
        if not (plan.label_noise or "hamp" in plan.train) or len(p) == 0:
            return p if plan.output.kind == "none" else plan.output.apply(p)
        xt = torch.as_tensor(x, dtype=torch.float32)
        served = serve(model, plan, input_shape=tuple(xt.shape[1:]), n_classes=p.shape[1], seed=seed)
        return served.scores.predict_proba(xt).double()  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=4)
def _stored_model(folder: str) -> tuple[nn.Module, ModelSpec]:
    """A stored model read once for every model of a recipe that starts from it (the store is content-keyed, so a
    folder never changes); callers copy it before training."""
    model, spec, _ = load_model(folder)
    return model, spec


def _fit(
    x: np.ndarray,
    y: np.ndarray,
    spec: ModelSpec,
    settings: TrainSettings,
    description: str,
    progress: bool,
    start: nn.Module | None = None,
) -> nn.Module:
    model = copy.deepcopy(start).train() if start is not None else init_model(lambda: build_model(spec), settings.seed)
    return train_model(model, x, y, settings, n_classes=spec.n_classes, description=description, progress=progress)


def probabilities(model: nn.Module, x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Softmax probabilities (float64) of ``model`` on ``x``."""
    return F.softmax(predict_logits(model, x).double(), dim=1)
