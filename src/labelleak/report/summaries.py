"""From the audits of one experiment to its tables and figures (one function per experiment kind).

Each function takes the finished runs and the output folder, and returns named tables (lists of flat rows,
written as CSV, Markdown and HTML by :mod:`labelleak.report.outputs`) and the figures it drew. Only numbers
already in the audits' ``results.json`` and ``arrays.npz`` are used: no attack runs here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labelleak.defenses import matrix_row, recommend
from labelleak.defenses.recommendation import annotate
from labelleak.metrics import DEFAULT_N_BOOT, bootstrap_auc, precision_recall
from labelleak.report.figures import plot_bars, plot_histograms, plot_pareto, plot_series
from labelleak.report.lowfpr import held_out_point, summarize_lowfpr


@dataclass
class RunRecord:
    """A finished audit of an experiment: its grid point and group, ``results.json`` and ``arrays.npz``."""

    point: dict[str, Any]
    group: str
    results: dict[str, Any]
    arrays: dict[str, np.ndarray]

    def attack_arrays(self, attack: str) -> dict[str, np.ndarray]:
        prefix = f"{attack}/"
        return {k[len(prefix) :]: v for k, v in self.arrays.items() if k.startswith(prefix)}


Tables = dict[str, list[dict[str, Any]]]
Summary = tuple[Tables, list[Path | None]]  # None: a figure skipped without the plots extra


def _attack_row(entry: dict[str, Any]) -> dict[str, Any]:
    lo, hi = entry.get("auc_ci") or [float("nan")] * 2
    # an FPR the candidates cannot resolve is None in results.json, and stays None (n/a) here
    t_lo, t_hi = (entry.get("tpr_at_fpr_ci") or {}).get("0.01") or [None, None]
    return {
        "threat_model": entry.get("threat_model"),
        "n_members": entry.get("n_members"),
        "n_nonmembers": entry.get("n_nonmembers"),
        "auc": entry["auc"],
        "auc_low": lo,
        "auc_high": hi,
        "tpr@1%": held_out_point(entry, "0.01"),  # the number its interval is about
        "tpr@1%_low": t_lo,
        "tpr@1%_high": t_hi,
        "tpr@1%_roc": entry["tpr_at_fpr"].get("0.01"),
        "tpr@0.1%": entry["tpr_at_fpr"].get("0.001"),
        "queries_per_sample": entry.get("queries_per_sample"),
        "seconds": entry.get("seconds"),
    }


def _target_row(results: dict[str, Any]) -> dict[str, Any]:
    t = results.get("target", {})
    return {"train_accuracy": t.get("train_accuracy"), "test_accuracy": t.get("test_accuracy")}


def _series(rows: list[dict[str, Any]], group: str, x: str, y: str) -> dict[str, tuple[list, list]]:
    """One (xs, ys) line per distinct value of ``rows[group]``, in order of first appearance."""
    names = list(dict.fromkeys(row[group] for row in rows))
    return {
        str(n): ([row[x] for row in rows if row[group] == n], [row[y] for row in rows if row[group] == n])
        for n in names
    }


def _metric_figures(
    rows: list[dict[str, Any]], out: Path, *, x: str, stem: str, xlabel: str, title: str
) -> list[Path | None]:
    """AUC and TPR@1%FPR of each attack against ``x``: ``auc_by_{stem}.png`` and ``tpr_by_{stem}.png``."""
    return [
        plot_series(
            _series(rows, "attack", x, metric),
            out / f"{prefix}_by_{stem}.png",
            xlabel=xlabel,
            ylabel=ylabel,
            title=f"{ylabel} against {title}",
        )
        for metric, prefix, ylabel in (("auc", "auc", "membership ROC AUC"), ("tpr@1%", "tpr", "TPR at 1% FPR"))
    ]


def summarize_sizes(records: list[RunRecord], out: Path) -> Summary:
    """Per training-set size: the target's accuracies and every attack's AUC and TPR@1%FPR with CIs."""
    rows = []
    for r in records:
        for name, entry in r.results["attacks"].items():
            rows.append(
                {"train_size": r.point["train_size"], **_target_row(r.results), "attack": name, **_attack_row(entry)}
            )
    rows.sort(key=lambda row: (row["train_size"], row["attack"]))
    figures = _metric_figures(
        rows, out, x="train_size", stem="size", xlabel="target training-set size", title="training-set size"
    )
    return {"sizes": rows}, figures


def summarize_queries(records: list[RunRecord], out: Path) -> Summary:
    """AUC and TPR at 0.1% / 1% FPR against queries per candidate, read from each attack's milestones."""
    rows = []
    for r in records:
        for name, entry in r.results["attacks"].items():
            for b in entry.get("by_queries", []):
                rows.append(
                    {
                        "attack": name,
                        "n_nonmembers": entry.get("n_nonmembers"),
                        "queries": b["queries"],
                        "auc": b["auc"],
                        "tpr@0.1%": b["tpr_at_0.001"],
                        "tpr@1%": b["tpr_at_0.01"],
                    }
                )
    figures = _metric_figures(
        rows, out, x="queries", stem="queries", xlabel="queries per candidate", title="the query budget"
    )
    return {"queries": rows}, figures


