"""The summary of ``labelleak reproduce lowfpr``: attacks judged at low false-positive rates (issue 16).

Since Carlini et al. (S&P 2022) an attack is judged by its TPR at 0.1% and 1% FPR rather than by its AUC. Per
attack this module reports those TPRs and the AUC with percentile bootstrap intervals, recomputed from the scores in
``arrays.npz`` with the audit's ``n_boot`` and ``seed`` (so they equal the audit's ``results.json``), and the
attack's cost: target queries per candidate, setup queries (inputs that belong to no candidate, such as labelling
the adversary's data) apart, reference models and wall time.

The plan's attacks need not see the same candidates (boundary searches see fewer at CPU scale), so each attack is
compared with online LiRA on the candidates both scored, matched by their ``sample_index``; the interval of the
ratio of their TPRs is a paired bootstrap (one resample picks the same candidates for both attacks).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labelleak.logs import get_logger
from labelleak.metrics import Interval, auc, bootstrap, tpr_at_fpr
from labelleak.report.plots import plot_roc_loglog

if TYPE_CHECKING:
    from labelleak.report.summaries import RunRecord, Summary

log = get_logger(__name__)

LOW_FPRS = (0.001, 0.01)  # the FPRs the experiment reports (Carlini et al.'s)
REFERENCE_ATTACK = "lira"  # online LiRA: the score-based attack the label-only ones are measured against
GOAL_RATIO = 0.5  # issue 16: a label-only attack with at least half of LiRA's TPR ...
GOAL_QUERIES = 1000  # ... at no more than this many target queries per candidate


def fpr_label(fpr: float) -> str:
    """``0.001`` -> ``"0.1%"``, ``0.01`` -> ``"1%"``: the suffix of the table's TPR columns."""
    return f"{fpr * 100:g}%"


@dataclass(frozen=True)
class Scored:
    """One attack's scores (higher = member) on its candidates, named by their index in the dataset."""

    sample_index: np.ndarray
    is_member: np.ndarray
    scores: np.ndarray


def low_fpr_metrics(is_member: np.ndarray, scores: np.ndarray, *, n_boot: int, seed: int) -> dict[str, float]:
    """AUC and TPR at each of :data:`LOW_FPRS`, each with its 95% percentile bootstrap interval (members and
    non-members resampled apart), as flat columns ``auc``, ``auc_low``, ``auc_high``, ``tpr@0.1%``, ..."""
    stats: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
        "auc": auc,
        **{f"tpr@{fpr_label(f)}": partial(tpr_at_fpr, fpr=f) for f in LOW_FPRS},
    }
    row: dict[str, float] = {}
    for name, statistic in stats.items():
        iv = bootstrap(is_member, scores, statistic, n_boot=n_boot, seed=seed)
        row.update({name: iv.value, f"{name}_low": iv.low, f"{name}_high": iv.high})
    return row


def matched(a: Scored, b: Scored) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(is_member, a's scores, b's scores)`` on the candidates both attacks scored, in ``a``'s order."""
    _, ia, ib = np.intersect1d(a.sample_index, b.sample_index, assume_unique=True, return_indices=True)
    order = np.argsort(ia)
    ia, ib = ia[order], ib[order]
    assert (a.is_member[ia] == b.is_member[ib]).all(), "one sample_index, two membership labels"
    return a.is_member[ia], a.scores[ia], b.scores[ib]


def tpr_ratio(
    is_member: np.ndarray, scores: np.ndarray, reference: np.ndarray, *, fpr: float, n_boot: int, seed: int
) -> Interval:
    """TPR at ``fpr`` of ``scores`` over that of ``reference`` (same candidates), with a paired bootstrap interval.

    The score handed to :func:`~labelleak.metrics.bootstrap` is each candidate's row number, so one resample picks
    the same candidates for both attacks. The ratio is NaN where the reference finds no member; such resamples are
    left out of the interval."""

    def ratio(m: np.ndarray, rows: np.ndarray) -> float:
        idx = rows.astype(np.int64)
        ref = tpr_at_fpr(m, reference[idx], fpr)
        return tpr_at_fpr(m, scores[idx], fpr) / ref if ref > 0 else math.nan

    return bootstrap(is_member, np.arange(len(scores), dtype=np.float64), ratio, n_boot=n_boot, seed=seed)


def cost_row(entry: dict[str, Any], n_candidates: int) -> dict[str, Any]:
    """What an attack spent: target queries per candidate (mean and most), setup queries in all and per candidate,
    reference models (``n_reference`` in its results or its parameters) and wall time."""
    setup = int(entry.get("setup_queries") or 0)
    params = entry.get("params") or {}
    return {
        "queries_per_candidate": entry.get("queries_per_sample"),
        "max_queries_per_candidate": entry.get("max_queries_per_sample"),
        "setup_queries": setup,
        "setup_queries_per_candidate": setup / n_candidates if n_candidates else math.nan,
        "reference_models": entry.get("n_reference", params.get("n_reference")),
        "seconds": entry.get("seconds"),
    }


