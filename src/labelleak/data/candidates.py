"""Labelled samples from the auditor's own files, in the natural input space of a given target.

Members, non-members and the shadow pool of an audit on the auditor's model come as an ``.npz`` (keys ``x``,
``y``; ``x`` already of shape (N, *input_shape) within the bounds), an image folder (one sub-folder per class;
pixels 0..255 mapped linearly onto the bounds, channels first) or a CSV (header row, integer label in the last
column, raw feature values). Rows keep the order of the file (image folders: classes, then file names, sorted),
so a row number is a stable sample id.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from labelleak.data.loaders import load_image_folder, load_tabular
from labelleak.errors import DataFileError

KINDS = "an .npz with keys x and y, an image folder (one sub-folder per class) or a CSV (label last)"


def _from_npz(p: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(p, allow_pickle=False) as z:
            if not {"x", "y"} <= set(z.files):
                raise DataFileError(f"{p}: expected keys x and y, found {sorted(z.files)}")
            return np.asarray(z["x"]), np.asarray(z["y"])
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DataFileError(f"corrupt or unreadable .npz file {p}: {exc}") from None


def _from_folder(p: Path, shape: tuple[int, ...], bounds: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    if len(shape) != 3 or shape[0] not in (1, 3) or shape[1] != shape[2]:
        raise DataFileError(f"{p}: an image folder needs a square image input shape (1 or 3, H, H), got {shape}")
    ds = load_image_folder(p, image_size=shape[1])
    x = ds.x.astype(np.float32).transpose(0, 3, 1, 2)  # (N, 3, H, W), RGB
    if shape[0] == 1:
        x = x.mean(axis=1, keepdims=True)
    lo, hi = bounds
    return lo + x / np.float32(255.0) * np.float32(hi - lo), ds.y


def _from_csv(p: Path) -> tuple[np.ndarray, np.ndarray]:
    ds = load_tabular(p)
    try:
        codes = np.asarray([int(name) for name in ds.class_names], dtype=np.int64)
    except ValueError:
        raise DataFileError(
            f"{p}: the label column (last) must hold integer class ids 0..K-1, got {ds.class_names[:5]}"
        ) from None
    return ds.x, codes[ds.y]


def load_labelled(
    path: str | Path, what: str, shape: tuple[int, ...], bounds: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """``(x float32 (N, *shape), y int64 (N,))`` from ``path``, checked against the target's shape and bounds."""
    p = Path(path)
    if not p.exists():
        raise DataFileError(f"{what} file not found: {p}")
    if p.is_dir():
        x, y = _from_folder(p, shape, bounds)
    elif p.suffix.lower() == ".csv":
        x, y = _from_csv(p)
    elif p.suffix.lower() == ".npz":
        x, y = _from_npz(p)
    else:
        raise DataFileError(f"{what} file {p}: expected {KINDS}")
    if x.dtype.kind not in "biuf":
        raise DataFileError(f"{p}: samples must be numeric, got dtype {x.dtype}")
    if tuple(x.shape[1:]) != tuple(shape):
        raise DataFileError(f"{p}: samples must have shape (N, {', '.join(map(str, shape))}), got {x.shape}")
    y = np.asarray(y).reshape(-1)
    if len(x) != len(y) or y.dtype.kind not in "iu":
        raise DataFileError(f"{p}: need one integer label per sample ({len(x)} samples, {len(y)} labels {y.dtype})")
    if len(x) == 0:
        raise DataFileError(f"{p}: holds no samples")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise DataFileError(f"{p}: samples contain NaN or infinite values")
    lo, hi = bounds
    if x.min() < lo - 1e-5 or x.max() > hi + 1e-5:
        raise DataFileError(
            f"{p}: values lie in [{x.min():.4g}, {x.max():.4g}], outside the bounds [{lo:g}, {hi:g}]; "
            "declare the model's input range with --bounds LOW,HIGH"
        )
    return x, y.astype(np.int64)
