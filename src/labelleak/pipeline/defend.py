"""``labelleak defend``: one audit per defense, gathered into a defense x attack matrix.

Each defense trains its own target (training-time defenses) or changes what the target serves (output-time
defenses); the attacks, candidates and the adversary's shadow model stay the same, so rows are comparable.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

from labelleak.pipeline.audit import run_audit
from labelleak.pipeline.config import AuditConfig
from labelleak.pipeline.defenses import parse_defense
from labelleak.pipeline.setup import DatasetCache
from labelleak.report import write_json
from labelleak.report.plots import plot_privacy_utility


def _slug(defense: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=+-]", "_", defense) or "none"


def matrix_row(defense: str, results: dict[str, Any]) -> dict[str, Any]:
    """One row of the matrix: utility, generalisation gap, epsilon and each attack's AUC and TPR@1%FPR."""
    target = results["target"]
    row: dict[str, Any] = {
        "defense": defense,
        "train_accuracy": target["train_accuracy"],
        "test_accuracy": target["test_accuracy"],
        "gap": target["train_accuracy"] - target["test_accuracy"],
        "epsilon": target.get("epsilon"),
    }
    for name, entry in results["attacks"].items():
        row[f"{name}.auc"] = entry["auc"]
        row[f"{name}.tpr@1%"] = entry["tpr_at_fpr"]["0.01"]
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


def run_defend(cfg: AuditConfig, defenses: list[str]) -> list[dict[str, Any]]:
    """Audit the target once per defense; write ``matrix.{json,csv,md}`` and ``privacy_utility.png``."""
    for d in defenses:
        parse_defense(d)  # reject a typo before any training starts
    out = Path(cfg.out)
    rows = []
    datasets = DatasetCache()  # one dataset for every defense: read it once
    for d in defenses:
        results = run_audit(cfg.replace(defense=d, out=str(out / _slug(d))), datasets=datasets)
        rows.append(matrix_row(d, results))
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "matrix.json", {"config": cfg.to_dict(), "rows": rows})
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with (out / "matrix.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    (out / "matrix.md").write_text(_markdown(rows, list(cfg.attacks)))
    plot_privacy_utility(rows, list(cfg.attacks), out / "privacy_utility.png")
    return rows