def summarize_norms(records: list[RunRecord], out: Path) -> Summary:
    """AUC of the perturbation found by each boundary attack, measured in L0, L1, L2 and Linf."""
    rows = []
    for r in records:
        for name, entry in r.results["attacks"].items():
            if "auc_by_norm" in entry:
                cis = entry.get("auc_ci_by_norm", {})  # absent in runs saved before intervals per norm
                row = {"attack": name}
                for k, v in entry["auc_by_norm"].items():
                    lo, hi = cis.get(k) or [float("nan")] * 2
                    row.update({f"auc_{k}": v, f"auc_{k}_low": lo, f"auc_{k}_high": hi})
                rows.append(row)
    bars = {
        row["attack"]: {k[4:]: v for k, v in row.items() if k.startswith("auc_") and not k.endswith(("_low", "_high"))}
        for row in rows
    }
    fig = plot_bars(
        bars, out / "auc_by_norm.png", ylabel="membership ROC AUC", title="AUC of the boundary distance in each norm"
    )
    return {"norms": rows}, [fig]


def summarize_threshold(records: list[RunRecord], out: Path) -> Summary:
    """The data-free threshold (t-th percentile of random-noise scores) against the shadow-calibrated one."""
    rows, figures = [], []
    for r in records:
        is_member = r.arrays["is_member"].astype(bool)
        for name, entry in r.results["attacks"].items():
            data_free = entry.get("data_free")
            if not data_free:
                continue
            scores = r.attack_arrays(name)["scores"]
            acc, prec, rec = precision_recall(is_member, scores, entry["threshold"])
            rows.append(
                {
                    "attack": name,
                    "method": entry.get("threshold_source", "shadow"),
                    "t": None,
                    "threshold": entry["threshold"],
                    "accuracy": acc,
                    "precision": prec,
                    "recall": rec,
                }
            )
            for s in data_free["sweep"]:
                rows.append(
                    {
                        "attack": name,
                        "method": "data-free",
                        "t": s["t"],
                        "threshold": s["threshold"],
                        "accuracy": s["accuracy"],
                        "precision": s["precision"],
                        "recall": s["recall"],
                    }
                )
            sweep = [row for row in rows if row["attack"] == name and row["method"] == "data-free"]
            series = {
                f"{m} (data-free)": ([row["t"] for row in sweep], [row[m] for row in sweep])
                for m in ("accuracy", "precision", "recall")
            }
            series.update(
                {
                    f"{m} (shadow-calibrated)": ([0, 100], [v, v])
                    for m, v in (("accuracy", acc), ("precision", prec), ("recall", rec))
                }
            )
            figures.append(
                plot_series(
                    series,
                    out / f"threshold_{name}.png",
                    xlabel="t (percentile of noise scores)",
                    ylabel="attack performance",
                    title=f"{name}: data-free threshold",
                    logx=False,
                )
            )
    return {"threshold": rows}, figures


def _group_stats(
    label: str, values: np.ndarray, is_member: np.ndarray, zero_means: str, r: RunRecord
) -> dict[str, Any]:
    m, n = values[is_member], values[~is_member]
    config = r.results.get("config", {})
    keys = r.arrays.get("content_key")  # the order the audit drew its intervals in
    ci = bootstrap_auc(
        is_member, values, n_boot=int(config.get("n_boot", DEFAULT_N_BOOT)), seed=int(config.get("seed", 0)), keys=keys
    )
    return {
        "quantity": label,
        "member_mean": float(m.mean()),
        "member_median": float(np.median(m)),
        "nonmember_mean": float(n.mean()),
        "nonmember_median": float(np.median(n)),
        "auc": ci.value,
        "auc_low": ci.low,
        "auc_high": ci.high,
        f"member_{zero_means}": float((m <= 0).mean()),
        f"nonmember_{zero_means}": float((n <= 0).mean()),
    }


