"""``labelleak audit --estimate``: upper bounds on the queries each attack will send, before sending any.

The bounds come from sizes and budgets only (no model is trained and the target is not contacted): every attack
runs under the per-candidate budget ``queries``, so ``candidates x min(queries, what the attack asks per
candidate)`` bounds its main run; the transfer attacks also relabel the shadow-train set (with ``relabel:
online``, once per epoch, plus the held-out shadow-test set), and the boundary attacks' data-free threshold
labels ``noise_samples`` random inputs and attacks them under the same budget.
Calibration runs against the adversary's own shadow model and costs the target nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from labelleak.errors import DataFileError
from labelleak.pipeline.config import AuditConfig

ONE_QUERY = ("gap", "transfer", "score-")  # name prefixes of attacks that ask one label (or score) per candidate
DISTANCE = ("boundary-",)  # attacks whose distances get a data-free threshold (noise inputs)


def _rows(path: str | None, what: str) -> int:
    if not path:
        return 0
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            return int(z["y"].shape[0])
    except Exception as exc:
        raise DataFileError(f"cannot count the samples of the {what} file {p}: {exc}") from None


def candidate_sizes(cfg: AuditConfig) -> tuple[int, int]:
    """(candidates, shadow-train size) the audit will use."""
    if cfg.is_remote:
        candidates = _rows(cfg.members, "members") + _rows(cfg.nonmembers, "nonmembers")
        return candidates, _rows(cfg.shadow, "shadow") // 2
    test_size = cfg.test_size or cfg.train_size
    n_members = min(cfg.eval_size or cfg.train_size, cfg.train_size)
    n_nonmembers = min(cfg.eval_size or test_size, test_size)
    return n_members + n_nonmembers, cfg.shadow_size or cfg.train_size


def _relabel_queries(cfg: AuditConfig, shadow_train: int) -> int:
    """Setup queries of a transfer attack: the shadow-train set once, or online one view of each shadow-train
    image per epoch plus the held-out shadow-test set (as large as shadow-train)."""
    if cfg.relabel != "online":
        return shadow_train
    return (cfg.relabel_epochs or cfg.epochs) * shadow_train + shadow_train


def estimate(cfg: AuditConfig) -> list[dict[str, Any]]:
    """One row per attack: candidates, per-candidate bound, setup and data-free queries, and the total
    (``None`` where unbounded: no per-candidate budget for an iterative attack)."""
    n, shadow_train = candidate_sizes(cfg)
    rows = []
    for name in cfg.attacks:
        per: int | None = 1 if name.startswith(ONE_QUERY) else cfg.queries
        setup = _relabel_queries(cfg, shadow_train) if name.startswith("transfer") else 0
        noise: int | None = 0
        if name.startswith(DISTANCE) and cfg.thresholds:
            noise = None if per is None else cfg.noise_samples * (1 + per)
        main = None if per is None else n * per
        total = None if main is None or noise is None else main + setup + noise
        rows.append(
            {
                "attack": name,
                "candidates": n,
                "per_candidate": per,
                "main": main,
                "setup": setup,
                "data_free": noise,
                "total": total,
            }
        )
    return rows


def format_estimate(rows: list[dict[str, Any]], cap: int | None) -> str:
    """A plain-text table of :func:`estimate`, with the sum and how it compares with ``cap``."""

    def show(v: Any) -> str:
        return "unbounded" if v is None else f"{v:,}"

    lines = [f"{'attack':<22}{'candidates':>11}{'per cand.':>11}{'main':>13}{'setup':>9}{'data-free':>12}{'total':>14}"]
    for r in rows:
        lines.append(
            f"{r['attack']:<22}{r['candidates']:>11,}{show(r['per_candidate']):>11}{show(r['main']):>13}"
            f"{r['setup']:>9,}{show(r['data_free']):>12}{show(r['total']):>14}"
        )
    totals = [r["total"] for r in rows]
    whole = None if any(t is None for t in totals) else sum(totals)
    lines.append(f"{'all attacks (upper bound)':<70}{show(whole):>21}")
    if cap is not None:
        verdict = "fits" if whole is not None and whole <= cap else "may be cut short (attacks stop at the cap)"
        lines.append(f"--max-total-queries {cap:,}: {verdict}")
    return "\n".join(lines)
