"""Markdown renderings: the defense matrix (``matrix.md``) with its recommendation, and an experiment's summary
(``summary.md``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labelleak.defenses.recommendation import Recommendation
from labelleak.report.claims import is_project_goal


def fmt_cell(value: Any, missing: str = "-") -> str:
    """A table cell: floats to 3 decimals (NaN as ``n/a``), ``None`` as ``missing``, anything else as text."""
    if value is None:
        return missing
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.3f}"
    return str(value)


def fmt_number(value: Any, digits: int = 3) -> str:
    """A number to ``digits`` decimals; ``None``, NaN and anything not a number (a key an older or remote run
    lacks) as ``n/a``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return "n/a"
    return f"{value:.{digits}f}"


def missing_mark(column: str) -> str:
    """How an empty cell of ``column`` reads: ``n/a`` for a rate (``tpr@1%``, ``ratio@0.1%_low``: ``None`` there
    means the candidates cannot resolve the FPR, and a ``..._na`` column says why; a precision with nothing
    predicted a member, which JSON keeps as ``None``), ``-`` for anything else."""
    return "n/a" if any(word in column for word in ("tpr", "ratio", "precision")) else "-"


def markdown_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """A GitHub Markdown table of ``rows`` (floats to 3 decimals, missing values as :func:`missing_mark`)."""
    if not rows:
        return "(no rows)\n"
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt_cell(r.get(c), missing_mark(c)) for c in columns) + " |" for r in rows]
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
                f"{fmt_cell(r['tpr@1%'], 'n/a')}"
            )
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _with_interval(row: dict[str, Any], key: str) -> str:
    """``value [low, high]``; ``n/a`` for a value the candidates cannot resolve, ``value [n/a]`` without interval."""
    if row.get(key) is None:
        return "n/a"
    if row.get(f"{key}_low") is None:
        return f"{fmt_cell(row[key])} [n/a]"
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


def _tpr_cell(row: dict[str, Any], attack: str) -> str:
    """``point [low, high]`` of TPR at 1% FPR; ``n/a`` where the candidates cannot resolve it, ``[n/a]`` where
    they resolve the point but not its interval."""
    point, low, high = (row.get(f"{attack}.tpr@1%{s}") for s in ("", "_low", "_high"))
    if fmt_number(point) == "n/a":
        return "n/a"
    if fmt_number(low) == "n/a" or fmt_number(high) == "n/a":
        return f"{fmt_number(point)} [n/a]"
    return f"{fmt_number(point)} [{fmt_number(low)}, {fmt_number(high)}]"


def matrix_markdown(rows: list[dict[str, Any]], attacks: list[str]) -> str:
    """The defense x attack matrix: utility, gap, the accountant's epsilon, the verdict's and the one-run audit's
    eps_LB and each attack's AUC / TPR@1%FPR with its exact 95% interval."""
    # matrices written before the one-run audit have no such bound: no column of dashes for them
    bounds = ["eps_lb"] + (["one_run_eps_lb"] if any("one_run_eps_lb" in r for r in rows) else [])
    head = ["defense", "test acc", "gap", "epsilon", "eps_LB"] + (["one-run eps_LB"] if len(bounds) > 1 else [])
    head += [f"{a} AUC / TPR@1% [95% CI]" for a in attacks]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        eps = "-" if r["epsilon"] is None else f"{r['epsilon']:.2f}"
        if r.get("dp_tuning") == "private":
            eps += " (excl. tuning)"
        cells = [r["defense"], fmt_number(r["test_accuracy"]), fmt_number(r["gap"]), eps]
        cells += ["-" if r.get(k) is None else fmt_number(r[k], 2) for k in bounds]
        cells += [f"{fmt_number(r.get(f'{a}.auc'))} / {_tpr_cell(r, a)}" for a in attacks]
        lines.append("| " + " | ".join(cells) + " |")
    seen = {str(r.get("evaluation")) for r in rows}
    lines += [_EVALUATION[e] for e in sorted(seen & _EVALUATION.keys())]
    return "\n".join(lines) + "\n"


_EVALUATION = {  # what the target section's "evaluation" says of the adversary's own models
    "adaptive": "\nAdaptive evaluation: the adversary's own models train and answer with each defense.",
    "non-adaptive": "\nNon-adaptive evaluation: the adversary's own models ignore the defense (for comparison only).",
}


