"""The summary of ``labelleak reproduce lowfpr``: attacks judged at low false-positive rates (issue 16).

Since Carlini et al. (S&P 2022) an attack is judged by its TPR at 0.1% and 1% FPR rather than by its AUC. Per
attack this module reports those TPRs with their exact (Clopper-Pearson) intervals and the AUC with its percentile
bootstrap interval, recomputed from the scores in ``arrays.npz`` with :func:`labelleak.metrics.summarize` and the
audit's ``n_boot`` and ``seed`` (so they equal the audit's ``results.json``; a TPR its candidates cannot resolve is
``None`` there and here), and the attack's cost: target queries per candidate, setup queries (inputs that belong to
no candidate, such as labelling the adversary's data) apart, reference models and wall time.

The plan's attacks need not see the same candidates (boundary searches see fewer at CPU scale), so each attack is
compared with online LiRA on the candidates both scored, matched by their ``sample_index``. The interval of the
ratio of their TPRs combines the two exact intervals (Bonferroni, each at 97.5%), and the project goal is judged
on that interval (:func:`labelleak.verdicts.verdict`): met, not met or inconclusive.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labelleak.attacks.registry import RATIO_REFERENCE
from labelleak.counts import resolution
from labelleak.data.layout import trained_layout
from labelleak.logs import get_logger
from labelleak.metrics import DEFAULT_N_BOOT, Interval, exact_tpr_at_fpr, summarize, tpr_at_fpr
from labelleak.report.figures import plot_roc_loglog
from labelleak.verdicts import verdict

if TYPE_CHECKING:
    from labelleak.report.summaries import RunRecord, Summary

log = get_logger(__name__)

LOW_FPRS = (0.001, 0.01)  # the FPRs the experiment reports (Carlini et al.'s)
GOAL_RATIO = 0.5  # issue 16: a label-only attack with at least half of LiRA's TPR ...
GOAL_QUERIES = 1000  # ... at no more than this many target queries per candidate


def fpr_label(fpr: float) -> str:
    """``0.001`` -> ``"0.1%"``, ``0.01`` -> ``"1%"``: the suffix of the table's TPR columns."""
    return f"{fpr * 100:g}%"


# ``tpr@0.1%``, ``lira_tpr@1%``, ``ratio@1%_low``, and a defense matrix's ``boundary-hsja.tpr@0.1%_roc``
_RATE_COLUMN = re.compile(r"^(?:[\w-]+\.)?(?:lira_)?(?:tpr|ratio)@(?P<pct>[0-9.]+)%(?P<bound>_low|_high)?(?:_roc)?$")


