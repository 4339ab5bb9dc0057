"""Every figure: the PNG files of a run (ROC curves on linear and log-log axes, series, histograms, bars, the
privacy-utility and Pareto plots of a defense matrix) and the inline SVG figures of the HTML report.

Figures are plain :class:`matplotlib.figure.Figure` objects drawn on an Agg canvas: no pyplot, so importing this
module neither selects a global backend nor opens windows, and a user's own pyplot state is left alone. matplotlib
(the ``plots`` extra) is imported only to draw: without it a PNG writer returns ``None`` after one warning, and the
core audit writes its numbers. An SVG figure carries its own alt text (``role="img"``, ``aria-label`` and
``<title>``), so report.html needs no other file and reads out to a screen reader.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec

import numpy as np

from labelleak._extras import has_module
from labelleak.counts import resolution
from labelleak.defenses.matrix import pareto_front
from labelleak.defenses.recommendation import strongest_label_only
from labelleak.logs import get_logger
from labelleak.metrics import auc, roc, tpr_at_fpr

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = get_logger(__name__)
_P = ParamSpec("_P")
_FLOOR = 1e-4  # where the report's log axes start: rates below it are drawn on the floor


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


# --- the HTML report's figures: inline SVG ---


def svg(fig: Figure, key: str, alt: str) -> str:
    """The figure as an ``<svg>`` element: ids prefixed with ``key`` (several share a page), alt text."""
    import matplotlib

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
