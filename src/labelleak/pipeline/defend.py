"""``labelleak defend``: one audit per defense, gathered into a defense x attack matrix.

Each defense trains its own target (training-time defenses) or changes what the target serves (output-time
defenses); the attacks, candidates and the adversary's shadow model stay the same, so rows are comparable.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from labelleak.distributed.training import executor_for, train_in_parallel
from labelleak.pipeline.audit import run_audit
from labelleak.pipeline.config import AuditConfig
from labelleak.pipeline.defenses import parse_defense
from labelleak.pipeline.setup import DatasetCache
from labelleak.report.outputs import write_defend_outputs


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


def run_defend(cfg: AuditConfig, defenses: list[str]) -> list[dict[str, Any]]:
    """Audit the target once per defense; write ``matrix.{json,csv,md}``, ``privacy_utility.png`` and
    ``report.html``."""
    for d in defenses:
        parse_defense(d)  # reject a typo before any training starts
    out = Path(cfg.out)
    rows = []
    cfgs = [cfg.replace(defense=d, out=str(out / _slug(d))) for d in defenses]
    datasets = DatasetCache()  # one dataset for every defense: read it once
    with executor_for(cfg) as executor:  # --backend ray: the defended targets train in parallel, then each audit
        train_in_parallel(cfgs, executor)
        for d, c in zip(defenses, cfgs):
            rows.append(matrix_row(d, run_audit(c, datasets=datasets)))
    write_defend_outputs(out, cfg.to_dict(), rows, list(cfg.attacks))
    return rows
