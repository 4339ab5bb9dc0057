"""Reusable checkers for public entry points: they raise clear errors and return clean values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from labelleak.errors import DataFileError, InvalidInputError


def as_float_array(x: Any, *, name: str, ndim_min: int = 2) -> np.ndarray:
    """Return ``x`` as a finite float32 array with at least ``ndim_min`` dimensions."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise InvalidInputError(f"{name}: cannot be read as an array ({exc})") from None
    if arr.dtype.kind not in "biuf":
        raise InvalidInputError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if arr.ndim < ndim_min:
        raise InvalidInputError(
            f"{name}: expected at least {ndim_min} dimensions (samples first), got shape {arr.shape}"
        )
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).reshape(len(arr), -1).any(axis=1).sum())
        raise InvalidInputError(f"{name}: contains NaN or infinite values in {bad} sample(s)")
    return arr


def as_labels(y: Any, *, name: str, n_classes: int | None = None, length: int | None = None) -> np.ndarray:
    """Return ``y`` as a 1-D int64 array, checking the class range and the length."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise InvalidInputError(f"{name}: expected a 1-D label array, got shape {arr.shape}")
    if arr.size and arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or not np.all(arr == np.round(arr)):
            raise InvalidInputError(f"{name}: labels must be whole numbers, got non-integer values")
    elif arr.size and arr.dtype.kind not in "iu":
        raise InvalidInputError(f"{name}: expected integer labels, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if length is not None and len(arr) != length:
        raise InvalidInputError(f"{name}: expected {length} labels (one per sample), got {len(arr)}")
    if arr.size and arr.min() < 0:
        raise InvalidInputError(f"{name}: labels must be >= 0, got {int(arr.min())}")
    if n_classes is not None and arr.size and arr.max() >= n_classes:
        raise InvalidInputError(
            f"{name}: label {int(arr.max())} is out of range for {n_classes} classes (0..{n_classes - 1})"
        )
    return arr


def check_in_bounds(x: np.ndarray, bounds: tuple[float, float], *, name: str, tol: float = 1e-5) -> None:
    """Raise if any value of ``x`` lies outside ``bounds`` (with a small tolerance)."""
    lo, hi = bounds
    if x.size and (x.min() < lo - tol or x.max() > hi + tol):
        raise InvalidInputError(
            f"{name}: values must lie in [{lo}, {hi}], got range [{float(x.min()):.4g}, {float(x.max()):.4g}]"
        )


def read_utf8(path: Path, what: str) -> str:
    """The text of ``path``, or one DataFileError naming ``what`` when it is not UTF-8 (a binary file, Latin-1)."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{what} {path} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
