"""The paper's CNN family (CNN3..CNN11) and an MLP, built from short config lists.

In a CNN config each number is Conv3x3(padding 1) -> BatchNorm -> ReLU with that many channels, and ``"M"`` is
MaxPool2d(2); then adaptive average pooling to 1x1, Linear(-> 256) -> ReLU -> Linear(-> classes).
``width`` multiplies every channel count so the same architecture runs at CPU scale.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from labelleak.errors import InvalidInputError, UnknownNameError

CNN_CONFIGS: dict[str, list[int | str]] = {
    "cnn2": [32, "M", 64, "M"],  # not in the paper: for small images such as the 8x8 digits
    "cnn3": [64, "M", 64, "M", 128, "M", 512, "M"],
    "cnn4": [64, "M", 128, "M", 128, "M", 512, "M"],
    "cnn5": [64, "M", 128, "M", 256, "M", 512, "M"],
    "cnn6": [64, "M", 128, "M", 512, "M", 512, "M"],
    "cnn7": [64, "M", 256, "M", 512, "M", 512, "M"],
    "cnn8": [64, "M", 128, 256, "M", 512, "M", 512, "M"],
    "cnn9": [64, 64, "M", 128, 256, "M", 512, "M", 512, "M"],
    "cnn10": [64, 128, "M", 128, 256, "M", 512, "M", 512, "M"],
    "cnn11": [64, 128, "M", 256, 256, "M", 512, "M", 512, "M"],
}
ARCHITECTURES = (*CNN_CONFIGS, "mlp")


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model: saved as JSON beside its weights."""

    arch: str
    input_shape: tuple[int, ...]
    n_classes: int
    width: float = 1.0
    hidden: tuple[int, ...] = field(default=(256, 256))
    dropout: float = 0.0  # before each hidden-to-output linear layer (a training-time defense)
    groupnorm: bool = False  # GroupNorm instead of BatchNorm (DP-SGD needs per-sample gradients)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_shape"], d["hidden"] = list(self.input_shape), list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        try:
            return cls(
                arch=str(d["arch"]),
                input_shape=tuple(int(v) for v in d["input_shape"]),
                n_classes=int(d["n_classes"]),
                width=float(d.get("width", 1.0)),
                hidden=tuple(int(v) for v in d.get("hidden", (256, 256))),
                dropout=float(d.get("dropout", 0.0)),
                groupnorm=bool(d.get("groupnorm", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"model config: malformed ({exc!r})") from None


class CNN(nn.Module):
    """A VGG-style CNN from a config list (see the module docstring)."""

    def __init__(
        self,
        config: list[int | str],
        in_channels: int,
        n_classes: int,
        width: float = 1.0,
        dropout: float = 0.0,
        groupnorm: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                out = max(1, int(round(int(item) * width)))
                norm = nn.GroupNorm(math.gcd(out, 8), out) if groupnorm else nn.BatchNorm2d(out)
                layers += [nn.Conv2d(channels, out, 3, padding=1), norm, nn.ReLU(inplace=True)]
                channels = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(channels, 256), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(256, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class MLP(nn.Module):
    """Flatten, then Linear -> ReLU per hidden size, then Linear(-> classes)."""

    def __init__(
        self,
        n_inputs: int,
        n_classes: int,
        hidden: tuple[int, ...] = (256, 256),
        width: float = 1.0,
        dropout: float = 0.0,
    ):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        size = n_inputs
        for h in hidden:
            out = max(1, int(round(h * width)))
            layers += [nn.Linear(size, out), nn.ReLU(inplace=True)] + ([nn.Dropout(dropout)] if dropout else [])
            size = out
        layers.append(nn.Linear(size, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_model(spec: ModelSpec) -> nn.Module:
    """Build an untrained model from ``spec``; checks that the input is large enough for the architecture."""
    if spec.arch not in ARCHITECTURES:
        raise UnknownNameError(f"unknown architecture {spec.arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    if spec.width <= 0:
        raise InvalidInputError(f"width: expected a positive multiplier, got {spec.width}")
    if not 0.0 <= spec.dropout < 1.0:
        raise InvalidInputError(f"dropout: expected a rate in [0, 1), got {spec.dropout}")
    if spec.n_classes < 2:
        raise InvalidInputError(f"n_classes: expected at least 2, got {spec.n_classes}")
    if spec.arch == "mlp":
        n_inputs = 1
        for s in spec.input_shape:
            n_inputs *= s
        return MLP(n_inputs, spec.n_classes, spec.hidden, spec.width, spec.dropout)
    # the advice names the architectures, not an option: the same message serves --arch, --set arch=, a YAML key
    # and ModelSpec in Python
    if len(spec.input_shape) != 3:
        raise InvalidInputError(
            f"{spec.arch} needs image input (C, H, W), got shape {spec.input_shape}; mlp is the architecture for it"
        )
    config = CNN_CONFIGS[spec.arch]
    n_pool = config.count("M")
    c, h, w = spec.input_shape
    if min(h, w) < 2**n_pool:
        fits = [a for a, cfg in CNN_CONFIGS.items() if min(h, w) >= 2 ** cfg.count("M")] + ["mlp"]
        raise InvalidInputError(
            f"{spec.arch} has {n_pool} pooling layers and needs images of at least {2**n_pool}x{2**n_pool}, "
            f"got {h}x{w}; architectures that fit: {', '.join(fits)}"
        )
    return CNN(config, c, spec.n_classes, spec.width, spec.dropout, spec.groupnorm)
