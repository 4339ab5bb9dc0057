"""Every file a run leaves in its output folder, written in one place per command (audit, defend, reproduce).

The pipeline hands over what it computed; the files, their formats and the HTML report are decided here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from labelleak._extras import has_module
from labelleak.attacks import Status
from labelleak.defenses import Recommendation
from labelleak.logs import get_logger
from labelleak.report.figures import plot_pareto, plot_privacy_utility, plot_roc, plot_series
from labelleak.report.files import (
    jsonable,
    read_json_object,
    write_distances_csv,
    write_json,
    write_scores_csv,
    write_table_csv,
)
from labelleak.report.lowfpr import masked_tables
from labelleak.report.markdown import matrix_markdown, recommendation_markdown, summary_markdown
from labelleak.report.records import record_rows, write_records
from labelleak.report.thumbnails import write_exposed_inputs

log = get_logger(__name__)


def write_report_if_available(out: Path) -> None:
    """``report.html`` needs the ``report`` extra (Jinja2 and matplotlib); without it the run's other files are
    complete and a warning says how to get the page (``labelleak report OUT`` builds it later)."""
    if not (has_module("jinja2") and has_module("matplotlib")):
        log.warning("report.html skipped: pip install 'labelleak[report]', then run: labelleak report %s", out)
        return
    from labelleak.report.html import write_report

    write_report(out)


def write_audit_outputs(
    out: str | Path,
    results: dict[str, Any],
    finished: dict[str, dict[str, np.ndarray]],
    *,
    sample_index: np.ndarray,
    is_member: np.ndarray,
    inputs: np.ndarray | None = None,
    canary: np.ndarray | None = None,
    keys: np.ndarray | None = None,
) -> None:
    """``scores.csv``, ``arrays.npz`` (``is_canary`` too when the audit has canaries, ``content_key`` when the
    metrics were drawn in the candidates' key order), ``distances.csv``,
    ``roc.png``, ``queries.png``, ``records.csv`` and ``records.jsonl`` (the exposed records),
    ``exposed_inputs.npz`` (the listed members' ``inputs``, when given), ``results.json`` and ``report.html`` of
    one audit; ``finished`` maps each attack to its per-candidate arrays."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "attack": name,
            "sample_index": i,
            "is_member": m,
            "score": s,
            "queries": q,
            "status": Status(int(st)).name.lower(),
        }
        for name, a in finished.items()
        for i, m, s, q, st in zip(sample_index, is_member, a["scores"], a["queries"], a["status"])
    ]
    write_scores_csv(out / "scores.csv", rows)
    per_attack: dict[str, Any] = {f"{name}/{k}": v for name, a in finished.items() for k, v in a.items()}
    if canary is not None:
        per_attack["is_canary"] = np.asarray(canary, bool)
    if keys is not None:  # the order the metrics drew their halves in (metrics.summarize's keys)
        per_attack["content_key"] = np.asarray(keys)
    np.savez_compressed(out / "arrays.npz", sample_index=sample_index, is_member=is_member, **per_attack)
    distances = {
        name: {k[len("distance_") :]: v for k, v in a.items() if k.startswith("distance_")}
        for name, a in finished.items()
        if "distance_l2" in a
    }
    if distances:
        write_distances_csv(out / "distances.csv", sample_index, is_member, distances)
    curves = {name: (is_member, a["scores"]) for name, a in finished.items()}
    plot_roc(curves, out / "roc.png", title=f"{results['dataset']['name']}: label-only membership inference")
    series = {
        n: ([r["queries"] for r in e["by_queries"]], [r["auc"] for r in e["by_queries"]])
        for n, e in results["attacks"].items()
        if e.get("by_queries")
    }
    if series:
        plot_series(
            series,
            out / "queries.png",
            xlabel="queries per candidate",
            ylabel="ROC AUC",
            title="membership AUC against query budget",
        )
    records, results["exposed"] = record_rows(sample_index, is_member, {n: a["scores"] for n, a in finished.items()})
    write_records(out, records)
    if inputs is not None:
        write_exposed_inputs(out, records, sample_index, inputs)
    write_json(out / "results.json", results)
    write_report_if_available(out)


def write_defend_outputs(
    out: str | Path,
    config: dict[str, Any],
    rows: list[dict[str, Any]],
    attacks: list[str],
    *,
    recommendation: Recommendation | None = None,
    target_tpr: float | None = None,
) -> None:
    """``matrix.{json,csv,md}`` (with the recommendation, when there is one), ``privacy_utility.png``,
    ``pareto.png`` and ``report.html`` of a defense sweep."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    matrix: dict[str, Any] = {"config": config, "rows": rows}
    markdown = matrix_markdown(rows, attacks)
    if recommendation is not None:
        matrix["recommendation"] = recommendation.to_dict()
        markdown += "\n" + recommendation_markdown(recommendation)
    write_json(out / "matrix.json", matrix)
    write_table_csv(out / "matrix.csv", rows)
    (out / "matrix.md").write_text(markdown)
    plot_privacy_utility(rows, attacks, out / "privacy_utility.png")
    recommended = recommendation.defense if recommendation is not None else None
    plot_pareto(rows, attacks, out / "pareto.png", recommended=recommended, target_tpr=target_tpr)
    write_report_if_available(out)


def write_reproduce_outputs(
    out: str | Path, summary: dict[str, Any], tables: dict[str, list[dict[str, Any]]], figures: list[Path]
) -> None:
    """``summary.{json,md}``, one CSV per table and ``report.html`` of a reproduced experiment (its figures are
    drawn by :mod:`labelleak.report.summaries`); ``summary.json`` keeps the raw values."""
    out, summary = Path(out), {**summary, "tables": tables}
    write_json(out / "summary.json", summary)
    write_summary_tables(out, summary, figures)
    write_report_if_available(out)


def write_summary_tables(out: Path, summary: dict[str, Any], figures: list[Path]) -> None:
    """``summary.md`` and one CSV per table under today's printing rules: a TPR its candidates cannot resolve is
    empty (``n/a``), in an older summary's rows too (:func:`~labelleak.report.lowfpr.masked_tables`)."""
    tables = masked_tables(summary)
    for name, rows in tables.items():
        write_table_csv(out / f"{name}.csv", jsonable(rows))
    (out / "summary.md").write_text(summary_markdown(summary, tables, figures))


def rewrite_summary_tables(folder: str | Path) -> bool:
    """Bring a reproduce run's ``summary.md`` and CSVs up to date from its ``summary.json`` (``labelleak
    report``); ``False`` where ``folder`` holds no reproduce summary."""
    folder = Path(folder)
    path = folder / "summary.json"
    if not path.is_file():
        return False
    summary = read_json_object(path)
    write_summary_tables(folder, summary, [Path(name) for name in summary.get("figures", [])])
    return True
