"""Defense specifications such as ``l2=5e-4``, ``dropout=0.5``, ``dp=8``, ``l2=5e-4+augment`` or
``dp=8+public=10000`` (DP-SGD fine-tuning of a model pre-trained on 10,000 public samples), parsed into what they
change: training settings, the model spec, the served outputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from labelleak._extras import has_module, missing_extra
from labelleak.defenses.registry import BY_NAME, DEFENSE_NAMES, OUTPUT_KINDS, Defense
from labelleak.defenses.training import augment_policy
from labelleak.errors import InvalidInputError


@dataclass(frozen=True)
class OutputDefense:
    """An output-time defense (a kind of :data:`labelleak.defenses.registry.OUTPUT_KINDS`) at a strength; ``apply``
    is what the serving side does to the probabilities, and keeps their argmax."""

    kind: str = "none"
    strength: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in OUTPUT_KINDS:
            choices = ", ".join(OUTPUT_KINDS[:-1]) + f" or {OUTPUT_KINDS[-1]}"
            raise InvalidInputError(f"output defense: expected {choices}, got {self.kind!r}")
        check = BY_NAME[self.kind].check if self.kind != "none" else None
        problem = check(self.strength) if check is not None else None
        if problem is not None:
            raise InvalidInputError(f"{self.kind}: {problem}")

    def apply(self, p: torch.Tensor) -> torch.Tensor:
        """Defended probabilities (N, C) with the same argmax as ``p``."""
        if self.kind == "none":
            return p
        transform = BY_NAME[self.kind].transform
        assert transform is not None  # every output entry of the registry carries one
        return transform(p, self.strength, self.seed)


@dataclass
class DefensePlan:
    """What a defense specification changes: training settings, the model spec, the served outputs."""

    train: dict[str, Any] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)
    output: OutputDefense = field(default_factory=OutputDefense)
    label_noise: float = 0.0  # sigma of query-time label randomisation (oracle/smoothed.py); 0: off
    public: int = 0  # samples of public pre-training before the target's own (defended) training; 0: none


def _value(entry: Defense, raw: str | None) -> Any:
    if raw is None:
        return entry.default
    if isinstance(entry.default, str):
        if raw not in entry.choices:
            raise InvalidInputError(
                f"defense {entry.name!r}: unknown policy {raw!r}; choose from {', '.join(entry.choices)}"
            )
        return raw
    try:
        return int(raw) if isinstance(entry.default, int) else float(raw)
    except ValueError:
        raise InvalidInputError(f"defense {entry.name!r}: expected a number, got {raw!r}") from None


def _place(plan: DefensePlan, entry: Defense, value: Any, seed: int) -> None:
    if entry.sets == "train":
        problem = entry.check(value) if entry.check is not None else None
        if problem is not None:
            raise InvalidInputError(f"defense {entry.name!r}: {problem}")
        plan.train[entry.key] = value
    elif entry.sets == "spec":
        plan.spec[entry.key] = value
    elif entry.sets == "label":
        if not value >= 0:
            raise InvalidInputError(f"defense {entry.name!r}: expected a non-negative noise scale, got {value}")
        plan.label_noise = float(value)
    elif entry.sets == "public":
        if value < 1:
            raise InvalidInputError(f"defense 'public': expected a positive number of samples, got {value}")
        plan.public = value
    else:
        if plan.output.kind != "none":
            others = ", ".join(OUTPUT_KINDS[1:])
            raise InvalidInputError(f"only one output defense ({others}) at a time")
        plan.output = OutputDefense(entry.key, float(value), seed)


def parse_defense(text: str, *, seed: int = 0) -> DefensePlan:
    """Parse ``name[=value](+name[=value])*``; ``none`` is no defense."""
    plan = DefensePlan()
    text = text.strip()
    if text in ("", "none"):
        return plan
    for part in text.split("+"):
        name, _, raw = part.strip().partition("=")
        if name not in BY_NAME:
            raise InvalidInputError(f"unknown defense {name!r}; choose from {', '.join(DEFENSE_NAMES)}")
        _place(plan, BY_NAME[name], _value(BY_NAME[name], raw or None), seed)
    if "dp_epsilon" in plan.train or "dp_noise_multiplier" in plan.train:
        if not has_module("opacus"):  # fail before any model is trained, not when the DP target's turn comes
            raise missing_extra("dp", f"defense {text!r} (DP-SGD)")
        plan.spec["groupnorm"] = True  # DP-SGD needs per-sample gradients: no BatchNorm
        if "dp_max_grad_norm" in plan.train or "lr" in plan.train:
            plan.train["dp_tune"] = "off"  # a clipping norm or rate given by hand is used as given, not tuned
    elif "lr" in plan.train:
        raise InvalidInputError(f"defense {text!r}: dp-lr sets DP-SGD's learning rate and needs dp= or dp-noise=")
    return plan


def check_defense_for_data(plan: DefensePlan, input_shape: tuple[int, ...]) -> None:
    """Refuse, before any training, a defense that cannot suit samples of ``input_shape`` (e.g. flips on digits)."""
    augment_policy(str(plan.train.get("augment", "none")), tuple(input_shape))
