"""The Dataset container and its conversion to model-ready float arrays."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from labelleak.errors import InvalidInputError

DataKind = Literal["image", "tabular"]


@dataclass(frozen=True)
class Dataset:
    """A labelled pool of samples as stored: images (N, H, W, C) in ``[0, value_max]``, or tabular (N, D).

    ``features()`` gives what models and oracles see: images as float32 (N, C, H, W) in [0, 1]; tabular data
    min-max scaled to [0, 1] per column over the pool, so that every oracle has the bounds (0, 1).
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    kind: DataKind = "image"
    value_max: float = 255.0
    source: str = ""
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise InvalidInputError(f"{self.name}: {len(self.x)} samples but {len(self.y)} labels")
        if self.kind == "image" and self.x.ndim != 4:
            raise InvalidInputError(f"{self.name}: images must have shape (N, H, W, C), got {self.x.shape}")
        if self.kind == "tabular" and self.x.ndim != 2:
            raise InvalidInputError(f"{self.name}: tabular data must have shape (N, D), got {self.x.shape}")
        if len(self.y) and (self.y.min() < 0 or self.y.max() >= len(self.class_names)):
            raise InvalidInputError(
                f"{self.name}: labels must lie in 0..{len(self.class_names) - 1}, "
                f"got {int(self.y.min())}..{int(self.y.max())}"
            )

    def __len__(self) -> int:
        return len(self.y)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one model-ready sample: (C, H, W) or (D,)."""
        if self.kind == "image":
            _, h, w, c = self.x.shape
            return (c, h, w)
        return (self.x.shape[1],)

    def features(self) -> np.ndarray:
        """Model-ready float32 array in [0, 1], computed once and cached."""
        if "features" not in self._cache:
            if self.kind == "image":
                feats = self.x.astype(np.float32).transpose(0, 3, 1, 2) / np.float32(self.value_max)
            else:
                x = self.x.astype(np.float64)
                lo, hi = x.min(axis=0), x.max(axis=0)
                span = np.where(hi > lo, hi - lo, 1.0)
                feats = ((x - lo) / span).astype(np.float32)
            self._cache["features"] = np.ascontiguousarray(np.clip(feats, 0.0, 1.0))
        return self._cache["features"]

    def fingerprint(self) -> str:
        """A short content hash (used to key cached models)."""
        import hashlib

        if "fingerprint" not in self._cache:
            h = hashlib.sha256()
            h.update(np.ascontiguousarray(self.x).tobytes())
            h.update(np.ascontiguousarray(self.y).tobytes())
            self._cache["fingerprint"] = h.hexdigest()[:16]
        return self._cache["fingerprint"]
