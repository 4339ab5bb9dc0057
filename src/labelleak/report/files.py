"""Results on disk: ``results.json`` and ``scores.csv`` (raw per-candidate scores, always saved)."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from labelleak.errors import InvalidInputError


def jsonable(obj: Any) -> Any:
    """Convert NumPy values and non-finite floats into JSON-safe Python values (NaN/inf become null)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def read_json_object(path: Path) -> dict[str, Any]:
    """A results file's JSON object; an unreadable, malformed or non-object file is one ``report:`` error."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"report: cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"report: {path} does not hold a JSON object")
    return data


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as indented JSON atomically."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(jsonable(data), indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def write_table_csv(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Write flat rows as CSV, one column per key in order of first appearance (missing cells empty)."""
    path = Path(path)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    return path


SCORE_COLUMNS = ("attack", "sample_index", "is_member", "score", "queries", "status")


def write_scores_csv(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Write per-candidate rows (attack, sample index, is_member, score, queries, status) as CSV.

    Scores are written with ``repr`` precision so that the same run gives a byte-identical file.
    """
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(SCORE_COLUMNS)
        for r in rows:
            writer.writerow(
                [
                    r["attack"],
                    int(r["sample_index"]),
                    int(r["is_member"]),
                    repr(float(r["score"])),
                    int(r["queries"]),
                    r["status"],
                ]
            )
    os.replace(tmp, path)
    return path


def write_distances_csv(
    path: str | Path, sample_index: np.ndarray, is_member: np.ndarray, distances: dict[str, dict[str, np.ndarray]]
) -> Path:
    """Per-candidate perturbation sizes (L0, L1, L2, Linf) of each boundary attack; empty where none was found."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["attack", "sample_index", "is_member", "l0", "l1", "l2", "linf"])
        for name, d in distances.items():
            for i in range(len(sample_index)):
                vals = ["" if np.isnan(d[k][i]) else repr(float(d[k][i])) for k in ("l0", "l1", "l2", "linf")]
                writer.writerow([name, int(sample_index[i]), int(is_member[i]), *vals])
    os.replace(tmp, path)
    return path
