"""RandAugment (Cubuk, Zoph, Shlens & Le, CVPR-W 2020) on batches of float image tensors, written for labelleak.

Each image gets ``num_ops`` operations drawn uniformly from :data:`RANDAUGMENT_OPS`, each at the one global
``magnitude`` M (on RandAugment's usual 0..30 scale; signed operations take a random sign per image). The
transfer attack's online relabelling (Li & Zhang, CCS 2021, official code) uses it to show the target fresh
views of each shadow image at every epoch.

Deviations from the paper's (PIL) RandAugment, stated because results may differ slightly:

* works on float tensors (B, C, H, W) within ``bounds``, rescaled to [0, 1] inside; posterize and solarize act on
  that [0, 1] range as if it were 8-bit; geometric operations resample with nearest neighbours and fill with 0
  (the low bound), on normalised coordinates (a rotation of a non-square image is not exactly rigid);
* ``equalize`` is left out (a per-image histogram does not batch well); ``color`` is the identity on one-channel
  images; the magnitude ranges follow the common 31-bin parametrisation (rotate up to 30 degrees, shear up to
  0.3, translate up to 150/331 of the size, enhance factors 1 +- 0.9, posterize 8 down to 4 bits, solarize
  threshold 1 down to 0), each at ``magnitude / 30`` of its range.

No Python loop runs over samples: one masked pass per operation kind and per drawn operation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from labelleak.errors import InvalidInputError

MAX_MAGNITUDE = 30
Op = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]  # (images in [0, 1], sign (B,), level) -> images


def _gray(u: torch.Tensor) -> torch.Tensor:
    """Luma (B, 1, H, W) of RGB images; the channel itself for one-channel images."""
    if u.shape[1] != 3:
        return u.mean(1, keepdim=True)
    w = torch.tensor([0.299, 0.587, 0.114], dtype=u.dtype, device=u.device)
    return (u * w[None, :, None, None]).sum(1, keepdim=True)


def _blend(base: torch.Tensor, u: torch.Tensor, sign: torch.Tensor, level: float) -> torch.Tensor:
    """``base + factor * (u - base)`` with factor ``1 + sign * 0.9 * level`` per image (PIL's enhance)."""
    factor = (1 + sign * 0.9 * level).to(u.dtype)[:, None, None, None]
    return base + factor * (u - base)


def _brightness(u: torch.Tensor, sign: torch.Tensor, level: float) -> torch.Tensor:
    return _blend(torch.zeros_like(u), u, sign, level)


def _color(u: torch.Tensor, sign: torch.Tensor, level: float) -> torch.Tensor:
    return _blend(_gray(u).expand_as(u), u, sign, level) if u.shape[1] == 3 else u


def _contrast(u: torch.Tensor, sign: torch.Tensor, level: float) -> torch.Tensor:
    mean = _gray(u).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(mean.expand_as(u), u, sign, level)


def _sharpness(u: torch.Tensor, sign: torch.Tensor, level: float) -> torch.Tensor:
    """Blend with PIL's smoothing kernel (centre 5, neighbours 1, over 13); the border pixels stay as they are."""
    c = u.shape[1]
    kernel = torch.ones(3, 3, dtype=u.dtype, device=u.device)
    kernel[1, 1] = 5.0
    kernel = (kernel / 13).expand(c, 1, 3, 3)
    smooth = u.clone()
    smooth[:, :, 1:-1, 1:-1] = F.conv2d(u, kernel, groups=c)
    return _blend(smooth, u, sign, level)


def _posterize(u: torch.Tensor, sign: torch.Tensor, level: float) -> torch.Tensor:
    drop = int(round(4 * level))  # keep 8 - drop bits
    step = float(2**drop)
    return torch.floor(torch.floor(u * 255) / step) * step / 255


def _solarize(u: torch.Tensor, sign: torch.Tensor, level: float) -> torch.Tensor:
    return torch.where(u >= 1.0 - level, 1.0 - u, u)


def _autocontrast(u: torch.Tensor, sign: torch.Tensor, level: float) -> torch.Tensor:
    lo = u.amin(dim=(2, 3), keepdim=True)
    hi = u.amax(dim=(2, 3), keepdim=True)
    span = hi - lo
    return torch.where(span > 0, (u - lo) / torch.where(span > 0, span, 1.0), u)


def _affine(u: torch.Tensor, rows: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Resample ``u`` through per-image 2x3 matrices (output -> input, normalised coordinates), nearest, zero fill."""
    theta = torch.stack([rows[0], rows[1]], 1).to(u.dtype)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(u.shape), align_corners=False)
    return F.grid_sample(u, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _rotate(u: torch.Tensor, sign: torch.Tensor, level: float) -> torch.Tensor:
    angle = sign * 30.0 * level * torch.pi / 180
    cos, sin, zero = torch.cos(angle), torch.sin(angle), torch.zeros_like(angle)
    return _affine(u, (torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)))


def _shear(axis: int) -> Op:
    def op(u: torch.Tensor, sign: torch.Tensor, level: float) -> torch.Tensor:
        s, one, zero = sign * 0.3 * level, torch.ones_like(sign), torch.zeros_like(sign)
        if axis == 0:
            return _affine(u, (torch.stack([one, s, zero], 1), torch.stack([zero, one, zero], 1)))
        return _affine(u, (torch.stack([one, zero, zero], 1), torch.stack([s, one, zero], 1)))

    return op


def _translate(axis: int) -> Op:
    def op(u: torch.Tensor, sign: torch.Tensor, level: float) -> torch.Tensor:
        t, one, zero = sign * 2 * (150 / 331) * level, torch.ones_like(sign), torch.zeros_like(sign)
        tx, ty = (t, zero) if axis == 0 else (zero, t)  # normalised coordinates span 2 per image size
        return _affine(u, (torch.stack([one, zero, tx], 1), torch.stack([zero, one, ty], 1)))

    return op


RANDAUGMENT_OPS: dict[str, Op] = {
    "identity": lambda u, sign, level: u,
    "autocontrast": _autocontrast,
    "brightness": _brightness,
    "color": _color,
    "contrast": _contrast,
    "sharpness": _sharpness,
    "posterize": _posterize,
    "solarize": _solarize,
    "rotate": _rotate,
    "shear_x": _shear(0),
    "shear_y": _shear(1),
    "translate_x": _translate(0),
    "translate_y": _translate(1),
}


def rand_augment(
    x: torch.Tensor,
    gen: torch.Generator,
    *,
    num_ops: int = 2,
    magnitude: int = 9,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """A RandAugment view of each image of ``x`` (B, C, H, W), values within ``bounds``; same shape and bounds.

    Randomness comes from ``gen`` only, and the same amount is drawn whatever operations are picked, so one seed
    gives one sequence of views. Example::

        >>> views = rand_augment(torch.rand(4, 3, 8, 8), torch.Generator().manual_seed(0))
        >>> views.shape, bool(((views >= 0) & (views <= 1)).all())
        (torch.Size([4, 3, 8, 8]), True)
    """
    if x.dim() != 4:
        raise InvalidInputError(f"rand_augment: expected images (B, C, H, W), got shape {tuple(x.shape)}")
    if isinstance(num_ops, bool) or not isinstance(num_ops, int) or num_ops < 0:
        raise InvalidInputError(f"rand_augment: num_ops must be a non-negative integer, got {num_ops!r}")
    if isinstance(magnitude, bool) or not isinstance(magnitude, int) or not 0 <= magnitude <= MAX_MAGNITUDE:
        raise InvalidInputError(f"rand_augment: magnitude must be an integer in 0..{MAX_MAGNITUDE}, got {magnitude!r}")
    lo, hi = float(bounds[0]), float(bounds[1])
    u = (x - lo) / (hi - lo)
    level = magnitude / MAX_MAGNITUDE
    ops = list(RANDAUGMENT_OPS.values())
    for _ in range(num_ops):
        pick = torch.randint(0, len(ops), (len(u),), generator=gen)
        sign = torch.where(torch.rand(len(u), generator=gen) < 0.5, -1.0, 1.0)
        out = u.clone()
        for k, op in enumerate(ops):
            idx = torch.nonzero(pick == k).flatten()
            if len(idx):
                out[idx] = op(u[idx], sign[idx].to(u.device), level)
        u = out.clamp(0.0, 1.0)
    return u * (hi - lo) + lo
