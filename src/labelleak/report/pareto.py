"""``pareto.png``: utility against leakage of the strongest label-only attack, one curve per defense family."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labelleak.recommend import strongest_label_only
from labelleak.report.plots import _figure, _figure_writer, _save


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (leakage, accuracy) points no other point beats on both (lower leakage, higher accuracy), by leakage."""
    front: list[tuple[float, float]] = []
    for leak, acc in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or acc > front[-1][1]:
            front.append((leak, acc))
    return front


@_figure_writer
def plot_pareto(
    rows: list[dict[str, Any]],
    attacks: list[str],
    path: str | Path,
    *,
    recommended: str | None = None,
    target_tpr: float | None = None,
) -> Path:
    """Two panels, test accuracy against the strongest label-only attack's TPR@1%FPR and against its AUC.

    Each family's points are joined in the order of the rows (weakest strength first in a sweep); the undefended
    row is a black star, the recommended one is circled, and the dashed grey line is the Pareto front.
    """
    fig = _figure((12, 4.8))
    axes = fig.subplots(1, 2)
    measured = [(r, s) for r in rows if (s := strongest_label_only(r, attacks)) is not None]
    for ax, metric, label in ((axes[0], "tpr", "TPR at 1% FPR"), (axes[1], "auc", "ROC AUC")):
        families = list(dict.fromkeys(r.get("family", r["defense"]) for r, _ in measured))
        for fam in families:
            pts = [
                (getattr(s, metric), r["test_accuracy"]) for r, s in measured if r.get("family", r["defense"]) == fam
            ]
            if fam == "none":
                ax.scatter(*zip(*pts), marker="*", s=140, color="k", label="no defense", zorder=3)
            else:
                ax.plot(*zip(*pts), marker="o", label=fam)
        front = pareto_front([(getattr(s, metric), r["test_accuracy"]) for r, s in measured])
        if front:
            ax.step(*zip(*front), where="post", ls="--", color="grey", lw=1, label="Pareto front")
        for r, s in measured:
            if r["defense"] == recommended:
                ax.scatter([getattr(s, metric)], [r["test_accuracy"]], s=220, facecolors="none", edgecolors="red",
                           label=f"recommended: {recommended}", zorder=4)  # fmt: skip
        if metric == "tpr" and target_tpr is not None:
            ax.axvline(target_tpr, color="red", ls=":", lw=1, label=f"target {target_tpr:g}")
        ax.set_xlabel(f"strongest label-only attack: {label}")
        ax.set_ylabel("target test accuracy")
        ax.grid(alpha=0.3)
    axes[1].axvline(0.5, color="k", ls="--", lw=0.8)
    axes[0].legend(fontsize=7)
    fig.suptitle("privacy-utility trade-off per defense")
    return _save(fig, path)
