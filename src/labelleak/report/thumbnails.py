"""The inputs of the most exposed members, so the report can show them: a thumbnail for an image, the first
feature values for a tabular row.

At audit time only the listed members' inputs are kept (``exposed_inputs.npz``: ``sample_index`` and ``x``), so
``labelleak report`` rebuilds the page from the folder alone. A folder written before that file existed is read
from the dataset file its provenance names, only when that file's SHA-256 still matches (or from the built-in
digits); otherwise the page says the inputs are not there.
"""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np

INPUTS = "exposed_inputs.npz"
TOP = 10  # members listed on the page; the same number the report shows
NOT_DRAWN = ("own-files", "own-arrays", "remote")  # candidates the auditor brought: their index is no dataset row


def is_image(shape: tuple[int, ...]) -> bool:
    """A drawable (C, H, W) input: one or three channels, at least 8x8."""
    return len(shape) == 3 and shape[0] in (1, 3) and shape[1] >= 8 and shape[2] >= 8


def top_members(rows: list[dict[str, Any]], top: int = TOP) -> list[int]:
    """The ``sample_index`` of the ``top`` most exposed members (``rows`` are most exposed first)."""
    return [int(r["sample_index"]) for r in rows if r["is_member"]][:top]


def write_exposed_inputs(
    out: str | Path, rows: list[dict[str, Any]], sample_index: np.ndarray, inputs: np.ndarray, top: int = TOP
) -> None:
    """``exposed_inputs.npz``: the inputs of the ``top`` most exposed members, keyed by their sample index."""
    wanted = np.asarray(top_members(rows, top), dtype=np.int64)
    position = {int(s): i for i, s in enumerate(np.asarray(sample_index))}
    picked = np.asarray(inputs)[[position[int(s)] for s in wanted]]
    np.savez_compressed(Path(out) / INPUTS, sample_index=wanted, x=picked.astype(np.float32))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _from_dataset(results: dict[str, Any], wanted: list[int]) -> tuple[np.ndarray, str] | None:
    """The wanted rows of the dataset labelleak drew the candidates from (their sample index is the row), read
    only when the file is the one the audit hashed."""
    from labelleak.data import DATASETS, load_dataset

    if (results.get("dataset") or {}).get("name") in NOT_DRAWN:
        return None
    name = (results.get("config") or {}).get("dataset")
    recorded = ((results.get("provenance") or {}).get("sha256") or {}).get("data")
    if name not in DATASETS or (name != "digits" and not recorded):
        return None
    path = None
    if recorded:
        path = Path(recorded["path"])
        if not (path.is_file() and _sha256(path) == recorded["sha256"]):
            return None
    ds = load_dataset(name, path)
    idx = np.asarray(wanted, dtype=np.int64)
    if ds.kind == "image":  # what features() gives, for these rows only
        x = ds.x[idx].astype(np.float32).transpose(0, 3, 1, 2) / np.float32(ds.value_max)
    else:
        x = ds.features()[idx]
    return x, f"{path or name} (its SHA-256 matches the audit's)"


def read_exposed_inputs(
    folder: Path, results: dict[str, Any], wanted: list[int]
) -> tuple[dict[int, np.ndarray], str] | None:
    """``{sample_index: input}`` for the wanted members and where they were read, or None when not at hand."""
    path = Path(folder) / INPUTS
    if path.is_file():
        with np.load(path) as data:
            found = {int(s): x for s, x in zip(data["sample_index"], data["x"])}
        return {s: found[s] for s in wanted if s in found}, INPUTS
    if not wanted:
        return None
    read = _from_dataset(results, wanted)
    if read is None:
        return None
    x, source = read
    return dict(zip(wanted, x)), source


def thumbnail(x: np.ndarray) -> str:
    """A (C, H, W) image as a PNG data URI, each image scaled to its own range (the model's input scaling is
    not known to the report)."""
    import matplotlib.image

    img = np.asarray(x, dtype=np.float64).transpose(1, 2, 0)
    lo, hi = float(img.min()), float(img.max())
    img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    buf = io.BytesIO()
    if img.shape[2] == 1:
        matplotlib.image.imsave(buf, img[:, :, 0], cmap="gray", vmin=0.0, vmax=1.0, format="png")
    else:
        matplotlib.image.imsave(buf, img, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def feature_text(x: np.ndarray, first: int = 6) -> str:
    """The first ``first`` values of an input, then an ellipsis and how many there are."""
    flat = np.asarray(x).ravel()
    shown = ", ".join(f"{v:.3g}" for v in flat[:first])
    return shown if flat.size <= first else f"{shown}, ... ({flat.size} values)"


def describe_inputs(x: dict[int, np.ndarray]) -> dict[int, dict[str, str]]:
    """What the page shows of each input: ``{"thumb": data URI, "shape": "3x32x32"}`` or ``{"values": text}``."""
    shown = {}
    for s, v in x.items():
        if is_image(v.shape):
            shown[s] = {"thumb": thumbnail(v), "shape": "x".join(map(str, v.shape))}
        else:
            shown[s] = {"values": feature_text(v)}
    return shown
