"""Markdown of the defense matrix's recommendation (see :mod:`labelleak.recommend`)."""

from __future__ import annotations

from labelleak.recommend import Recommendation


def recommendation_markdown(rec: Recommendation) -> str:
    """A ``## Recommendation`` section: the statement, how it was chosen, and the rows that could not count."""
    how = (
        f"A defense qualifies when every label-only attack has TPR at 1% FPR below {rec.target_tpr:g}"
        + (f" and AUC below {rec.target_auc:g}" if rec.target_auc is not None else "")
        + f"; the cheapest loses the least test accuracy against {rec.baseline}"
        + (f" ({rec.baseline_accuracy:.3f})" if rec.baseline_accuracy is not None else "")
        + "."
    )
    lines = ["## Recommendation", "", rec.statement(), "", how]
    if rec.unmeasured:
        lines += [
            "",
            f"Not considered (no finite label-only measurement or test accuracy): {', '.join(rec.unmeasured)}.",
        ]
    return "\n".join(lines) + "\n"