def ratio_rows(
    scored: dict[str, Scored], attacks: list[dict[str, Any]], *, n_boot: int, seed: int
) -> list[dict[str, Any]]:
    """Per attack other than online LiRA: its TPR and LiRA's at each low FPR on their common candidates, and the
    ratio with its paired interval; empty (with a warning) when the plan has no LiRA run."""
    lira = scored.get(REFERENCE_ATTACK)
    if lira is None:
        log.warning("lowfpr: no %r results, so no ratio to LiRA", REFERENCE_ATTACK)
        return []
    rows = []
    for a in attacks:
        if a["attack"] == REFERENCE_ATTACK:
            continue
        m, s, ref = matched(scored[a["attack"]], lira)
        row: dict[str, Any] = {
            "attack": a["attack"],
            "threat_model": a["threat_model"],
            "max_queries_per_candidate": a["max_queries_per_candidate"],
            "n_members": int(m.sum()),
            "n_nonmembers": int((~m).sum()),
        }
        for f in LOW_FPRS:
            iv = tpr_ratio(m, s, ref, fpr=f, n_boot=n_boot, seed=seed)
            label = fpr_label(f)
            row.update(
                {
                    f"tpr@{label}": tpr_at_fpr(m, s, f),
                    f"lira_tpr@{label}": tpr_at_fpr(m, ref, f),
                    f"ratio@{label}": iv.value,
                    f"ratio@{label}_low": iv.low,
                    f"ratio@{label}_high": iv.high,
                }
            )
        rows.append(row)
    return rows


def goal_rows(ratios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per low FPR: the label-only attack within :data:`GOAL_QUERIES` queries per candidate with the highest ratio
    to LiRA, and whether that ratio reaches :data:`GOAL_RATIO` (1% FPR: the goal; 0.1%: the stretch)."""
    rows = []
    for f in LOW_FPRS:
        label = fpr_label(f)
        eligible = [
            r
            for r in ratios
            if r["threat_model"] == "label-only"
            and (r["max_queries_per_candidate"] or 0) <= GOAL_QUERIES
            and not math.isnan(r[f"ratio@{label}"])
        ]
        best = max(eligible, key=lambda r: r[f"ratio@{label}"], default=None)
        ratio = best[f"ratio@{label}"] if best else math.nan
        rows.append(
            {
                "fpr": f,
                "best_label_only": best["attack"] if best else None,
                "max_queries_per_candidate": best["max_queries_per_candidate"] if best else None,
                "n_members": best["n_members"] if best else None,
                "n_nonmembers": best["n_nonmembers"] if best else None,
                "tpr": best[f"tpr@{label}"] if best else math.nan,
                "lira_tpr": best[f"lira_tpr@{label}"] if best else math.nan,
                "ratio": ratio,
                "ratio_low": best[f"ratio@{label}_low"] if best else math.nan,
                "ratio_high": best[f"ratio@{label}_high"] if best else math.nan,
                "goal_ratio": GOAL_RATIO,
                "goal_queries": GOAL_QUERIES,
                "met": bool(ratio >= GOAL_RATIO),
            }
        )
    return rows


def summarize_lowfpr(records: list[RunRecord], out: Path) -> Summary:
    """Tables ``lowfpr`` (per attack: TPR at 0.1% / 1% FPR and AUC with intervals, cost), ``lira_ratio`` (per
    attack: TPR over online LiRA's on the same candidates) and ``goal`` (the best label-only attack per FPR), and
    ``roc_lowfpr.png`` (every attack's ROC on log-log axes)."""
    scored: dict[str, Scored] = {}
    rows: list[dict[str, Any]] = []
    boot = {"n_boot": 200, "seed": 0}
    for r in records:
        cfg = r.results.get("config", {})
        run_boot = {"n_boot": int(cfg.get("n_boot", 200)), "seed": int(cfg.get("seed", 0))}
        for attack, entry in r.results["attacks"].items():
            name = attack if attack not in scored else f"{attack} ({r.group})"
            s = Scored(r.arrays["sample_index"], r.arrays["is_member"].astype(bool), r.attack_arrays(attack)["scores"])
            scored[name] = s
            if attack == REFERENCE_ATTACK:
                boot = run_boot  # the ratios are bootstrapped as LiRA's own numbers were
            rows.append(
                {
                    "attack": name,
                    "threat_model": entry.get("threat_model"),
                    "group": r.group,
                    "n_members": int(s.is_member.sum()),
                    "n_nonmembers": int((~s.is_member).sum()),
                    **low_fpr_metrics(s.is_member, s.scores, **run_boot),
                    **cost_row(entry, len(s.scores)),
                }
            )
    ratios = ratio_rows(scored, rows, **boot)
    fig = plot_roc_loglog(
        {name: (s.is_member, s.scores) for name, s in scored.items()},
        out / "roc_lowfpr.png",
        title="membership inference at low FPR",
        marks=LOW_FPRS,
    )
    return {"lowfpr": rows, "lira_ratio": ratios, "goal": goal_rows(ratios) if ratios else []}, [fig]
