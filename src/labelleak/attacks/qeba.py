"""QEBA with spatial-resize subspace sampling (Li, Xu, Zhang, Yang & Li, CVPR 2020, "QEBA-S").

QEBA keeps HopSkipJump's loop and changes only where gradient-estimation directions come from: they are drawn
at a reduced resolution (H / ratio, W / ratio) and upsampled bilinearly to the image size, which concentrates
the query budget on the low-frequency subspace where image classifiers' boundaries mostly vary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from labelleak.attacks.hsja import HopSkipJump, Norm
from labelleak.errors import InvalidInputError


class QEBA(HopSkipJump):
    """HopSkipJump with directions from an upsampled low-resolution Gaussian (``ratio`` = downsampling factor)."""

    def __init__(
        self,
        *,
        norm: Norm = "l2",
        max_iter: int = 50,
        max_eval: int = 10_000,
        init_eval: int = 100,
        init_size: int = 100,
        gamma: float = 1.0,
        seed: int = 0,
        ratio: int = 4,
        chunk_elements: int = 1 << 23,
    ) -> None:
        super().__init__(
            norm=norm,
            max_iter=max_iter,
            max_eval=max_eval,
            init_eval=init_eval,
            init_size=init_size,
            gamma=gamma,
            seed=seed,
            chunk_elements=chunk_elements,
        )
        if isinstance(ratio, bool) or not isinstance(ratio, int) or ratio < 1:
            raise InvalidInputError(f"ratio: expected a positive integer, got {ratio!r}")
        self.ratio = ratio

    def check_shape(self, shape: tuple[int, ...]) -> None:
        if len(shape) != 3:
            raise InvalidInputError(f"QEBA needs image inputs (C, H, W), got shape {shape}; use HopSkipJump")

    def directions(self, step: int, count: int, shape: tuple[int, ...]) -> torch.Tensor:
        c, h, w = shape
        lh, lw = max(1, h // self.ratio), max(1, w // self.ratio)
        z = torch.randn(count, c, lh, lw, generator=self._generator(step))
        u = F.interpolate(z, size=(h, w), mode="bilinear", align_corners=False).reshape(count, c * h * w)
        return u / u.norm(dim=1, keepdim=True).clamp_min(1e-12)
