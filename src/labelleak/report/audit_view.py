"""What an audit's page says, built from ``results.json`` and ``scores.csv``: the verdict, the table, the figures
and how it was measured. Anything an older results file lacks is listed in ``missing``, never guessed."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from labelleak.counts import resolution
from labelleak.report import figures
from labelleak.report.markdown import fmt_number
from labelleak.report.notes import audit_notes
from labelleak.report.records import exposed_context
from labelleak.report.summary import applicable_settings, summary_context
from labelleak.report.verdict import verdict_context

THREAT_MODELS = {
    "label-only": "sees only the predicted label of each query (the threat model this audit is about)",
    "scores": "sees the target's output scores (probabilities): a stronger threat model than label-only",
    "white-box": "reads the target's weights and gradients: the strongest threat model, a reference only",
}
FPRS = (("0.001", "1 false alarm in 1,000"), ("0.01", "1 false alarm in 100"))


def read_scores(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``scores.csv`` as ``{attack: (is_member, score)}``."""
    cols: dict[str, tuple[list[bool], list[float]]] = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            m, s = cols.setdefault(row["attack"], ([], []))
            m.append(row["is_member"] == "1")
            s.append(float(row["score"]))
    return {name: (np.asarray(m, bool), np.asarray(s, float)) for name, (m, s) in cols.items()}


def _pct(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:.1f}%"


def _tpr(entry: dict[str, Any], key: str) -> float | None:
    """The TPR at FPR ``key``, ``None`` where the non-members cannot resolve it (older results stored a number)."""
    value = (entry.get("tpr_at_fpr") or {}).get(key)
    return value if resolution(entry.get("n_nonmembers") or 0, float(key)).point else None


def _rank(entry: dict[str, Any]) -> tuple[float, float, float]:
    """Strongest = highest TPR at 1% FPR, then at 0.1% FPR, then AUC (missing values rank last)."""
    a, b, c = (
        -1.0 if v is None or v != v else float(v) for v in (_tpr(entry, "0.01"), _tpr(entry, "0.001"), entry.get("auc"))
    )
    return a, b, c


def _point(entry: dict[str, Any], key: str, words: str) -> tuple[dict[str, Any], str]:
    """One FPR of the verdict: the TPR and its exact interval where the candidates resolve them, and a sentence
    that says what it is, or how many non-members it would need."""
    res = resolution(entry.get("n_nonmembers") or 0, float(key))
    value, exact = _tpr(entry, key), (entry.get("tpr_at_fpr_exact") or {}).get(key)
    lo, hi = exact["tpr_ci"] if exact else (None, None)
    at = f"At {words} ({_pct(float(key))} FPR)"
    if value is None:
        note = f"{res.point_needs:,} non-members needed, {res.n_nonmembers:,} here"
        sentence = f"{at}: not measurable here; {res.reason()}."
    elif exact is None:
        note = (
            f"{res.interval_needs:,} non-members needed, {res.n_nonmembers:,} here"
            if not res.interval
            else "results.json predates exact intervals"
        )
        sentence = f"{at}, {_pct(value)} of members are exposed (no exact interval: {note})."
    else:  # the number and its interval come from one threshold: the calibration half's, tested on the rest
        note, roc = "", value
        value = exact["tpr"]
        f_lo, f_hi = exact["fpr_ci"]
        sentence = (
            f"{at}, {_pct(value)} of members are exposed (95% exact interval {_pct(lo)} to {_pct(hi)}; the "
            f"threshold flags {_pct(exact['fpr'])} of {exact['n_evaluation']} held-out non-members, "
            f"{_pct(f_lo)} to {_pct(f_hi)}; the ROC curve over all {res.n_nonmembers:,} non-members reads "
            f"{_pct(roc)})."
        )
    return {"fpr": key, "words": words, "tpr": value, "low": lo, "high": hi, "note": note}, sentence


