"""``labelleak reproduce EXPERIMENT``: run the audits of a packaged experiment plan and summarise them.

Orchestration only: the plan (:mod:`labelleak.pipeline.plan`) says which audits to run, :func:`run_audit` runs
each one into its own folder (checkpointed, so ``--resume`` skips finished audits and continues an interrupted
one), and :mod:`labelleak.pipeline.summaries` turns their results into ``summary.{json,md}``, one CSV per table
and the figures.
"""

from __future__ import annotations

import csv
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from labelleak import __version__
from labelleak.errors import DataFileError
from labelleak.pipeline.audit import run_audit
from labelleak.pipeline.checkpoint import _VOLATILE
from labelleak.pipeline.config import AuditConfig
from labelleak.pipeline.plan import Plan, fit_to_pool, load_plan
from labelleak.pipeline.setup import DatasetCache
from labelleak.pipeline.summaries import SUMMARIES, RunRecord
from labelleak.report.files import _plain, write_json


def _same_config(a: dict[str, Any], b: dict[str, Any]) -> bool:
    strip = lambda d: {k: v for k, v in _plain(d).items() if k not in _VOLATILE}  # noqa: E731
    return strip(a) == strip(b)


def _finished_results(cfg: AuditConfig) -> dict[str, Any] | None:
    """The results of a finished audit in ``cfg.out`` with the same config, or ``None``."""
    path = Path(cfg.out) / "results.json"
    if not path.is_file() or not (Path(cfg.out) / "arrays.npz").is_file():
        return None
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return results if _same_config(results.get("config", {}), cfg.to_dict()) else None


def _load_arrays(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / "arrays.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.3f}"
    return str(value)


def markdown_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """A GitHub Markdown table of ``rows`` (floats to 3 decimals, missing values as ``-``)."""
    if not rows:
        return "(no rows)\n"
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def sizes_pivot(rows: list[dict[str, Any]]) -> str:
    """The sizes table as attack x size cells ``AUC [CI] / TPR@1%``, with the target's accuracies on top."""
    sizes = sorted({r["train_size"] for r in rows})
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    cell = {(r["attack"], r["train_size"]): r for r in rows}
    first = {s: next(r for r in rows if r["train_size"] == s) for s in sizes}
    lines = [
        "| | " + " | ".join(f"{s} members" for s in sizes) + " |",
        "|---|" + "---|" * len(sizes),
        "| target train / test acc | "
        + " | ".join(f"{_fmt(first[s]['train_accuracy'])} / {_fmt(first[s]['test_accuracy'])}" for s in sizes)
        + " |",
    ]
    for a in attacks:
        cells = []
        for s in sizes:
            r = cell.get((a, s))
            cells.append(
                "-"
                if r is None
                else f"{_fmt(r['auc'])} [{_fmt(r['auc_low'])}, {_fmt(r['auc_high'])}] / {_fmt(r['tpr@1%'])}"
            )
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _write_tables(tables: dict[str, list[dict[str, Any]]], out: Path) -> None:
    for name, rows in tables.items():
        keys = list(dict.fromkeys(k for r in rows for k in r))
        with (out / f"{name}.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(_plain(rows))


def _markdown(plan: Plan, summary: dict[str, Any], tables: dict[str, list[dict[str, Any]]], figures: list[Path]) -> str:
    parts = [f"# {plan.name} ({plan.scale} scale)\n", plan.description.strip() + "\n"]
    if plan.claim:
        parts.append(f"Paper's claim: {plan.claim.strip()}\n")
    n = len(plan.runs)
    parts.append(
        f"Dataset: {summary['dataset']}; {n} audit{'s' if n != 1 else ''}; wall time "
        f"{summary['seconds']:.0f} s on {summary['device']}.\n"
    )
    if plan.pool.get("factor", 1.0) < 1.0:
        kept = f" but those set with --set ({', '.join(plan.pool['kept_as_set'])})" if plan.pool["kept_as_set"] else ""
        parts.append(
            f"The pool holds {plan.pool['n_pool']} samples, fewer than the {plan.pool['largest_run_needs']} "
            f"the largest run needs: every size{kept} was scaled by {plan.pool['factor']:.3f}.\n"
        )
    for name, rows in tables.items():
        parts.append(f"## {name}\n")
        parts.append(sizes_pivot(rows) if plan.kind == "sizes" else markdown_table(rows))
        if plan.kind == "sizes":
            parts.append("\nCells: AUC [95% bootstrap CI] / TPR at 1% FPR.\n")
    parts.append("\n" + "\n".join(f"![{f.stem}]({f.name})" for f in figures) + "\n")
    return "\n".join(parts)


def run_reproduce(
    experiment: str | Path,
    *,
    scale: str = "cpu",
    out: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    resume: bool = False,
    progress: bool = True,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run every audit of ``experiment`` at ``scale`` and write its summary to ``out``; returns the summary.

    ``overrides`` are audit keys (``dataset``, ``data``, ``epochs``, ...) applied to every run; a key that is
    one of the plan's grid axes (``train_size`` for ``sizes``) replaces that axis.
    """
    console = console or Console(stderr=True, quiet=not progress)
    name = Path(experiment).stem if str(experiment).endswith((".yaml", ".yml")) else str(experiment)
    out = Path(out or Path("reproduce-out") / f"{name}-{scale}")
    plan = load_plan(experiment, scale=scale, overrides={**(overrides or {}), "progress": progress}, out=out / "runs")
    first = plan.runs[0].config
    datasets = DatasetCache()  # every run reads the same file: load it once, for this call only
    dataset, _, _ = datasets.load(first.dataset, first.data)
    fit_to_pool(plan, len(dataset), fixed=set(overrides or {}))
    if SUMMARIES.get(plan.kind) is None:
        raise DataFileError(f"experiment {plan.name}: unknown kind {plan.kind!r}; known: {sorted(SUMMARIES)}")
    started = time.perf_counter()
    records = []
    for i, run in enumerate(plan.runs, 1):
        cfg = run.config.replace(resume=resume)
        results = _finished_results(cfg) if resume else None
        console.print(f"[{i}/{len(plan.runs)}] {run.folder}" + (": finished earlier" if results else ""))
        if results is None:
            results = run_audit(cfg, console=console, datasets=datasets)
        records.append(RunRecord(run.point, run.group, results, _load_arrays(Path(cfg.out))))
    out.mkdir(parents=True, exist_ok=True)
    tables, figures = SUMMARIES[plan.kind](records, out)
    device = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s))"
    )
    summary = {
        "labelleak_version": __version__,
        "experiment": plan.name,
        "kind": plan.kind,
        "scale": scale,
        "description": plan.description,
        "claim": plan.claim,
        "dataset": f"{dataset.name} ({dataset.source}, {len(dataset)} samples)",
        "pool": plan.pool,
        "device": device,
        "seconds": time.perf_counter() - started,
        "runs": [
            {"point": r.point, "group": r.group, "folder": r.folder, "config": r.config.to_dict()} for r in plan.runs
        ],
        "tables": tables,
        "figures": [f.name for f in figures],
    }
    write_json(out / "summary.json", summary)
    _write_tables(tables, out)
    (out / "summary.md").write_text(_markdown(plan, summary, tables, figures))
    return summary