def recommendation_markdown(rec: Recommendation) -> str:
    """A ``## Recommendation`` section: the statement, how it was chosen, every measured row on the Pareto
    ranking with its status and why, and the rows that could not count."""
    how = (
        f"A defense is enough only when the upper end of every label-only attack's exact 95% interval of TPR at "
        f"1% FPR is below {rec.target_tpr:g}"
        + (f", every AUC upper bound below {rec.target_auc:g}" if rec.target_auc is not None else "")
        + (
            f", and an upper bound on epsilon (the DP accountant's, covering the whole training) is at most "
            f"{rec.target_epsilon:g}: eps_LB is a lower bound and can only refute that target, never meet it"
            if rec.target_epsilon is not None
            else ""
        )
        + "; otherwise it is not shown (never enough on a point estimate). The most accurate enough defense is "
        + f"recommended; accuracy loss is against {rec.baseline}"
        + (f" ({rec.baseline_accuracy:.3f})" if rec.baseline_accuracy is not None else "")
        + ". Rows are ranked on the Pareto front of test accuracy against the highest TPR upper bound: "
        + "front (undominated) rows first."
    )
    lines = ["## Recommendation", "", rec.statement(), "", how]
    if rec.ranking:
        head = ["rank", "defense", "test acc", "TPR@1% upper (attack)", "Pareto", "status", "why"]
        lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rec.ranking:
            upper = "n/a" if r.tpr_high is None else f"{r.tpr_high:.3f} ({r.tpr_attack})"
            cells = [str(r.rank), r.defense, f"{r.test_accuracy:.3f}", upper, "yes" if r.pareto else "no"]
            cells += [r.status, "; ".join(r.reasons)]
            lines.append("| " + " | ".join(cells) + " |")
    if rec.unmeasured:
        lines += [
            "",
            f"Not considered (no finite label-only measurement or test accuracy): {', '.join(rec.unmeasured)}.",
        ]
    return "\n".join(lines) + "\n"


def _lowfpr_note(exact: bool, held_out: bool = True) -> str:
    """What a lowfpr summary's brackets are: exact TPR intervals, or (``exact=False``, a run written before them,
    whose rows have no ``_na`` columns) bootstrap ones, so a rebuilt old summary does not relabel its numbers; and
    what the point beside an exact bracket is: the held-out threshold's TPR (``held_out``, rows with ``_roc``
    columns), or, in a summary written before, the ROC reading, which can lie outside its bracket."""
    point = (
        " The TPR or ratio beside an exact bracket is the held-out threshold's, the number the interval is about; "
        "the `_roc` columns give the ROC reading over all non-members"
        if held_out
        else " The TPR or ratio beside an exact bracket is the ROC reading over all non-members (this run predates "
        "printing the held-out threshold's TPR): at a few hundred non-members it can lie outside its bracket, which "
        "is about the held-out threshold's TPR; the verdicts read the brackets"
    )
    intervals = (
        "95% intervals, a percentile bootstrap for AUC and exact (Clopper-Pearson, threshold chosen on half of the "
        f"non-members, its TPR counted on the members) for TPR.{point}"
        if exact
        else "95% bootstrap intervals (this run predates the exact TPR intervals)"
    )
    ratio = "the two exact intervals at 97.5% each" if exact else "a paired bootstrap"
    return (
        f"Brackets and columns `_low`, `_high`: {intervals}. `n/a`: too few non-members to resolve the FPR (a TPR "
        f"at FPR x needs 1/x, its interval 2/x{'; the `_na` columns give the counts' if exact else ''}). "
        "`lira_ratio` and `goal` compare "
        f"each attack with online LiRA on the candidates both scored (interval: {ratio}); a goal is met only when "
        "its interval clears it, not met when the interval lies below it, inconclusive otherwise. Target queries "
        "per candidate are the mean; setup queries (in all) are those that belong to no candidate, such as "
        "labelling the adversary's data.\n"
    )


def summary_markdown(summary: dict[str, Any], tables: dict[str, list[dict[str, Any]]], figures: list[Path]) -> str:
    """``summary.md`` of a reproduced experiment: description, claim, tables and the figures' links."""
    parts = [f"# {summary['experiment']} ({summary['scale']} scale)\n", summary["description"].strip() + "\n"]
    if summary.get("claim"):
        whose = "Project goal (not a claim of the paper)" if is_project_goal(summary["kind"]) else "Paper's claim"
        parts.append(f"{whose}: {summary['claim'].strip()}\n")
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
        rows = tables.get("lowfpr", [])
        parts.append(
            _lowfpr_note(
                any(k.endswith("_na") for r in rows for k in r), any(k.endswith("_roc") for r in rows for k in r)
            )
        )
    parts.append("\n" + "\n".join(f"![{f.stem}]({f.name})" for f in figures) + "\n")
    return "\n".join(parts)
