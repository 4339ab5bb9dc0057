"""``labelleak defend``: one audit per defense, gathered into a defense x attack matrix.

Each defense trains its own target (training-time defenses) or changes what the target serves (output-time
defenses); the attacks and candidates stay the same, so rows are comparable. The adversary knows each defense
(the adaptive evaluation): its shadow and reference models train and answer with it, unless ``non_adaptive``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from labelleak.data.cache import DatasetCache
from labelleak.defenses import check_defense_for_data, matrix_row, parse_defense, recommend
from labelleak.defenses.recommendation import Recommendation, annotate
from labelleak.pipeline.config import AuditConfig
from labelleak.pipeline.setup.common import check_pool
from labelleak.pipeline.sweep import run_audits
from labelleak.report.outputs import write_defend_outputs


def _slug(defense: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=+-]", "_", defense) or "none"


def run_defend(
    cfg: AuditConfig,
    defenses: list[str],
    *,
    target_tpr: float = 0.01,
    target_auc: float | None = None,
    target_epsilon: float | None = None,
) -> list[dict[str, Any]]:
    """Audit the target once per defense (each in ``OUT/<defense>``; ``cfg.resume`` skips finished ones); write
    ``matrix.{json,csv,md}`` with the recommendation (:mod:`labelleak.defenses.recommendation`),
    ``privacy_utility.png``, ``pareto.png`` and ``report.html``."""
    plans = [parse_defense(d) for d in defenses]  # reject a typo before any training starts

    def judged(rows: list[dict[str, Any]]) -> Recommendation:
        return recommend(
            rows, list(cfg.attacks), target_tpr=target_tpr, target_auc=target_auc, target_epsilon=target_epsilon
        )

    judged([])  # and a bad target
    datasets = DatasetCache()  # one dataset for every defense: read it once
    out = Path(cfg.out)
    configs = [cfg.replace(defense=d, out=str(out / _slug(d))) for d in defenses]
    if not cfg.is_remote and cfg.model is None:  # every defense against the data, before the first one trains
        dataset = datasets.load(cfg.dataset, cfg.data)[0]
        for plan in plans:
            check_defense_for_data(plan, dataset.input_shape)
        for c in configs:
            check_pool(c, len(dataset))
    results = run_audits(configs, resume=cfg.resume, datasets=datasets)
    rows = [matrix_row(d, r) for d, r in zip(defenses, results)]
    rec = judged(rows)
    rows = annotate(rows, rec)  # each row's status and Pareto rank, in the CSV and JSON too
    write_defend_outputs(out, cfg.to_dict(), rows, list(cfg.attacks), recommendation=rec, target_tpr=target_tpr)
    return rows
