"""Augmented views of a candidate: more evidence from the same model, as LiRA queries augmentations.

A model trained on a sample has also learnt its flipped and slightly shifted copies (the training augmentations
do exactly that), so their boundary distances carry membership signal of their own, with noise partly
independent of the candidate's. Each view is a fixed, deterministic transform of the input (no randomness, so
the target and every reference model see the same view); the boundary distance of each is measured with the same
search and a share of the candidate's budget.

Views of a (C, H, W) image: ``flip`` (left-right), ``shift-right`` and ``shift-down`` (one pixel, the uncovered
row or column zero, as the training augmentation pads and as the combined attack's shifts are:
:func:`labelleak.attacks.robustness.translate` is the one definition). ``"auto"`` picks the flip and both shifts
for colour images (natural images, where flips are a training augmentation) and the two shifts for one-channel
ones (digits: a flipped digit is another glyph).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from labelleak.attacks.robustness import translate
from labelleak.errors import InvalidInputError


def _flip(x: torch.Tensor) -> torch.Tensor:
    return torch.flip(x, dims=[-1])


def _shift_right(x: torch.Tensor) -> torch.Tensor:
    return translate(x, 1, 0)


def _shift_down(x: torch.Tensor) -> torch.Tensor:
    return translate(x, 0, 1)


VIEWS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "flip": _flip,
    "shift-right": _shift_right,
    "shift-down": _shift_down,
}


def resolve_views(views: Sequence[str] | str, input_shape: Sequence[int]) -> tuple[str, ...]:
    """The views to measure beside the candidate itself (``"auto"`` decided for ``input_shape``); one line
    naming the problem for an unknown view or an input that is not an image."""
    if isinstance(views, str) and views != "auto":
        raise InvalidInputError(f"views: expected 'auto' or a list of {', '.join(VIEWS)}, got {views!r}")
    if not isinstance(views, str) and not views:
        return ()
    if len(input_shape) != 3:
        raise InvalidInputError(
            f"views: augmented views need (C, H, W) images, got inputs of shape {tuple(input_shape)}"
        )
    if views == "auto":
        return ("flip", "shift-right", "shift-down") if input_shape[0] == 3 else ("shift-right", "shift-down")
    unknown = [v for v in views if v not in VIEWS]
    if unknown or len(set(views)) != len(views):
        raise InvalidInputError(f"views: expected distinct names among {', '.join(VIEWS)}, got {list(views)}")
    return tuple(views)


def apply_view(name: str, x: torch.Tensor) -> torch.Tensor:
    """View ``name`` of every row of ``x`` (N, C, H, W); ``"identity"`` is the candidate itself."""
    return x if name == "identity" else VIEWS[name](x)
