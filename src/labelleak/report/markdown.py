"""Markdown renderings: the defense matrix (``matrix.md``) and an experiment's summary (``summary.md``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def fmt_cell(value: Any) -> str:
    """A table cell: floats to 3 decimals (NaN as ``n/a``), ``None`` as ``-``, anything else as text."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.3f}"
    return str(value)


def fmt_number(value: Any, digits: int = 3) -> str:
    """A number to ``digits`` decimals; ``None``, NaN and anything not a number (a key an older or remote run
    lacks) as ``n/a``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return "n/a"
    return f"{value:.{digits}f}"


def markdown_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """A GitHub Markdown table of ``rows`` (floats to 3 decimals, missing values as ``-``)."""
    if not rows:
        return "(no rows)\n"
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt_cell(r.get(c)) for c in columns) + " |" for r in rows]
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
        + " | ".join(f"{fmt_cell(first[s]['train_accuracy'])} / {fmt_cell(first[s]['test_accuracy'])}" for s in sizes)
        + " |",
    ]
    for a in attacks:
        cells = []
        for s in sizes:
            r = cell.get((a, s))
            cells.append(
                "-"
                if r is None
                else f"{fmt_cell(r['auc'])} [{fmt_cell(r['auc_low'])}, {fmt_cell(r['auc_high'])}] / "
                f"{fmt_cell(r['tpr@1%'])}"
            )
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _with_interval(row: dict[str, Any], key: str) -> str:
    return f"{fmt_cell(row.get(key))} [{fmt_cell(row.get(f'{key}_low'))}, {fmt_cell(row.get(f'{key}_high'))}]"


def wall_time_note(summary: dict[str, Any]) -> str:
    """Why the wall time can be short: results read back by ``--resume`` were computed in an earlier invocation."""
    if not summary.get("attacks_read_back"):
        return ""
    runs = f"{summary.get('runs_read_back', 0)} of {len(summary['runs'])} audits and "
    seconds = summary.get("attack_seconds", 0.0)
    return (
        f" (this invocation; {runs if summary.get('runs_read_back') else ''}"
        f"{summary['attacks_read_back']} attack results were read back from an earlier one); the attacks' own run "
        f"times (without target training and threshold calibration) add up to {seconds:.0f} s"
    )


def lowfpr_markdown(rows: list[dict[str, Any]]) -> str:
    """The low-FPR table in short: ``value [95% interval]`` cells and the cost columns (the CSV has them flat)."""
    head = ["attack", "threat model", "candidates", "TPR@0.1%FPR", "TPR@1%FPR", "AUC"]
    head += ["target queries / candidate", "setup queries", "reference models", "seconds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["attack"], fmt_cell(r.get("threat_model")), f"{r['n_members']} + {r['n_nonmembers']}"]
        cells += [_with_interval(r, k) for k in ("tpr@0.1%", "tpr@1%", "auc")]
        cells += [fmt_number(r.get("queries_per_candidate"), 1), fmt_cell(r.get("setup_queries"))]
        cells += [fmt_cell(r.get("reference_models")), fmt_number(r.get("seconds"), 0)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def matrix_markdown(rows: list[dict[str, Any]], attacks: list[str]) -> str:
    """The defense x attack matrix: utility, gap, epsilon and each attack's AUC / TPR@1%FPR."""
    head = ["defense", "test acc", "gap", "epsilon"] + [f"{a} AUC / TPR@1%" for a in attacks]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            r["defense"],
            fmt_number(r["test_accuracy"]),
            fmt_number(r["gap"]),
            "-" if r["epsilon"] is None else f"{r['epsilon']:.2f}",
        ]
        cells += [f"{fmt_number(r.get(f'{a}.auc'))} / {fmt_number(r.get(f'{a}.tpr@1%'))}" for a in attacks]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summary_markdown(summary: dict[str, Any], tables: dict[str, list[dict[str, Any]]], figures: list[Path]) -> str:
    """``summary.md`` of a reproduced experiment: description, claim, tables and the figures' links."""
    parts = [f"# {summary['experiment']} ({summary['scale']} scale)\n", summary["description"].strip() + "\n"]
    if summary.get("claim"):
        parts.append(f"Paper's claim: {summary['claim'].strip()}\n")
    n = len(summary["runs"])
    parts.append(
        f"Dataset: {summary['dataset']}; {n} audit{'s' if n != 1 else ''}; wall time "
        f"{summary['seconds']:.0f} s on {summary['device']}{wall_time_note(summary)}.\n"
    )
    pool = summary.get("pool") or {}
    if pool.get("factor", 1.0) < 1.0:
        kept = f" but those set with --set ({', '.join(pool['kept_as_set'])})" if pool["kept_as_set"] else ""
        parts.append(
            f"The pool holds {pool['n_pool']} samples, fewer than the {pool['largest_run_needs']} "
            f"the largest run needs: every size{kept} was scaled by {pool['factor']:.3f}.\n"
        )
    for name, rows in tables.items():
        parts.append(f"## {name}\n")
        if summary["kind"] == "sizes":
            parts.append(sizes_pivot(rows))
        elif summary["kind"] == "lowfpr" and name == "lowfpr":
            parts.append(lowfpr_markdown(rows))
        else:
            parts.append(markdown_table(rows))
        if summary["kind"] == "sizes":
            parts.append("\nCells: AUC [95% bootstrap CI] / TPR at 1% FPR.\n")
    if summary["kind"] == "lowfpr":
        parts.append(
            "Brackets and columns `_low`, `_high`: 95% bootstrap interval. `lira_ratio` and `goal` compare each "
            "attack with online LiRA on the candidates both scored (paired bootstrap). Target queries per candidate "
            "are the mean; setup queries (in all) are those that belong to no candidate, such as labelling the "
            "adversary's data.\n"
        )
    parts.append("\n" + "\n".join(f"![{f.stem}]({f.name})" for f in figures) + "\n")
    return "\n".join(parts)