def mask_unresolved(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with ``None`` in each rate column (``tpr@0.1%``, ``ratio@1%_low``, ``gap.tpr@1%``, ...) its
    ``n_nonmembers`` cannot resolve: a value below ``1/x`` non-members, a bound below ``2/x``. Summaries written
    before the rule printed such numbers; rows without ``n_nonmembers`` are returned as they are."""
    n_non = row.get("n_nonmembers")
    if not isinstance(n_non, int):
        return row
    masked = dict(row)
    for column in row:
        match = _RATE_COLUMN.match(column)
        if match:
            res = resolution(n_non, float(match["pct"]) / 100)
            if not (res.interval if match["bound"] else res.point):
                masked[column] = None
    return masked


def _config_nonmembers(config: dict[str, Any]) -> int | None:
    """The non-member candidates of an audit labelleak trained the target of (canaries aside: their coins are
    not in the config, so the count is a lower bound, which masks more); ``None`` for the auditor's own data."""
    if config.get("members") or config.get("nonmembers") or not isinstance(config.get("train_size"), int):
        return None
    return trained_layout(
        config["train_size"], config.get("test_size"), config.get("shadow_size"), config.get("eval_size")
    ).nonmembers


def _run_nonmembers(summary: dict[str, Any]) -> int | None:
    """The non-members every audit of ``summary`` had, where their configs agree, else ``None``: rows of older
    summaries lack ``n_nonmembers``, and which run a row came from is not in it."""
    sizes = {_config_nonmembers(r.get("config") or {}) for r in summary.get("runs", [])}
    (size,) = sizes if len(sizes) == 1 else (None,)
    return size


def _masked(row: dict[str, Any], fallback: int | None) -> dict[str, Any]:
    if fallback is None or isinstance(row.get("n_nonmembers"), int):
        return mask_unresolved(row)
    masked = mask_unresolved({**row, "n_nonmembers": fallback})
    return {k: row[k] if k == "n_nonmembers" else masked[k] for k in row}  # the row's own columns, as they were


def masked_tables(summary: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """``summary``'s tables as they may be printed: :func:`mask_unresolved` on every row, a row without its own
    ``n_nonmembers`` read with its runs' common number of non-members. ``summary.json`` keeps the raw values."""
    fallback = _run_nonmembers(summary)
    return {name: [_masked(row, fallback) for row in rows] for name, rows in summary.get("tables", {}).items()}


def held_out_point(entry: dict[str, Any], key: str) -> Any:
    """An attack's TPR at FPR ``key`` (``"0.01"``) as printed beside its exact interval: the calibration half's
    threshold's TPR, the number the interval is about; the ROC reading where ``results.json`` has no interval (or
    predates ``tpr_at_fpr_exact``); ``None`` where the candidates cannot resolve the FPR."""
    roc = (entry.get("tpr_at_fpr") or {}).get(key)
    exact = (entry.get("tpr_at_fpr_exact") or {}).get(key)
    has_interval = (entry.get("tpr_at_fpr_ci") or {}).get(key) is not None
    return exact["tpr"] if exact and has_interval and roc is not None else roc


@dataclass(frozen=True)
class Scored:
    """One attack's scores (higher = member) on its candidates, named by their index in the dataset."""

    sample_index: np.ndarray
    is_member: np.ndarray
    scores: np.ndarray


def low_fpr_metrics(
    is_member: np.ndarray, scores: np.ndarray, *, n_boot: int, seed: int, keys: np.ndarray | None = None
) -> dict[str, Any]:
    """AUC with its 95% percentile bootstrap interval and TPR at each of :data:`LOW_FPRS` with its exact 95%
    interval, as flat columns ``auc``, ``auc_low``, ``auc_high``, ``tpr@0.1%``, ...: the audit's own numbers. A
    TPR or interval the candidates cannot resolve is ``None``, and ``tpr@0.1%_na`` says why.

    Where the interval exists, ``tpr@x`` is the TPR at the calibration half's threshold, the quantity the interval
    is about, and ``tpr@x_roc`` the ROC reading over all non-members (at a few hundred non-members the two can
    differ by more than the interval is wide); without an interval both are the ROC reading."""
    s = summarize(is_member, scores, fprs=LOW_FPRS, n_boot=n_boot, seed=seed, keys=keys)
    row: dict[str, Any] = {"auc": s["auc"], "auc_low": s["auc_ci"][0], "auc_high": s["auc_ci"][1]}
    for f in LOW_FPRS:
        key, name = f"{f:g}", f"tpr@{fpr_label(f)}"
        low, high = s["tpr_at_fpr_ci"][key] or (None, None)
        roc, exact = s["tpr_at_fpr"][key], s["tpr_at_fpr_exact"].get(key)
        point = exact["tpr"] if exact and low is not None else roc
        row.update({name: point, f"{name}_low": low, f"{name}_high": high, f"{name}_roc": roc})
        if key in s["tpr_at_fpr_na"]:
            row[f"{name}_na"] = s["tpr_at_fpr_na"][key]
    return row


def matched(a: Scored, b: Scored) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(is_member, a's scores, b's scores)`` on the candidates both attacks scored, in ``a``'s order."""
    _, ia, ib = np.intersect1d(a.sample_index, b.sample_index, assume_unique=True, return_indices=True)
    order = np.argsort(ia)
    ia, ib = ia[order], ib[order]
    assert (a.is_member[ia] == b.is_member[ib]).all(), "one sample_index, two membership labels"
    return a.is_member[ia], a.scores[ia], b.scores[ib]


def tpr_ratio(
    is_member: np.ndarray, scores: np.ndarray, reference: np.ndarray, *, fpr: float, seed: int, level: float = 0.95
) -> Interval | None:
    """TPR at ``fpr`` of ``scores`` over that of ``reference`` (same candidates, same calibration split), with an
    interval that holds at low counts; ``None`` where the candidates cannot resolve the FPR's exact interval.

    Each TPR gets its Clopper-Pearson interval at level ``1 - (1 - level) / 2``, so both hold together with
    probability at least ``level`` (Bonferroni), and the ratio lies in ``[low_a / high_ref, high_a / low_ref]``
    (``inf`` when the reference's low bound is 0). The point is the ratio of the two TPRs at the calibration
    half's thresholds, the quantities the intervals are about (NaN where the reference finds no member); the ROC
    readings' ratio is :func:`roc_ratio`."""
    if not resolution(int((~np.asarray(is_member, bool)).sum()), fpr).interval:
        return None
    each = 1.0 - (1.0 - level) / 2
    a = exact_tpr_at_fpr(is_member, scores, fpr, level=each, seed=seed).tpr
    ref = exact_tpr_at_fpr(is_member, reference, fpr, level=each, seed=seed).tpr
    value = a.value / ref.value if ref.value > 0 else math.nan
    high = a.high / ref.low if ref.low > 0 else math.inf
    return Interval(value, a.low / ref.high if ref.high > 0 else 0.0, high)


def roc_ratio(is_member: np.ndarray, scores: np.ndarray, reference: np.ndarray, *, fpr: float) -> float:
    """The ratio of the two ROC readings at ``fpr`` over all candidates (NaN where the reference finds none)."""
    point_ref = tpr_at_fpr(is_member, reference, fpr)
    return tpr_at_fpr(is_member, scores, fpr) / point_ref if point_ref > 0 else math.nan


def _held_out_tpr(is_member: np.ndarray, scores: np.ndarray, fpr: float, seed: int) -> float:
    """The TPR at the calibration half's threshold: the point of :func:`tpr_ratio`'s interval."""
    return exact_tpr_at_fpr(is_member, scores, fpr, seed=seed).tpr.value


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


def ratio_rows(scored: dict[str, Scored], attacks: list[dict[str, Any]], *, seed: int) -> list[dict[str, Any]]:
    """Per attack other than online LiRA: its TPR and LiRA's at each low FPR on their common candidates, and the
    ratio with its interval (:func:`tpr_ratio`); ``None`` where the candidates cannot resolve the FPR, and
    ``ratio@..._na`` says why. Empty (with a warning) when the plan has no LiRA run."""
    lira = scored.get(RATIO_REFERENCE)
    if lira is None:
        log.warning("lowfpr: no %r results, so no ratio to LiRA", RATIO_REFERENCE)
        return []
    rows = []
    for a in attacks:
        if a["attack"] == RATIO_REFERENCE:
            continue
        m, s, ref = matched(scored[a["attack"]], lira)
        n_non = int((~m).sum())
        row: dict[str, Any] = {
            "attack": a["attack"],
            "threat_model": a["threat_model"],
            "max_queries_per_candidate": a["max_queries_per_candidate"],
            "n_members": int(m.sum()),
            "n_nonmembers": n_non,
        }
        for f in LOW_FPRS:
            label, res = fpr_label(f), resolution(n_non, f)
            iv = tpr_ratio(m, s, ref, fpr=f, seed=seed)
            # with an interval, the points are the held-out thresholds' (what the interval is about); the ROC
            # readings over all non-members beside them in ``_roc``
            roc = {
                f"tpr@{label}_roc": tpr_at_fpr(m, s, f) if res.point else None,
                f"lira_tpr@{label}_roc": tpr_at_fpr(m, ref, f) if res.point else None,
                f"ratio@{label}_roc": roc_ratio(m, s, ref, fpr=f) if res.point else None,
            }
            row.update(
                {
                    f"tpr@{label}": _held_out_tpr(m, s, f, seed) if iv else roc[f"tpr@{label}_roc"],
                    f"lira_tpr@{label}": _held_out_tpr(m, ref, f, seed) if iv else roc[f"lira_tpr@{label}_roc"],
                    f"ratio@{label}": iv.value if iv else None,
                    f"ratio@{label}_low": iv.low if iv else None,
                    f"ratio@{label}_high": iv.high if iv else None,
                    **roc,
                }
            )
            if not res.interval:
                row[f"ratio@{label}_na"] = res.reason()
        rows.append(row)
    return rows


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not math.isnan(v)


def goal_rows(ratios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per low FPR: the label-only attack within :data:`GOAL_QUERIES` queries per candidate with the highest ratio
    to LiRA, and the verdict on the goal of a ratio of at least :data:`GOAL_RATIO` (1% FPR: the goal; 0.1%: the
    stretch): ``met`` only when the ratio's interval clears it, ``not met`` when the interval lies below it,
    ``inconclusive`` otherwise, or when no eligible attack has candidates enough to resolve the FPR."""
    rows = []
    for f in LOW_FPRS:
        label = fpr_label(f)
        eligible = [
            r
            for r in ratios
            if r["threat_model"] == "label-only"
            and (r["max_queries_per_candidate"] or 0) <= GOAL_QUERIES
            and _number(r[f"ratio@{label}"])
        ]
        best = max(eligible, key=lambda r: r[f"ratio@{label}"], default=None)
        low, high = (best[f"ratio@{label}_low"], best[f"ratio@{label}_high"]) if best else (None, None)
        found = verdict(low, high, GOAL_RATIO)
        na = None if best else _no_eligible(ratios, f)
        rows.append(
            {
                "fpr": f,
                "best_label_only": best["attack"] if best else None,
                "max_queries_per_candidate": best["max_queries_per_candidate"] if best else None,
                "n_members": best["n_members"] if best else None,
                "n_nonmembers": best["n_nonmembers"] if best else None,
                "tpr": best[f"tpr@{label}"] if best else None,
                "lira_tpr": best[f"lira_tpr@{label}"] if best else None,
                "ratio": best[f"ratio@{label}"] if best else None,
                "ratio_low": low,
                "ratio_high": high,
                "goal_ratio": GOAL_RATIO,
                "goal_queries": GOAL_QUERIES,
                "verdict": found,
                **({"na": na} if na else {}),
            }
        )
    return rows


def _no_eligible(ratios: list[dict[str, Any]], fpr: float) -> str:
    """Why no label-only attack could be judged at ``fpr``: the largest candidate set against what it needs."""
    label_only = [r for r in ratios if r["threat_model"] == "label-only"]
    if not label_only:
        return "no label-only attack ran"
    most = max(r["n_nonmembers"] for r in label_only)
    return resolution(most, fpr).reason() or f"no label-only attack within {GOAL_QUERIES:,} queries has a ratio"


def summarize_lowfpr(records: list[RunRecord], out: Path) -> Summary:
    """Tables ``lowfpr`` (per attack: TPR at 0.1% / 1% FPR and AUC with intervals, cost), ``lira_ratio`` (per
    attack: TPR over online LiRA's on the same candidates) and ``goal`` (the best label-only attack per FPR), and
    ``roc_lowfpr.png`` (every attack's ROC on log-log axes). TPRs, ratios and intervals the candidates cannot
    resolve are ``None`` (``n/a`` in the Markdown), with the reason in a ``..._na`` column."""
    scored: dict[str, Scored] = {}
    rows: list[dict[str, Any]] = []
    split_seed = 0
    for r in records:
        cfg = r.results.get("config", {})
        run_boot = {"n_boot": int(cfg.get("n_boot", DEFAULT_N_BOOT)), "seed": int(cfg.get("seed", 0))}
        for attack, entry in r.results["attacks"].items():
            name = attack if attack not in scored else f"{attack} ({r.group})"
            s = Scored(r.arrays["sample_index"], r.arrays["is_member"].astype(bool), r.attack_arrays(attack)["scores"])
            scored[name] = s
            if attack == RATIO_REFERENCE:
                split_seed = run_boot["seed"]  # the ratios split the non-members as LiRA's own numbers did
            rows.append(
                {
                    "attack": name,
                    "threat_model": entry.get("threat_model"),
                    "group": r.group,
                    "n_members": int(s.is_member.sum()),
                    "n_nonmembers": int((~s.is_member).sum()),
                    # in the audit's own key order (older runs saved none: the order they were drawn in)
                    **low_fpr_metrics(s.is_member, s.scores, **run_boot, keys=r.arrays.get("content_key")),
                    **cost_row(entry, len(s.scores)),
                }
            )
    ratios = ratio_rows(scored, rows, seed=split_seed)
    fig = plot_roc_loglog(
        {name: (s.is_member, s.scores) for name, s in scored.items()},
        out / "roc_lowfpr.png",
        title="membership inference at low FPR",
        marks=LOW_FPRS,
    )
    return {"lowfpr": rows, "lira_ratio": ratios, "goal": goal_rows(ratios) if ratios else []}, [fig]
