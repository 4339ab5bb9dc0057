"""The candidate files of a labelleak split, in the format ``audit --members/--nonmembers/--shadow`` reads: one
``.npz`` each with ``x`` (N, *input shape, within the bounds) and integer ``y``, plus ``split.json`` saying where
they came from and the commands that serve the target and audit it remotely."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from labelleak.report.files import write_json


def write_split_files(
    out: str | Path,
    *,
    members: tuple[np.ndarray, np.ndarray],
    nonmembers: tuple[np.ndarray, np.ndarray],
    shadow: tuple[np.ndarray, np.ndarray],
    about: dict[str, Any],
) -> dict[str, str]:
    """Write ``members.npz``, ``nonmembers.npz``, ``shadow.npz`` and ``split.json`` into ``out``; their paths."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, (x, y) in (("members", members), ("nonmembers", nonmembers), ("shadow", shadow)):
        path = folder / f"{name}.npz"
        tmp = folder / f"{name}.tmp.npz"
        np.savez(tmp, x=np.ascontiguousarray(x, dtype=np.float32), y=np.asarray(y, dtype=np.int64))
        tmp.replace(path)
        paths[name] = str(path)
    write_json(folder / "split.json", {**about, "files": paths})
    return paths
