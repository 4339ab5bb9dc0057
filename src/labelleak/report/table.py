"""The short table printed at the end of an audit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from labelleak.report.notes import audit_notes
from labelleak.report.verdict import report_line, verdict_line


def _fmt(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def _na_caption(results: dict[str, Any]) -> str | None:
    """Why a TPR column reads ``n/a``: each distinct reason ``results.json`` gives for a null TPR."""
    reasons = {
        reason
        for r in results.get("attacks", {}).values()
        for key, reason in (r.get("tpr_at_fpr_na") or {}).items()
        if (r.get("tpr_at_fpr") or {}).get(key) is None
    }
    return "n/a: " + "; ".join(sorted(reasons)) if reasons else None


def _subject(results: dict[str, Any]) -> str:
    """What was audited: the model file's name for an own model (not the placeholder 'own-files'), else the
    dataset's name."""
    name = results.get("dataset", {}).get("name", "?")
    model = results.get("target", {}).get("model")
    return Path(str(model)).name if name in ("own-files", "own-arrays") and model else str(name)


def _accuracy(results: dict[str, Any]) -> str:
    """The target's accuracy: on its training and test rows when labelleak trained it, else on the member and
    non-member candidates (``results["utility"]``), which is all an auditor of someone else's model can measure."""
    target, utility = results.get("target", {}), results.get("utility") or {}
    if target.get("train_accuracy") is None and "members_accuracy" in utility:
        members, nonmembers = utility["members_accuracy"], utility.get("nonmembers_accuracy")
        return f"accuracy on member candidates {_fmt(members)}, non-members {_fmt(nonmembers)}"
    return f"target train acc {_fmt(target.get('train_accuracy'))}, test acc {_fmt(target.get('test_accuracy'))}"


def audit_table(results: dict[str, Any]) -> Table:
    """A rich table: one row per attack with AUC (CI), TPR at low FPR, balanced accuracy and cost; a TPR the
    candidates cannot resolve is ``n/a``, and the caption says how many non-members it needs."""
    title = f"labelleak audit: {_subject(results)}  |  {_accuracy(results)}"
    table = Table(title=title, caption=_na_caption(results))
    cols = ("attack", "threat", "AUC", "95% CI", "TPR@0.1%", "TPR@1%", "TPR@10%", "eps_LB", "bal.acc", "queries")
    for col in (*cols, "seconds"):
        table.add_column(col, justify="left" if col in ("attack", "threat") else "right")
    for name, r in results.get("attacks", {}).items():
        ci = r.get("auc_ci") or [None, None]
        tpr = r.get("tpr_at_fpr", {})
        table.add_row(
            name,
            r.get("threat_model", ""),
            _fmt(r.get("auc")),
            f"[{_fmt(ci[0])}, {_fmt(ci[1])}]",
            _fmt(tpr.get("0.001")),
            _fmt(tpr.get("0.01")),
            _fmt(tpr.get("0.1")),
            _fmt((r.get("epsilon") or {}).get("eps_lb"), 2),
            _fmt(r.get("balanced_accuracy")),
            _fmt(r.get("queries_per_sample"), 1),
            _fmt(r.get("seconds"), 2),
        )
    return table


def print_audit_table(results: dict[str, Any], console: Console | None = None) -> None:
    """Print the table and the notes that qualify its numbers (a total cap, the target's accuracy on the
    candidates); a console that is not a terminal gets enough width to keep the columns readable."""
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=140)
    console.print(audit_table(results))
    for note in audit_notes(results):
        console.print(note["text"], style="bold yellow" if note["warn"] else None, markup=False)
    line = verdict_line(results)
    if line is not None:  # the last lines: the verdict, and where the full report is
        console.print(line, style="bold", markup=False)
        console.print(report_line(results), markup=False)
