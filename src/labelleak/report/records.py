"""``records.csv`` and ``records.jsonl``: one row per candidate, so an auditor can name the exposed records.

Each row holds the candidate's stable id (``sample_index``), whether it is a member, every attack's score and
p-value against the non-members (:mod:`labelleak.exposure`), its smallest p-value, and the attacks and FPRs at
which it is flagged (``attack@fpr``). Rows are sorted by that smallest p-value, most exposed first.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from labelleak.exposure import exposure_summary, p_values, resolvable_fprs
from labelleak.report.files import jsonable
from labelleak.report.thumbnails import TOP, describe_inputs, read_exposed_inputs


def record_rows(
    sample_index: np.ndarray, is_member: np.ndarray, scores: dict[str, np.ndarray]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows (most exposed first) and the summary that results.json keeps under ``exposed``."""
    m = np.asarray(is_member, dtype=bool)
    pvals = {name: p_values(m, s) for name, s in scores.items()}
    fprs = resolvable_fprs(int((~m).sum()))
    best = np.min(np.stack(list(pvals.values())), axis=0) if pvals else np.ones(len(m))
    rows = []
    for i in np.argsort(best, kind="stable"):
        row: dict[str, Any] = {"sample_index": int(sample_index[i]), "is_member": bool(m[i])}
        for name in scores:
            row[f"{name}:score"] = float(scores[name][i])
            row[f"{name}:p_value"] = float(pvals[name][i])
        row["min_p_value"] = float(best[i])
        row["flagged"] = ";".join(f"{name}@{x:g}" for name in scores for x in fprs if pvals[name][i] <= x)
        rows.append(row)
    return rows, exposure_summary(m, pvals)


def write_records(out: str | Path, rows: list[dict[str, Any]]) -> None:
    """``records.csv`` (scores in ``repr`` precision) and its JSON Lines twin ``records.jsonl``."""
    out = Path(out)
    keys = list(rows[0]) if rows else ["sample_index", "is_member"]
    with (out / "records.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows({k: repr(v) if isinstance(v, float) else v for k, v in r.items()} for r in rows)
    with (out / "records.jsonl").open("w") as fh:
        for r in rows:
            fh.write(json.dumps(jsonable(r)) + "\n")


def _rows_from_arrays(results: dict[str, Any], folder: Path) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """The rows and summary computed from ``arrays.npz``, for a folder written before records existed."""
    path = Path(folder) / "arrays.npz"
    if not path.is_file():
        return None
    with np.load(path) as a:
        scores = {n: a[f"{n}/scores"] for n in results.get("attacks", {}) if f"{n}/scores" in a.files}
        if not scores or "sample_index" not in a.files:
            return None
        return record_rows(a["sample_index"], a["is_member"], scores)


def _top_from_file(path: Path, top: int) -> list[dict[str, Any]]:
    members: list[dict[str, Any]] = []
    if path.is_file():
        with path.open() as fh:
            for line in fh:
                row = json.loads(line)
                if row.get("is_member"):
                    members.append(row)
                if len(members) == top:
                    break
    return members


def exposed_context(results: dict[str, Any], folder: Path, top: int = TOP) -> dict[str, Any] | None:
    """What the report shows: the summary in results.json and the ``top`` most exposed members of
    ``records.jsonl``, each with its input where the folder (or the audit's dataset file) has it. A folder written
    before records existed is counted from ``arrays.npz`` as the page is built (``from_arrays``); None without it."""
    summary, from_arrays = results.get("exposed"), False
    if summary:
        members = _top_from_file(Path(folder) / "records.jsonl", top)
    else:
        computed = _rows_from_arrays(results, folder)
        if computed is None:
            return None
        rows, summary = computed
        members, from_arrays = [r for r in rows if r["is_member"]][:top], True
    read = read_exposed_inputs(Path(folder), results, [int(r["sample_index"]) for r in members])
    shown = describe_inputs(read[0]) if read else {}
    members = [{**r, "input": shown.get(int(r["sample_index"]))} for r in members]
    return {**summary, "top": members, "from_arrays": from_arrays, "inputs_from": read[1] if read else None}
