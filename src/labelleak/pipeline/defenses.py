"""Parsing defense specifications such as ``l2=5e-4``, ``dropout=0.5``, ``dp=8``, ``l2=5e-4+augment`` or
``dp=8+public=10000`` (DP-SGD fine-tuning of a model pre-trained on 10,000 public samples)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from labelleak._extras import has_module, missing_extra
from labelleak.errors import InvalidInputError
from labelleak.models.defenses import AUGMENT_POLICIES, augment_policy
from labelleak.oracle.defenses import OutputDefense, OutputKind

# name -> (where it goes, key, default value when given without "=value")
_DEFENSES: dict[str, tuple[str, str, Any]] = {
    "l2": ("train", "weight_decay", 5e-4),
    "l1": ("train", "l1", 1e-5),
    "label-smoothing": ("train", "label_smoothing", 0.1),
    "augment": ("train", "augment", "auto"),  # or augment=flips-crops|shifts|none
    "early-stopping": ("train", "early_stopping", 5),
    "dp": ("train", "dp_epsilon", 8.0),
    "dp-noise": ("train", "dp_noise_multiplier", 1.0),
    "dp-clip": ("train", "dp_max_grad_norm", 1.0),
    "advreg": ("train", "advreg", 1.0),
    "relaxloss": ("train", "relaxloss", 0.5),
    "dropout": ("spec", "dropout", 0.5),
    "memguard": ("output", "memguard", 1.0),
    "top1": ("output", "top1", 0.0),
    "round": ("output", "round", 2.0),
    # not a defense by itself: pre-train on this many public samples first (the pool outside the four parts)
    "public": ("public", "public", 10000),
}
DEFENSE_NAMES = ("none", *_DEFENSES)


@dataclass
class DefensePlan:
    """What a defense specification changes: training settings, the model spec, the served outputs."""

    train: dict[str, Any] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)
    output: OutputDefense = field(default_factory=OutputDefense)
    public: int = 0  # samples of public pre-training before the target's own (defended) training; 0: none


def _value(name: str, raw: str | None, default: Any) -> Any:
    if raw is None:
        return default
    if isinstance(default, bool):
        raise InvalidInputError(f"defense {name!r} takes no value")
    if isinstance(default, str):
        if raw not in AUGMENT_POLICIES:
            choices = ", ".join(AUGMENT_POLICIES)
            raise InvalidInputError(f"defense {name!r}: unknown policy {raw!r}; choose from {choices}")
        return raw
    try:
        return int(raw) if isinstance(default, int) else float(raw)
    except ValueError:
        raise InvalidInputError(f"defense {name!r}: expected a number, got {raw!r}") from None


def parse_defense(text: str, *, seed: int = 0) -> DefensePlan:
    """Parse ``name[=value](+name[=value])*``; ``none`` is no defense."""
    plan = DefensePlan()
    text = text.strip()
    if text in ("", "none"):
        return plan
    for part in text.split("+"):
        name, _, raw = part.strip().partition("=")
        if name not in _DEFENSES:
            raise InvalidInputError(f"unknown defense {name!r}; choose from {', '.join(DEFENSE_NAMES)}")
        where, key, default = _DEFENSES[name]
        value = _value(name, raw or None, default)
        if where == "train":
            plan.train[key] = value
        elif where == "spec":
            plan.spec[key] = value
        elif where == "public":
            if value < 1:
                raise InvalidInputError(f"defense 'public': expected a positive number of samples, got {value}")
            plan.public = value
        else:
            if plan.output.kind != "none":
                raise InvalidInputError("only one output defense (memguard, top1, round) at a time")
            # the table's output entries name OutputKind values; OutputDefense checks the kind again
            plan.output = OutputDefense(cast(OutputKind, key), float(value), seed)
    if "dp_epsilon" in plan.train or "dp_noise_multiplier" in plan.train:
        if not has_module("opacus"):  # fail before any model is trained, not when the DP target's turn comes
            raise missing_extra("dp", f"defense {text!r} (DP-SGD)")
        plan.spec["groupnorm"] = True  # DP-SGD needs per-sample gradients: no BatchNorm
        if "dp_max_grad_norm" in plan.train:
            plan.train["dp_tune"] = False  # a clipping norm given by hand is used as given, with the audit's lr
    return plan


def check_defense_for_data(plan: DefensePlan, input_shape: tuple[int, ...]) -> None:
    """Refuse, before any training, a defense that cannot suit samples of ``input_shape`` (e.g. flips on digits)."""
    augment_policy(str(plan.train.get("augment", "none")), tuple(input_shape))
