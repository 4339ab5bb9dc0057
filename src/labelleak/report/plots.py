"""ROC curves (linear and log-log axes) and other figures, as PNG via matplotlib's Agg backend."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec

import numpy as np

from labelleak.logs import get_logger
from labelleak.metrics import auc, roc

try:  # figures are an extra: the core audit writes its numbers without them
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    plt = None

log = get_logger(__name__)
_P = ParamSpec("_P")


def plots_available() -> bool:
    """Whether matplotlib (the ``plots`` extra) is installed."""
    return plt is not None


@functools.cache
def _warn_missing_matplotlib() -> None:
    log.warning("figures skipped: matplotlib is missing (pip install 'labelleak[plots]')")


def _figure_writer(draw: Callable[_P, Path]) -> Callable[_P, Path | None]:
    """Without matplotlib a figure is skipped (``None``) with one warning naming the extra, instead of failing."""

    @functools.wraps(draw)
    def write(*args: _P.args, **kwargs: _P.kwargs) -> Path | None:
        if plt is None:
            _warn_missing_matplotlib()
            return None
        return draw(*args, **kwargs)

    return write


def _save(fig: plt.Figure, path: str | Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


@_figure_writer
def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, *, title: str = "") -> Path:
    """One PNG with two panels: ROC on linear axes and on log-log axes (low-FPR regime).

    ``curves`` maps a label to ``(is_member, score)``.
    """
    fig, (ax_lin, ax_log) = plt.subplots(1, 2, figsize=(11, 4.8))
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
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
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


@_figure_writer
def plot_privacy_utility(rows: list[dict], attacks: list[str], path: str | Path) -> Path:
    """Each defense as a point: test accuracy (utility) against the best attack AUC (leakage)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    for r in rows:
        aucs = [r.get(f"{a}.auc") for a in attacks if r.get(f"{a}.auc") is not None]
        label_only = [
            r.get(f"{a}.auc") for a in attacks if r.get(f"{a}.threat") == "label-only" and r.get(f"{a}.auc") is not None
        ]
        if aucs:
            ax.scatter(r["test_accuracy"], max(aucs), color="tab:red")
            ax.annotate(
                r["defense"], (r["test_accuracy"], max(aucs)), fontsize=8, xytext=(3, 3), textcoords="offset points"
            )
        if label_only:
            ax.scatter(r["test_accuracy"], max(label_only), color="tab:blue", marker="x")
    ax.scatter([], [], color="tab:red", label="best attack (any threat model)")
    ax.scatter([], [], color="tab:blue", marker="x", label="best label-only attack")
    ax.axhline(0.5, color="k", ls="--", lw=0.8)
    ax.set_xlabel("target test accuracy (utility)")
    ax.set_ylabel("membership AUC (leakage)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


@_figure_writer
def plot_histograms(panels: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, *, bins: int = 30) -> Path:
    """One panel per quantity: overlaid density histograms of members (``panels[k][0]``) and non-members."""
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5.5 * max(1, len(panels)), 4.2), squeeze=False)
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
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(groups) * max(1, len(bars)) / 2), 4.5))
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
