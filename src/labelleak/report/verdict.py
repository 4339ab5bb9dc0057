"""The auditor's verdict in ``results.json``: each attack's epsilon lower bound and slices, and the audit's
machine-readable ``verdict`` (risk level, eps_LB, strongest attack, claim check), so CI can fail a release on it.

The maths is in :mod:`labelleak.epsilon`, :mod:`labelleak.risk` and :mod:`labelleak.slices`; this module reads the
audit's entries and raw arrays and writes the keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from labelleak.attacks import Status
from labelleak.counts import resolution
from labelleak.epsilon import (
    DEFAULT_CONFIDENCE,
    DEFAULT_DELTA,
    EpsilonBound,
    bonferroni_confidence,
    check_claim,
    epsilon_lower_bound,
)
from labelleak.metrics import exact_tpr_at_fpr, key_order
from labelleak.one_run import ASSUMPTION, one_run_bound, selection_half, tune
from labelleak.risk import risk_level
from labelleak.slices import SLICE_FPR, slice_metrics

BONFERRONI = "Bonferroni over the attacks: each attack's bound at confidence 1 - (1 - confidence) / attacks"
TargetKind = Literal["trained", "model-file", "remote", "python"]
RANDOM_SPLIT = (
    "labelleak drew the members at random: a seeded shuffle of the pool, cut into members and non-members, so "
    "which candidates are members is random and the target was trained once on them. The cut has fixed sizes "
    "rather than a coin flip per candidate: with no leakage, the variance of the correct count is then at most "
    "m / (m - 1) times that of independent coins, which the bound does not correct for"
)
COIN_SPLIT = (
    "each of the {m} canaries was put in the training set by its own fair coin, independently of the others, and "
    "the target was trained once: the game of the theorem, on the canaries alone"
)
OWN_SPLIT = {
    "model-file": "the members are the model owner's training rows, not known to have been drawn at random",
    "remote": "the members are the remote target's training rows, not known to have been drawn at random",
    "python": "the members are the caller's training rows, not known to have been drawn at random",
}


def prediction_groups(status: np.ndarray) -> np.ndarray:
    """``correct`` / ``wrong`` per candidate from the statuses of an attack that labels each one once (``ok`` /
    ``misclassified``); ``None`` for a candidate it did not label (``budget_hit``)."""
    groups = np.full(len(status), None, dtype=object)
    groups[status == Status.OK] = "correct"
    groups[status == Status.MISCLASSIFIED] = "wrong"
    return groups


def attack_slices(
    is_member: np.ndarray, scores: np.ndarray, labels: np.ndarray | None, correct: tuple[str, np.ndarray] | None
) -> dict[str, Any]:
    """AUC and TPR at 1% FPR per class and per correctly / wrongly classified candidate, with counts."""
    out: dict[str, Any] = {"fpr": SLICE_FPR}
    if labels is not None:
        out["by_class"] = slice_metrics(is_member, scores, np.asarray(labels).astype(np.int64))
    if correct is not None:
        out["by_prediction"] = slice_metrics(is_member, scores, correct[1])
        out["prediction_source"] = correct[0]
    else:
        out["by_prediction_na"] = "no attack labelled every candidate once (gap does)"
    return out


def _tpr_low(is_member: np.ndarray, scores: np.ndarray, level: float, seed: int) -> float | None:
    """The lower bound of TPR at 1% FPR at ``level`` (``None`` where the non-members cannot resolve it)."""
    if not resolution(int((~is_member).sum()), SLICE_FPR).interval or not is_member.any():
        return None
    return exact_tpr_at_fpr(is_member, scores, SLICE_FPR, level=level, seed=seed).tpr.low


def _claim(config: dict[str, Any], audit: EpsilonBound | None, delta: float) -> dict[str, Any] | None:
    claimed = config.get("claimed_epsilon")
    if claimed is None or audit is None:
        return None
    return check_claim(audit, float(claimed), delta, confidence=DEFAULT_CONFIDENCE).to_dict()  # Bonferroni'd


def target_kind(results: dict[str, Any]) -> TargetKind:
    """How the target came: trained by labelleak, a model file, a remote service, or a Python object."""
    dataset, target = results.get("dataset", {}).get("name"), results.get("target", {})
    if target.get("url") or dataset == "remote":
        return "remote"
    if target.get("model") or dataset == "own-files":
        return "model-file"
    return "python" if dataset == "own-arrays" else "trained"


def one_run_verdict(
    results: dict[str, Any],
    finished: dict[str, dict[str, np.ndarray]],
    m: np.ndarray,
    *,
    delta: float,
    seed: int,
    canary: np.ndarray | None = None,
) -> dict[str, Any]:
    """``verdict["one_run"]``: the one-run bound of the label-only attack whose tuned rule leaks most on the
    selection half, counted once on the evaluation half; on the ``canary`` candidates alone when the audit has
    canaries (each a member by its own coin), else on every candidate. For a split labelleak did not draw, the
    number is kept apart (``eps_lb_if_random``) and ``eps_lb`` is ``None``: the assumption is not known to hold."""
    kind = target_kind(results)
    rows = np.flatnonzero(canary) if canary is not None and np.any(canary) else np.arange(len(m))
    base: dict[str, Any] = {
        "assumption": ASSUMPTION,
        "applies": kind == "trained",
        "split": (COIN_SPLIT.format(m=len(rows)) if len(rows) < len(m) else RANDOM_SPLIT)
        if kind == "trained"
        else OWN_SPLIT[kind],
        "candidates": "canaries" if len(rows) < len(m) else "all",
        "accountant_epsilon": results.get("target", {}).get("epsilon"),
    }
    names = [n for n in finished if results["attacks"].get(n, {}).get("threat_model") == "label-only"]
    if not names:
        return {**base, "attack": None, "eps_lb": None, "na": "no label-only attack ran"}
    coins = len(rows) < len(m)  # canaries: each its own coin, halved blind to membership and never balanced
    m = m[rows]
    chosen = selection_half(m, seed, coins=coins)
    scores = {n: np.asarray(finished[n]["scores"], np.float64)[rows] for n in names}
    tuned = {n: tune(m[chosen], scores[n][chosen], seed=seed, coins=coins) for n in names}
    best = max(names, key=lambda n: tuned[n].selection_eps)  # the first of equals, in the audit's order
    bound = one_run_bound(m, scores[best], delta=delta, seed=seed, tuned=tuned[best], coins=coins).to_dict()
    out = {**base, "attack": best, **bound, "selection_eps_by_attack": {n: t.selection_eps for n, t in tuned.items()}}
    if not out["applies"]:
        out["eps_lb_if_random"], out["eps_lb"] = out["eps_lb"], None
        out["na"] = out["na"] or f"not a DP bound for this target: {out['split']}"
    return out


def _compared(results: dict[str, Any], finished: dict[str, dict[str, np.ndarray]]) -> list[str]:
    """The attacks the verdict compares: the label-only ones, the threat model labelleak audits; score-based
    attacks only when no label-only attack ran (the verdict's ``threat_model`` then says so), so a score attack
    never speaks for what the labels alone reveal."""
    ran = [n for n in finished if n in results.get("attacks", {})]
    label_only = [n for n in ran if results["attacks"][n].get("threat_model") == "label-only"]
    return label_only or ran


def audit_verdict(
    results: dict[str, Any],
    finished: dict[str, dict[str, np.ndarray]],
    *,
    is_member: np.ndarray,
    canary: np.ndarray | None = None,
) -> dict[str, Any]:
    """``results["verdict"]``: the audit-wide eps_LB (Bonferroni over the attacks compared), the strongest attack,
    the risk level and the claim check, at the config's ``claimed_delta`` and 95% confidence; the one-run bound on
    the ``canary`` candidates when there are some."""
    config = results.get("config", {})
    delta = float(config.get("claimed_delta", DEFAULT_DELTA))
    seed = int(config.get("seed", 0))
    m = np.asarray(is_member, dtype=bool)
    names = _compared(results, finished)
    level = bonferroni_confidence(DEFAULT_CONFIDENCE, max(len(names), 1))
    bounds = {n: epsilon_lower_bound(m, finished[n]["scores"], delta=delta, confidence=level, seed=seed) for n in names}
    tprs = {n: _tpr_low(m, np.asarray(finished[n]["scores"], np.float64), level, seed) for n in names}
    aucs = [(results["attacks"][n].get("auc_ci") or [None])[0] for n in names]

    def rank(n: str) -> tuple[float, float, float]:
        return bounds[n].eps_lb, tprs[n] or -1.0, results["attacks"][n].get("auc") or -1.0

    best = max(names, key=rank) if names else None
    audit = bounds[best] if best is not None else None
    eps = audit.eps_lb if audit is not None else 0.0
    tpr_low = max((t for t in tprs.values() if t is not None), default=None)
    auc_low = max((a for a in aucs if a is not None and a == a), default=None)
    risk, why = risk_level(eps, tpr_low, auc_low)
    limit = config.get("fail_above_epsilon")
    return {
        "risk_level": risk,
        "risk_reason": why,
        "eps_lb": eps,
        "strongest_attack": best,
        "threat_model": results["attacks"][best].get("threat_model") if best is not None else None,
        "delta": delta,
        "confidence": DEFAULT_CONFIDENCE,
        "attacks_compared": len(names),
        "compared": names,
        "per_attack_confidence": level,
        "per_attack_eps_lb": {n: bounds[n].eps_lb for n in names},
        "correction": BONFERRONI,
        "tpr_at_1pct_fpr_low": tpr_low,
        "auc_low": auc_low,
        "n_candidates": int(len(m)),
        "n_evaluation": (audit.n_members + audit.n_nonmembers) if audit is not None else 0,
        "bound": audit.to_dict() if audit is not None else None,
        "claim": _claim(config, audit, delta),
        "one_run": one_run_verdict(results, finished, m, delta=delta, seed=seed, canary=canary),
        "fail_above_epsilon": limit,
        "fails": None if limit is None else bool(eps > float(limit)),
    }


def add_verdict(
    results: dict[str, Any],
    finished: dict[str, dict[str, np.ndarray]],
    *,
    is_member: np.ndarray,
    labels: np.ndarray | None,
    canary: np.ndarray | None = None,
    keys: np.ndarray | None = None,
) -> None:
    """Write each attack's ``epsilon`` (at 95%, uncorrected) and ``slices`` into ``results["attacks"]`` and the
    audit's ``results["verdict"]``; ``labels`` are the candidates' true classes (``None``: no class slices).

    ``keys`` (one stable key per candidate, e.g. its content key) puts the candidates in key order first, so that
    the selection and evaluation halves, the balancing draws and the ties' order, and with them every bound, do not
    depend on the order the candidates came in (as :func:`labelleak.metrics.summarize` does with its ``keys``)."""
    if keys is not None:
        is_member, labels, canary, finished = _in_key_order(keys, is_member, labels, canary, finished)
    config = results.get("config", {})
    delta = float(config.get("claimed_delta", DEFAULT_DELTA))
    seed = int(config.get("seed", 0))
    m = np.asarray(is_member, dtype=bool)
    source = next((n for n, e in results["attacks"].items() if "candidate_accuracy" in e and n in finished), None)
    correct = (source, prediction_groups(np.asarray(finished[source]["status"]))) if source is not None else None
    for name, arrays in finished.items():
        if name not in results["attacks"]:
            continue
        scores = np.asarray(arrays["scores"], dtype=np.float64)
        bound = epsilon_lower_bound(m, scores, delta=delta, confidence=DEFAULT_CONFIDENCE, seed=seed)
        results["attacks"][name]["epsilon"] = bound.to_dict()
        results["attacks"][name]["slices"] = attack_slices(m, scores, labels, correct)
    results["verdict"] = audit_verdict(results, finished, is_member=m, canary=canary)


def _in_key_order(
    keys: np.ndarray,
    is_member: np.ndarray,
    labels: np.ndarray | None,
    canary: np.ndarray | None,
    finished: dict[str, dict[str, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, dict[str, dict[str, np.ndarray]]]:
    """Every per-candidate array in the order of ``keys`` (stable: equal keys keep their order)."""
    n = len(is_member)
    order = key_order(keys, n, who="verdict")

    def permuted(a: Any) -> Any:
        return np.asarray(a)[order] if np.ndim(a) >= 1 and len(a) == n else a

    ordered = {name: {key: permuted(a) for key, a in arrays.items()} for name, arrays in finished.items()}
    return (
        np.asarray(is_member)[order],
        None if labels is None else np.asarray(labels)[order],
        None if canary is None else np.asarray(canary)[order],
        ordered,
    )


def verdict_line(results: dict[str, Any]) -> str | None:
    """The verdict in one line (risk level, eps_LB with what it rests on, strongest attack, claim); ``None`` for
    results written before verdicts existed."""
    v = results.get("verdict")
    if not v:
        return None
    strongest = v.get("strongest_attack") or "none"
    text = (
        f"verdict: risk {v['risk_level']} ({v['risk_reason']}); eps_LB {v['eps_lb']:.3f} at delta {v['delta']:g}, "
        f"{v['confidence']:.0%} confidence ({v['n_evaluation']} of {v['n_candidates']} candidates, "
        f"{v['attacks_compared']} attack(s) compared); strongest attack {strongest}"
    )
    claim = v.get("claim")
    if claim:
        said = "refuted" if claim["refuted"] else "not refuted"
        text += f"; claim eps {claim['epsilon']:g} (delta {claim['delta']:g}) {said}"
    if v.get("fails"):
        text += f"; above --fail-above-epsilon {v['fail_above_epsilon']:g}"
    return text


def report_line(results: dict[str, Any]) -> str:
    """Where ``report.html`` is (or why it is not)."""
    path = Path(str(results.get("config", {}).get("out", "."))) / "report.html"
    return f"report: {path}" if path.is_file() else f"report: not written ({path}); labelleak report builds it"


def _slice_rows(slices: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per group, most leaky (highest AUC) first within classes and within predictions."""
    rows = []
    for kind, key in (("class", "by_class"), ("prediction", "by_prediction")):
        groups = slices.get(key) or {}
        for group, g in sorted(groups.items(), key=lambda kv: -(kv[1].get("auc") or -1.0)):
            na = g.get("na") or {}
            rows.append({"kind": kind, "group": group, **g, "why": "; ".join(dict.fromkeys(na.values()))})
    return rows


def verdict_context(results: dict[str, Any]) -> dict[str, Any] | None:
    """What the report's verdict section shows: the verdict, each attack's eps_LB with its counts, and the
    slices of the strongest attack; ``None`` for results written before verdicts existed."""
    v = results.get("verdict")
    if not v:
        return None
    attacks = results.get("attacks", {})
    corrected = v.get("per_attack_eps_lb") or {}
    rows = [
        {"attack": n, **e["epsilon"], "eps_lb_audit": corrected.get(n)} for n, e in attacks.items() if e.get("epsilon")
    ]
    best = v.get("strongest_attack")
    slices = (attacks.get(best) or {}).get("slices") or {}
    return {
        "v": v,
        "line": verdict_line(results),
        "epsilon_rows": rows,
        "slice_attack": best,
        "slice_rows": _slice_rows(slices),
        "slice_na": slices.get("by_prediction_na"),
    }
