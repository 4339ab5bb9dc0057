"""Declared preprocessing: what a model file expects between labelleak's natural input space and its own input.

Attacks search in the natural space (``bounds``, channels first for images); the oracle normalises each channel
with the declared ``mean`` / ``std`` and reorders the axes for models exported channels-last (Keras, TF), so the
model sees exactly the input it was trained on. Nothing is guessed from the model or the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from labelleak.errors import InvalidInputError

Layout = Literal["nchw", "nhwc"]
LAYOUTS: tuple[str, ...] = ("nchw", "nhwc")


@dataclass(frozen=True)
class Preprocessing:
    """``(x - mean) / std`` per channel (axis 1 of a (N, C, H, W) batch, or per feature of (N, D)), then layout.

    ``mean`` and ``std`` hold one value per channel, or a single value for all of them; ``layout="nhwc"`` hands
    the model (N, H, W, C).
    """

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    layout: Layout = "nchw"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise InvalidInputError(f"layout: expected {' or '.join(LAYOUTS)}, got {self.layout!r}")
        if self.std is not None and any(not s > 0 for s in self.std):
            raise InvalidInputError(f"std: expected positive values, got {list(self.std)}")

    @property
    def is_identity(self) -> bool:
        return self.mean is None and self.std is None and self.layout == "nchw"

    def check(self, input_shape: tuple[int, ...]) -> None:
        """Raise when the declared values do not fit samples of ``input_shape`` (natural space, channels first)."""
        channels = input_shape[0] if input_shape else 1
        for key, values in (("mean", self.mean), ("std", self.std)):
            if values is not None and len(values) not in (1, channels):
                raise InvalidInputError(
                    f"{key}: expected 1 or {channels} values (one per channel of input shape {input_shape}), "
                    f"got {len(values)}"
                )
        if self.layout == "nhwc" and len(input_shape) != 3:
            raise InvalidInputError(f"layout nhwc: needs image input (C, H, W), got input shape {input_shape}")

    def model_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one sample as the model receives it."""
        if self.layout == "nhwc":
            c, h, w = input_shape
            return (h, w, c)
        return tuple(input_shape)

    def _per_channel(self, values: tuple[float, ...], x: torch.Tensor) -> torch.Tensor:
        v = torch.tensor(values, dtype=x.dtype)
        return v.reshape(1, -1, *([1] * (x.dim() - 2))) if x.dim() > 1 else v

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The model's input for a natural-space batch ``x`` of shape (N, *input_shape)."""
        if self.mean is not None:
            x = x - self._per_channel(self.mean, x)
        if self.std is not None:
            x = x / self._per_channel(self.std, x)
        if self.layout == "nhwc":
            x = x.permute(0, 2, 3, 1)
        return x.contiguous()

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": list(self.mean) if self.mean is not None else None,
            "std": list(self.std) if self.std is not None else None,
            "layout": self.layout,
        }
