"""ROC curves (linear and log-log axes) and other figures, as PNG.

Figures are plain :class:`matplotlib.figure.Figure` objects drawn on an Agg canvas: no pyplot, so importing this
module neither selects a global backend nor opens windows, and a user's own pyplot state is left alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec

import numpy as np

from labelleak._extras import has_module
from labelleak.counts import resolution
from labelleak.logs import get_logger
from labelleak.metrics import auc, roc, tpr_at_fpr

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = get_logger(__name__)
_P = ParamSpec("_P")


@functools.cache
def plots_available() -> bool:
    """Whether matplotlib (the ``plots`` extra) is installed: the core audit writes its numbers without it."""
    return has_module("matplotlib")


@functools.cache
def _warn_missing_matplotlib() -> None:
    log.warning("figures skipped: matplotlib is missing (pip install 'labelleak[plots]')")


def _figure_writer(draw: Callable[_P, Path]) -> Callable[_P, Path | None]:
    """Without matplotlib a figure is skipped (``None``) with one warning naming the extra, instead of failing."""

    @functools.wraps(draw)
    def write(*args: _P.args, **kwargs: _P.kwargs) -> Path | None:
        if not plots_available():
            _warn_missing_matplotlib()
            return None
        return draw(*args, **kwargs)

    return write


def _figure(figsize: tuple[float, float]) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


@_figure_writer
def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, *, title: str = "") -> Path:
    """One PNG with two panels: ROC on linear axes and on log-log axes (low-FPR regime).

    ``curves`` maps a label to ``(is_member, score)``.
    """
    fig = _figure((11, 4.8))
    ax_lin, ax_log = fig.subplots(1, 2)
    for label, (m, s) in curves.items():
        fpr, tpr, _ = roc(m, s)
        if np.isnan(fpr).any():
            continue
        text = f"{label} (AUC {auc(m, s):.3f})"
        ax_lin.plot(fpr, tpr, label=text)
        ax_log.plot(np.maximum(fpr, 1e-5), np.maximum(tpr, 1e-5), label=text)
    for ax, scale in ((ax_lin, "linear"), (ax_log, "log")):
        ax.plot([1e-5, 1], [1e-5, 1], "k--", lw=0.8, label="chance")
        ax.set_xscale(scale)
        ax.set_yscale(scale)
        ax.set_xlabel("false-positive rate")
        ax.set_ylabel("true-positive rate")
        ax.grid(alpha=0.3)
    ax_lin.set_xlim(0, 1)
    ax_lin.set_ylim(0, 1)
    ax_log.set_xlim(1e-3, 1)
    ax_log.set_ylim(1e-3, 1)
    ax_lin.set_title("ROC (linear)")
    ax_log.set_title("ROC (log-log)")
    ax_lin.legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


@_figure_writer
def plot_series(
    series: dict[str, tuple[list[float], list[float]]],
    path: str | Path,
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logx: bool = True,
) -> Path:
    """Line plot of named (x, y) series, e.g. AUC against queries per sample."""
    fig = _figure((6.5, 4.5))
    ax = fig.subplots()
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", label=label)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def draw_privacy_utility(ax: Axes, rows: list[dict[str, Any]], attacks: list[str]) -> None:
    """The privacy-utility points on ``ax``: per defense, the best attack's AUC (red) and the best label-only
    attack's AUC (blue cross) against test accuracy; shared by the PNG and the HTML report's SVG."""
    for r in rows:
        aucs = {a: float(r[f"{a}.auc"]) for a in attacks if r.get(f"{a}.auc") is not None}
        label_only = [v for a, v in aucs.items() if r.get(f"{a}.threat") == "label-only"]
        if aucs:
            best = max(aucs.values())
            ax.scatter(r["test_accuracy"], best, color="tab:red")
            ax.annotate(r["defense"], (r["test_accuracy"], best), fontsize=8, xytext=(3, 3), textcoords="offset points")
        if label_only:
            ax.scatter(r["test_accuracy"], max(label_only), color="tab:blue", marker="x")
    ax.scatter([], [], color="tab:red", label="best attack (any threat model)")
    ax.scatter([], [], color="tab:blue", marker="x", label="best label-only attack")
    ax.axhline(0.5, color="k", ls="--", lw=0.8)
    ax.set_xlabel("target test accuracy (utility)")
    ax.set_ylabel("membership AUC (leakage)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


@_figure_writer
def plot_privacy_utility(rows: list[dict[str, Any]], attacks: list[str], path: str | Path) -> Path:
    """Each defense as a point: test accuracy (utility) against the best attack AUC (leakage)."""
    fig = _figure((6.5, 4.8))
    draw_privacy_utility(fig.subplots(), rows, attacks)
    return _save(fig, path)


@_figure_writer
def plot_histograms(panels: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, *, bins: int = 30) -> Path:
    """One panel per quantity: overlaid density histograms of members (``panels[k][0]``) and non-members."""
    fig = _figure((5.5 * max(1, len(panels)), 4.2))
    axes = fig.subplots(1, max(1, len(panels)), squeeze=False)
    for ax, (label, (members, nonmembers)) in zip(axes[0], panels.items()):
        both = np.concatenate([members, nonmembers])
        both = both[np.isfinite(both)]
        edges = np.linspace(both.min(), both.max(), bins + 1) if len(both) and both.max() > both.min() else bins
        ax.hist(nonmembers, bins=edges, alpha=0.55, density=True, label=f"non-members (n={len(nonmembers)})")
        ax.hist(members, bins=edges, alpha=0.55, density=True, label=f"members (n={len(members)})")
        ax.set_xlabel(label)
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return _save(fig, path)


@_figure_writer
def plot_bars(
    values: dict[str, dict[str, float]], path: str | Path, *, ylabel: str, title: str = "", baseline: float | None = 0.5
) -> Path:
    """Grouped bars: ``values[group][bar]``, e.g. AUC per attack (group) and distance norm (bar)."""
    groups = list(values)
    bars = list(dict.fromkeys(b for g in groups for b in values[g]))
    fig = _figure((max(5.0, 1.6 * len(groups) * max(1, len(bars)) / 2), 4.5))
    ax = fig.subplots()
    width = 0.8 / max(1, len(bars))
    for i, bar in enumerate(bars):
        xs = np.arange(len(groups)) + (i - (len(bars) - 1) / 2) * width
        ax.bar(xs, [values[g].get(bar, np.nan) for g in groups], width, label=bar)
    ax.set_xticks(np.arange(len(groups)), groups)
    if baseline is not None:
        ax.axhline(baseline, color="k", ls="--", lw=0.8)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return _save(fig, path)


@_figure_writer
def plot_roc_loglog(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    path: str | Path,
    *,
    title: str = "",
    marks: tuple[float, ...] = (0.001, 0.01),
) -> Path:
    """Every attack's ROC in one log-log panel, the low-FPR regime; dotted lines at the FPRs in ``marks``. The
    legend gives each attack's TPR at those FPRs, ``n/a`` where its non-members cannot resolve one.

    ``curves`` maps a label to ``(is_member, score)``; attacks may have different numbers of non-members. A point
    at FPR 0 cannot sit on a log axis: it is drawn at half the smallest non-zero FPR of all curves, the left edge.
    """
    fig = _figure((7.5, 5.8))
    ax = fig.subplots()
    drawn = {label: roc(m, s) for label, (m, s) in curves.items()}
    drawn = {k: v for k, v in drawn.items() if not np.isnan(v[0]).any()}
    edge = 0.5 * min((1.0 / max(int((~np.asarray(curves[k][0], bool)).sum()), 1) for k in drawn), default=1e-3)
    for i, (label, (fpr, tpr, _)) in enumerate(drawn.items()):
        m, s = curves[label]
        members = int(np.asarray(m, bool).sum())
        n_non = len(m) - members
        lows = " / ".join(f"{tpr_at_fpr(m, s, f):.3f}" if resolution(n_non, f).point else "n/a" for f in marks)
        text = f"{label}: {lows} ({members} + {n_non})"
        # the colour cycle has 10 colours: later curves are dashed, so that no two look alike
        ax.plot(np.maximum(fpr, edge), np.maximum(tpr, edge), label=text, lw=1.2, ls="-" if i < 10 else "--")
    for f in marks:
        ax.axvline(f, color="grey", ls=":", lw=0.8)
    ax.plot([edge, 1], [edge, 1], "k--", lw=0.8, label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(edge, 1)
    ax.set_ylim(edge, 1)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right", title=f"TPR at {' / '.join(f'{f * 100:g}%' for f in marks)} FPR")
    if title:
        ax.set_title(title)
    return _save(fig, path)
