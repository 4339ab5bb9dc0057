"""``labelleak defend``: one audit per defense, gathered into a defense x attack matrix.

Each defense trains its own target (training-time defenses) or changes what the target serves (output-time
defenses); the attacks, candidates and the adversary's shadow model stay the same, so rows are comparable.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

from labelleak.pipeline.config import AuditConfig
from labelleak.pipeline.defenses import check_defense_for_data, parse_defense
from labelleak.pipeline.recommend import recommend
from labelleak.pipeline.setup import load_prepared
from labelleak.pipeline.sweep import family_and_strength, run_audits
from labelleak.report import write_json
from labelleak.report.defense_matrix import recommendation_markdown
from labelleak.report.pareto import plot_pareto
from labelleak.report.plots import plot_privacy_utility


def _slug(defense: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=+-]", "_", defense) or "none"


def matrix_row(defense: str, results: dict[str, Any]) -> dict[str, Any]:
    """One row of the matrix: the defense's family and strength, utility, generalisation gap, epsilon, and each
    attack's AUC and TPR at 0.1% and 1% FPR with their bootstrap intervals."""
    target = results["target"]
    family, strength = family_and_strength(defense)
    row: dict[str, Any] = {
        "defense": defense,
        "family": family,
        "strength": strength,
        "train_accuracy": target["train_accuracy"],
        "test_accuracy": target["test_accuracy"],
        "gap": target["train_accuracy"] - target["test_accuracy"],
        "epsilon": target.get("epsilon"),
    }
    nan2 = [float("nan")] * 2
    for name, entry in results["attacks"].items():
        row[f"{name}.auc"] = entry["auc"]
        row[f"{name}.auc_low"], row[f"{name}.auc_high"] = entry.get("auc_ci") or nan2
        for fpr, label in (("0.001", "0.1%"), ("0.01", "1%")):
            row[f"{name}.tpr@{label}"] = entry["tpr_at_fpr"].get(fpr)
            ci = (entry.get("tpr_at_fpr_ci") or {}).get(fpr) or nan2
            row[f"{name}.tpr@{label}_low"], row[f"{name}.tpr@{label}_high"] = ci
        row[f"{name}.threat"] = entry["threat_model"]
    return row


def _markdown(rows: list[dict[str, Any]], attacks: list[str]) -> str:
    head = ["defense", "test acc", "gap", "epsilon"] + [f"{a} AUC / TPR@1%" for a in attacks]
    fmt = lambda v: "n/a" if v is None or v != v else f"{v:.3f}"  # noqa: E731
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            r["defense"],
            fmt(r["test_accuracy"]),
            fmt(r["gap"]),
            "-" if r["epsilon"] is None else f"{r['epsilon']:.2f}",
        ]
        cells += [f"{fmt(r.get(f'{a}.auc'))} / {fmt(r.get(f'{a}.tpr@1%'))}" for a in attacks]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_defend(
    cfg: AuditConfig, defenses: list[str], *, target_tpr: float = 0.01, target_auc: float | None = None
) -> list[dict[str, Any]]:
    """Audit the target once per defense (each in ``OUT/<defense>``; ``cfg.resume`` skips finished ones); write
    ``matrix.{json,csv,md}`` with the recommendation (:mod:`labelleak.pipeline.recommend`), ``privacy_utility.png``
    and ``pareto.png``."""
    plans = [parse_defense(d) for d in defenses]  # reject a typo before any training starts
    recommend([], list(cfg.attacks), target_tpr=target_tpr, target_auc=target_auc)  # and a bad target
    if cfg.target is None:
        shape = load_prepared(cfg.dataset, cfg.data)[0].input_shape
        for plan in plans:
            check_defense_for_data(plan, shape)
    out = Path(cfg.out)
    configs = [cfg.replace(defense=d, out=str(out / _slug(d))) for d in defenses]
    rows = [matrix_row(d, results) for d, results in zip(defenses, run_audits(configs, resume=cfg.resume))]
    rec = recommend(rows, list(cfg.attacks), target_tpr=target_tpr, target_auc=target_auc)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "matrix.json", {"config": cfg.to_dict(), "rows": rows, "recommendation": rec.to_dict()})
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with (out / "matrix.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    (out / "matrix.md").write_text(_markdown(rows, list(cfg.attacks)) + "\n" + recommendation_markdown(rec))
    plot_privacy_utility(rows, list(cfg.attacks), out / "privacy_utility.png")
    plot_pareto(rows, list(cfg.attacks), out / "pareto.png", recommended=rec.defense, target_tpr=target_tpr)
    return rows
