"""Sentences that qualify an audit's numbers, for the terminal table and ``report.html`` alike: what a total
query cap did to each attack, and how well the target classifies the candidates (with the warning that its
preprocessing may be wrong)."""

from __future__ import annotations

from typing import Any


def _pct(value: Any) -> str:
    return "n/a" if not isinstance(value, (int, float)) or value != value else f"{100 * value:.1f}%"


def total_cap_note(results: dict[str, Any]) -> str | None:
    """The total cap, the even per-candidate allowance each attack got and how many candidates it cut short."""
    cap = results.get("total_cap")
    if not cap:
        return None
    per_candidate = cap.get("queries_per_candidate")
    parts = [
        f"{name} {p.get('allowance', '?')} per candidate, {p.get('cut_short', 0)} cut short"
        for name, p in (cap.get("attacks") or {}).items()
    ]
    skipped = list(results.get("skipped_attacks") or {})
    text = (
        f"A total cap of {cap['max_total_queries']:,} queries applied (--max-total-queries), shared evenly over each "
        f"attack's candidates (--queries {per_candidate if per_candidate is not None else 'unbounded'} without it)"
    )
    if parts:
        text += ": " + "; ".join(parts)
    if skipped:
        text += f"; skipped: {', '.join(skipped)}"
    return text + ". A candidate cut short is marked budget_hit."


def utility_note(results: dict[str, Any]) -> str | None:
    """The target's accuracy on the member and non-member candidates (targets labelleak did not train)."""
    utility = results.get("utility")
    if not utility:
        return None
    if "skipped" in utility:
        return f"Target accuracy on the candidates not measured: {utility['skipped']}."
    source = utility.get("source")
    how = "one labelled query each" if source == "labels" else f"{source}'s queries"
    return (
        f"Target accuracy on the candidates ({how}): members {_pct(utility.get('members_accuracy'))}, "
        f"non-members {_pct(utility.get('nonmembers_accuracy'))}."
    )


def audit_notes(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every note of an audit as ``{"text", "warn"}``, the warnings first."""
    notes = []
    warning = (results.get("utility") or {}).get("warning")
    if warning:
        notes.append({"text": f"Warning: {warning}.", "warn": True})
    for text in (utility_note(results), total_cap_note(results)):
        if text is not None:
            notes.append({"text": text, "warn": False})
    return notes