def headline(name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """One attack's verdict: TPR at 0.1% and 1% FPR with exact intervals, in plain words."""
    points, sentences = [], []
    for key, words in FPRS:
        point, sentence = _point(entry, key, words)
        points.append(point)
        sentences.append(sentence)
    low_1 = points[1]["low"]
    auc_low = (entry.get("auc_ci") or [None])[0]
    if low_1 is not None and low_1 > 0.1:
        level = "Members are clearly exposed"
    elif low_1 is not None and low_1 > 0.01:
        level = "Membership leaks measurably"
    elif auc_low is not None and auc_low > 0.5:  # wording follows the intervals: no member shown exposed
        level = "Membership leaks on average (AUC above chance), but no member is shown exposed at low FPR"
    else:
        level = "No leakage measurable above chance"
    return {
        "attack": name,
        "threat_model": entry.get("threat_model", "?"),
        "level": level,
        "auc": fmt_number(entry.get("auc")),
        "auc_ci": [fmt_number(v) for v in (entry.get("auc_ci") or [None, None])],
        "points": points,
        "sentences": sentences,
    }


def verdict(attacks: dict[str, dict[str, Any]], *, strongest: str | None = None) -> dict[str, Any]:
    """The strongest label-only attack and, apart, the strongest score-based one.

    ``strongest`` is the verdict's (``results["verdict"]["strongest_attack"]``, ranked by eps_LB): where it is of a
    threat model, that model's headline is about it, so the headline and the verdict never name different
    attacks; otherwise the highest TPR at 1% FPR, then at 0.1%, then AUC."""
    found: dict[str, Any] = {}
    for threat in ("label-only", "scores"):
        ran = {n: e for n, e in attacks.items() if e.get("threat_model") == threat}
        if ran:
            best = strongest if strongest in ran else max(ran, key=lambda n: _rank(ran[n]))
            found[threat] = headline(best, ran[best])
    return found


def table_rows(attacks: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-attack table, every number as display text."""
    rows = []
    for name, e in attacks.items():
        ci = e.get("auc_ci") or [None, None]
        statuses = ", ".join(f"{k} {v}" for k, v in (e.get("status_counts") or {}).items() if v)
        rows.append(
            {
                "attack": name,
                "threat": e.get("threat_model", "?"),
                "auc": fmt_number(e.get("auc")),
                "auc_ci": f"[{fmt_number(ci[0])}, {fmt_number(ci[1])}]",
                "tpr": [fmt_number(_tpr(e, k)) for k in ("0.001", "0.01", "0.1")],
                "bal_acc": fmt_number(e.get("balanced_accuracy")),
                "threshold_source": e.get("threshold_source", "?"),
                "queries": fmt_number(e.get("queries_per_sample"), 1),
                "seconds": fmt_number(e.get("seconds"), 2),
                "statuses": statuses or "n/a",
            }
        )
    return rows


def query_spend(results: dict[str, Any]) -> dict[str, Any]:
    """Queries sent to the target: per attack (candidates, setup, data-free threshold) and in total."""
    rows, total = [], 0
    for name, e in results.get("attacks", {}).items():
        if e.get("threat_model") != "label-only":
            continue
        n = (e.get("n_members") or 0) + (e.get("n_nonmembers") or 0)
        candidates = round((e.get("queries_per_sample") or 0) * n)
        setup = int(e.get("setup_queries") or 0)
        noise = int((e.get("data_free") or {}).get("noise_queries") or 0)
        rows.append({"attack": name, "candidates": candidates, "setup": setup, "data_free": noise})
        total += candidates + setup + noise
    return {"rows": rows, "total": total}


def _figures(results: dict[str, Any], folder: Path, missing: list[str]) -> dict[str, str]:
    attacks = results.get("attacks", {})
    out: dict[str, str] = {}
    scores_csv = folder / "scores.csv"
    if scores_csv.is_file():
        scores = {n: v for n, v in read_scores(scores_csv).items() if n in attacks}
        curves = {n: (m, s, attacks[n].get("threat_model") == "label-only") for n, (m, s) in scores.items()}
        out["roc"] = figures.roc_loglog(curves)
        out["histograms"] = figures.histograms({n: (s[m], s[~m]) for n, (m, s) in scores.items()})
    else:
        missing.append("scores.csv is not in the folder: no ROC curves and no score histograms")
    series = {n: e["by_queries"] for n, e in attacks.items() if e.get("by_queries")}
    if series:
        out["queries"] = figures.by_queries(series)
    sweeps = {
        n: (e["data_free"]["sweep"], e.get("balanced_accuracy"))
        for n, e in attacks.items()
        if (e.get("data_free") or {}).get("sweep")
    }
    if sweeps:
        out["sweep"] = figures.threshold_sweep(sweeps)
    return out


def _measured(results: dict[str, Any], missing: list[str]) -> dict[str, Any]:
    prov = results.get("provenance")
    if prov is None:
        missing.append(
            "results.json predates provenance records: library versions, machine, file hashes and finishing "
            "time are unknown"
        )
        prov = {}
    if "seconds_total" not in results:
        missing.append("the audit's wall time is not recorded")
    config = results.get("config", {})
    settings, not_shown = applicable_settings(results)
    return {
        "threats": {
            t: {
                "meaning": THREAT_MODELS.get(t, "?"),
                "attacks": [n for n, e in results["attacks"].items() if e.get("threat_model") == t],
            }  # fmt: skip
            for t in dict.fromkeys(e.get("threat_model", "?") for e in results.get("attacks", {}).values())
        },
        "target": results.get("target", {}),
        "target_known": {k: v for k, v in results.get("target", {}).items() if v is not None},  # None: not known
        "shadow": results.get("shadow", {}),
        "split": results.get("split", {}),
        "dataset": results.get("dataset", {}),
        "config": config,
        "settings": settings,  # those that apply to this kind of target, its attacks and backend
        "settings_not_shown": not_shown,
        "seed": config.get("seed"),
        "attack_params": {n: e.get("params") or {} for n, e in results.get("attacks", {}).items()},
        "spend": query_spend(results),
        "seconds_total": results.get("seconds_total"),
        "provenance": prov,
        "labelleak_version": prov.get("labelleak_version") or results.get("labelleak_version"),
    }


def audit_context(results: dict[str, Any], folder: Path, *, source: str = "results.json") -> dict[str, Any]:
    """Everything the audit template shows."""
    missing: list[str] = []
    attacks = results.get("attacks", {})
    config, target = results.get("config", {}), results.get("target", {})
    target_name = target.get("arch") or (Path(target["model"]).name if target.get("model") else None)
    target_name = target_name or config.get("target") or "?"
    own = results.get("dataset", {}).get("name", "?") in ("own-files", "own-arrays")
    subject = Path(target["model"]).name if own and target.get("model") else results.get("dataset", {}).get("name", "?")
    context = {
        "kind": "audit",
        "source": source,
        "dataset_name": results.get("dataset", {}).get("name", "?"),
        "title": config.get("title") or f"Membership-inference audit: {subject}",
        "auditor": config.get("auditor"),
        "finished_at": (results.get("provenance") or {}).get("finished_at"),
        "target_name": target_name,
        "target_sha": ((results.get("provenance") or {}).get("sha256", {}).get("model") or {}).get("sha256"),
        "utility": results.get("utility"),
        "notes": audit_notes(results),  # a total cap, the target's accuracy on the candidates
        "verdict": verdict(attacks, strongest=(results.get("verdict") or {}).get("strongest_attack")),
        "summary": summary_context(results, folder),  # the risk in words, the threat model, what to do
        "dp": verdict_context(results),  # risk level, eps_LB, the claim, the one-run bound, the slices
        "exposed": exposed_context(results, folder),  # the members flagged, the most exposed ones
        "rows": table_rows(attacks),
        "figures": _figures(results, folder, missing),
        "measured": _measured(results, missing),
        "missing": missing,
        "fmt": fmt_number,
        "pct": _pct,
    }
    if any("tpr_at_fpr_exact" not in e for e in attacks.values()):
        missing.append(
            "results.json predates exact TPR intervals: its bootstrap intervals of TPR at low FPR are not shown"
        )
    if not context["verdict"].get("label-only"):
        missing.append("no label-only attack ran: the verdict covers the stronger threat models only")
    return context
