"""Figures of the HTML report, as inline SVG strings that carry their own alt text (``role="img"``,
``aria-label`` and ``<title>``), so the page needs no other file and reads out to a screen reader."""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from labelleak.metrics import roc
from labelleak.report.plots import (  # Agg canvas per figure: no global backend, no pyplot state
    _figure,
    draw_privacy_utility,
)

_FLOOR = 1e-4  # where log axes start: rates below it are drawn on the floor


def svg(fig: Figure, key: str, alt: str) -> str:
    """The figure as an ``<svg>`` element: ids prefixed with ``key`` (several share a page), alt text."""
    fig.tight_layout()
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"labelleak-{key}", "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    # ids unique within the page: several figures share it
    text = re.sub(r'\bid="', f'id="{key}-', text)
    text = text.replace("url(#", f"url(#{key}-").replace('href="#', f'href="#{key}-')
    label = html.escape(alt, quote=True)
    text = re.sub(
        r'<svg([^>]*?) width="([\d.]+)pt" height="([\d.]+)pt"',
        rf'<svg\1 class="fig" role="img" aria-label="{label}" width="\2pt" height="\3pt"',
        text,
        count=1,
    )
    head_end = text.index(">") + 1
    return text[:head_end] + f"<title>{label}</title>" + text[head_end:]


def png_img(path: Path, alt: str) -> str:
    """An ``<img>`` with the PNG at ``path`` embedded as a data URI (for figures drawn by earlier runs)."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img class="fig" src="data:image/png;base64,{data}" alt="{html.escape(alt, quote=True)}">'


def _log_axes(ax: Axes, xlabel: str, ylabel: str) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(_FLOOR, 1)
    ax.set_ylim(_FLOOR, 1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both", lw=0.4)


def roc_loglog(curves: dict[str, tuple[np.ndarray, np.ndarray, bool]]) -> str:
    """ROC curves on log-log axes; ``curves[name] = (is_member, score, label_only)``; score attacks dashed."""
    fig = _figure((6.4, 5.0))
    ax = fig.subplots()
    for name, (m, s, label_only) in curves.items():
        fpr, tpr, _ = roc(m, s)
        if np.isnan(fpr).any():
            continue
        ax.plot(np.maximum(fpr, _FLOOR), np.maximum(tpr, _FLOOR), ls="-" if label_only else "--", lw=1.4, label=name)
    ax.plot([_FLOOR, 1], [_FLOOR, 1], color="k", ls=":", lw=0.8, label="chance")
    for f in (0.001, 0.01):
        ax.axvline(f, color="grey", lw=0.6)
    _log_axes(ax, "false-positive rate (non-members flagged)", "true-positive rate (members exposed)")
    ax.legend(fontsize=7, loc="lower right")
    names = ", ".join(curves)
    alt = (
        f"ROC curves on log-log axes for {names}; solid lines are label-only attacks, dashed lines score-based; "
        "vertical lines mark 0.1% and 1% false-positive rate; the dotted diagonal is chance."
    )
    return svg(fig, "roc", alt)


def histograms(panels: dict[str, tuple[np.ndarray, np.ndarray]], *, bins: int = 30) -> str:
    """One small panel per attack: member and non-member score histograms (densities, finite scores only)."""
    n = max(1, len(panels))
    cols = min(3, n)
    rows = -(-n // cols)
    fig = _figure((3.4 * cols, 2.6 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    for ax, (name, (members, nonmembers)) in zip(axes.flat, panels.items()):
        members, nonmembers = members[np.isfinite(members)], nonmembers[np.isfinite(nonmembers)]
        both = np.concatenate([members, nonmembers])
        edges = np.linspace(both.min(), both.max(), bins + 1) if len(both) and np.ptp(both) > 0 else bins
        ax.hist(nonmembers, bins=edges, alpha=0.55, density=True, color="tab:blue", label="non-members")
        ax.hist(members, bins=edges, alpha=0.55, density=True, color="tab:red", label="members")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("attack score", fontsize=8)
    axes.flat[0].legend(fontsize=7)
    alt = (
        f"Histograms of attack scores for members (red) and non-members (blue), one panel per attack: "
        f"{', '.join(panels)}. The more the two overlap, the less the attack separates them."
    )
    return svg(fig, "hist", alt)


def by_queries(series: dict[str, list[dict[str, float]]]) -> str:
    """AUC and TPR at 1% FPR against queries per candidate, one line per boundary attack."""
    fig = _figure((9.0, 3.6))
    ax_auc, ax_tpr = fig.subplots(1, 2)
    for name, rows in series.items():
        q = [r["queries"] for r in rows]
        ax_auc.plot(q, [r["auc"] for r in rows], marker="o", ms=3, label=name)
        ax_tpr.plot(q, [r["tpr_at_0.01"] for r in rows], marker="o", ms=3, label=name)
    for ax, ylabel in ((ax_auc, "ROC AUC"), (ax_tpr, "TPR at 1% FPR")):
        ax.set_xscale("log")
        ax.set_xlabel("queries per candidate")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    ax_auc.axhline(0.5, color="k", ls=":", lw=0.8)
    ax_auc.legend(fontsize=7)
    alt = f"AUC (left) and TPR at 1% FPR (right) against the query budget per candidate for {', '.join(series)}."
    return svg(fig, "queries", alt)


def threshold_sweep(sweeps: dict[str, tuple[list[dict[str, float]], float | None]]) -> str:
    """Data-free threshold: accuracy, precision and recall against the percentile t of noise scores; the
    shadow-calibrated balanced accuracy as a dashed line."""
    n = max(1, len(sweeps))
    fig = _figure((4.6 * n, 3.4))
    axes = fig.subplots(1, n, squeeze=False)
    for ax, (name, (sweep, calibrated)) in zip(axes[0], sweeps.items()):
        t = [s["t"] for s in sweep]
        for metric in ("accuracy", "precision", "recall"):
            ax.plot(t, [np.nan if s[metric] is None else s[metric] for s in sweep], marker="o", ms=3, label=metric)
        if calibrated is not None:
            ax.axhline(calibrated, color="k", ls="--", lw=0.8, label="shadow-calibrated bal. acc.")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("t (percentile of noise-input scores)")
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    alt = (
        f"Data-free threshold sweep for {', '.join(sweeps)}: accuracy, precision and recall against the "
        "percentile t of the scores of random-noise inputs; the dashed line is the shadow-calibrated threshold."
    )
    return svg(fig, "sweep", alt)


def privacy_utility(rows: list[dict], attacks: list[str]) -> str:
    """Each defense as a point: target test accuracy against the best attack AUC (all, and label-only)."""
    fig = _figure((6.4, 4.6))
    draw_privacy_utility(fig.subplots(), rows, attacks)
    alt = (
        "Privacy-utility plot: each defense as a point, target test accuracy on the x axis against the best "
        "attack's AUC (red dots, any threat model) and the best label-only attack's AUC (blue crosses)."
    )
    return svg(fig, "privacy-utility", alt)