def summarize_distances(records: list[RunRecord], out: Path) -> Summary:
    """Member and non-member distributions of the boundary distance and of the certified radius."""
    rows, panels = [], {}
    for r in records:
        is_member = r.arrays["is_member"].astype(bool)
        for name in r.results["attacks"]:
            a = r.attack_arrays(name)
            if "distance_l2" in a:
                d = np.nan_to_num(a["distance_l2"], nan=0.0)
                label = f"{name}: L2 distance to the boundary"
                rows.append(_group_stats(label, d, is_member, "at_zero", r))
                panels[label] = (d[is_member], d[~is_member])
            if "certified_radius" in a:
                rad = a["certified_radius"]
                label = f"{name}: certified L2 radius (sigma {r.results['config']['smoothing_sigma']})"
                rows.append(_group_stats(label, rad, is_member, "abstained", r))
                panels[label] = (rad[is_member], rad[~is_member])
    figures = [plot_histograms(panels, out / "distances.png")] if panels else []
    return {"distances": rows}, figures


def summarize_transfer_ablation(records: list[RunRecord], out: Path) -> Summary:
    """Transfer-attack AUC for each shadow architecture, shadow-set size and way of relabelling (once, online)."""
    rows = []
    for r in records:
        for name, entry in r.results["attacks"].items():
            rows.append(
                {
                    "shadow_arch": r.point.get("shadow_arch", r.results["config"].get("shadow_arch")),
                    "shadow_size": r.results["split"].get("shadow_train"),
                    "relabel": r.results["config"].get("relabel", "once"),  # runs saved before the key: once
                    "attack": name,
                    "shadow_label_agreement": entry.get("shadow_label_agreement"),
                    **_attack_row(entry),
                }
            )
    lines = [
        {**row, "line": f"{row['shadow_arch']}" + ("" if row["relabel"] == "once" else " (online)")} for row in rows
    ]
    fig = plot_series(
        _series(lines, "line", "shadow_size", "auc"),
        out / "auc_by_shadow.png",
        xlabel="shadow training-set size",
        ylabel="transfer-attack ROC AUC",
        title="transfer attack: shadow architecture and size",
    )
    return {"transfer_ablation": rows}, [fig]


DEFENSE_TARGET_TPR = 0.01  # the recommendation's bar in `reproduce defenses` (`defend --target-tpr` sets its own)


def summarize_defenses(records: list[RunRecord], out: Path) -> Summary:
    """The defense matrix of a sweep (one row per defense point), the recommendation at TPR@1%FPR < 0.01 and
    ``pareto.png`` (utility against the strongest label-only attack)."""
    rows = [matrix_row(str(r.point["defense"]), r.results) for r in records]
    attacks = list(dict.fromkeys(a for r in records for a in r.results["attacks"]))
    rec = recommend(rows, attacks, target_tpr=DEFENSE_TARGET_TPR)
    rows = annotate(rows, rec)  # each row's status (by its 95% upper bound) and Pareto rank
    keep = ("target_tpr", "found", "defense", "test_accuracy", "accuracy_loss", "baseline_accuracy", "closest")
    recommendation = {k: v for k, v in rec.to_dict().items() if k in keep}
    recommendation["statement"] = rec.statement()
    fig = plot_pareto(rows, attacks, out / "pareto.png", recommended=rec.defense, target_tpr=DEFENSE_TARGET_TPR)
    return {"defenses": rows, "recommendation": [recommendation]}, [fig]


SUMMARIES: dict[str, Callable[[list[RunRecord], Path], Summary]] = {
    "sizes": summarize_sizes,
    "queries": summarize_queries,
    "norms": summarize_norms,
    "threshold": summarize_threshold,
    "distances": summarize_distances,
    "transfer-ablation": summarize_transfer_ablation,
    "defenses": summarize_defenses,
    "lowfpr": summarize_lowfpr,
}
