"""``labelleak audit --estimate``: the queries each attack will send, before sending any.

The figures come from sizes and budgets only (no model is trained and the target is not contacted). The
candidates and shadow rows are laid out as the setup will lay them out (:mod:`labelleak.data.layout`); each attack
says what it spends (:meth:`~labelleak.attacks.Attack.query_plan`: per candidate under its allowance, and setup
queries such as labelling the shadow set), and the audit's :class:`~labelleak.oracle.budget.AuditBudget` shares
``--max-total-queries`` as the audit does, attack after attack, with the data-free threshold (``noise_samples``
random inputs labelled and attacked) after each attack that gives boundary distances, and one label per candidate
for the target's accuracy on a target labelleak did not train when no attack reads it for free.

The documented rounding: an attack that asks all its queries at once (``gap``, ``augmentation``, the score
baselines, ...) spends exactly its row; a search (the boundary attacks, ``dhattack``) spends at most its row,
since a candidate the target misclassifies stops after its first query and a search may end before its budget.
Calibration runs against the adversary's own shadow model and costs the target nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from labelleak.attacks import Attack, audit_params, create_attack
from labelleak.data.layout import Layout, own_layout, trained_layout
from labelleak.errors import DataFileError
from labelleak.oracle.budget import AuditBudget, PlanFor, QueryPlan
from labelleak.pipeline.config import AuditConfig


def _rows(path: str | None, what: str) -> int:
    if not path:
        return 0
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            return int(z["y"].shape[0])
    except Exception as exc:
        raise DataFileError(f"cannot count the samples of the {what} file {p}: {exc}") from None


def layout(cfg: AuditConfig) -> Layout:
    """The candidates and shadow rows the audit of ``cfg`` will use: the auditor's files for a model file or a
    remote target, the split sizes for a target labelleak trains."""
    if cfg.is_remote or cfg.model:
        return own_layout(
            _rows(cfg.members, "members"), _rows(cfg.nonmembers, "nonmembers"), _rows(cfg.shadow, "shadow")
        )
    return trained_layout(cfg.train_size, cfg.test_size, cfg.shadow_size, cfg.eval_size, cfg.canaries)


def candidate_sizes(cfg: AuditConfig) -> tuple[int, int]:
    """(candidates, shadow-train size) the audit will use."""
    parts = layout(cfg)
    return parts.candidates, parts.shadow_train


def _attack(name: str, cfg: AuditConfig) -> Attack:
    """The attack as the audit builds it (the adversary's architecture does not change what it spends)."""
    return create_attack(name, **audit_params(name, {**cfg.to_dict(), "adversary_arch": cfg.shadow_arch or "mlp"}))


def _planner(attack: Attack, parts: Layout) -> PlanFor:
    """``attack``'s query plan for an allowance, on the shadow data of ``parts``."""

    def plan(budget: int | None) -> QueryPlan:
        return attack.query_plan(budget, shadow_train=parts.shadow_train, shadow_test=parts.shadow_test)

    return plan


def estimate(cfg: AuditConfig) -> list[dict[str, Any]]:
    """One row per attack: candidates, per-candidate queries (``exact`` or a ceiling), the main run, setup and
    data-free queries, and the total (``None`` where unbounded: no per-candidate budget for a search); a last row
    ``utility`` where the audit labels the candidates once for the target's accuracy."""
    parts = layout(cfg)
    n = parts.candidates
    budget = AuditBudget(cfg.queries, cfg.max_total_queries)
    own = bool(cfg.is_remote or cfg.model)
    accuracy_known = False
    rows = []
    for name in cfg.attacks:
        attack = _attack(name, cfg)
        caps = attack.capabilities()
        noise = cfg.noise_samples if caps.gives_distances and cfg.thresholds else 0
        got = budget.estimate(_planner(attack, parts), n, noise=noise)
        accuracy_known |= caps.reports_accuracy and got.skipped is None
        rows.append(
            {
                "attack": name,
                "candidates": n,
                "per_candidate": got.plan.per_candidate,
                "exact": got.plan.exact,
                "main": got.main,
                "setup": got.plan.setup if got.skipped is None else 0,
                "data_free": got.data_free,
                "total": got.total if got.skipped is None else 0,
                "cut": got.cut,
                **({"skipped": got.skipped} if got.skipped else {}),
            }
        )
    if own and not accuracy_known:
        spent = budget.estimate_utility(n)
        rows.append(
            {"attack": "utility", "candidates": n, "per_candidate": 1, "exact": True, "main": spent, "setup": 0,
             "data_free": 0, "total": spent, "cut": spent == 0}
        )  # fmt: skip
    return rows


def format_estimate(rows: list[dict[str, Any]], cap: int | None) -> str:
    """A plain-text table of :func:`estimate`, with the sum and how it compares with ``cap``; a per-candidate
    figure that is a ceiling is marked ``<=``."""

    def show(v: Any) -> str:
        return "unbounded" if v is None else f"{v:,}"

    def per(r: dict[str, Any]) -> str:
        return show(r["per_candidate"]) if r["exact"] or r["per_candidate"] is None else f"<={r['per_candidate']:,}"

    lines = [f"{'attack':<22}{'candidates':>11}{'per cand.':>11}{'main':>13}{'setup':>9}{'data-free':>12}{'total':>14}"]
    for r in rows:
        lines.append(
            f"{r['attack']:<22}{r['candidates']:>11,}{per(r):>11}{show(r['main']):>13}"
            f"{r['setup']:>9,}{show(r['data_free']):>12}{show(r['total']):>14}"
            + (f"  skipped: {r['skipped']}" if r.get("skipped") else "")
        )
    totals = [r["total"] for r in rows]
    whole = None if any(t is None for t in totals) else sum(totals)
    lines.append(f"{'all attacks (upper bound)':<70}{show(whole):>21}")
    if cap is not None:
        cut = [r["attack"] for r in rows if r.get("cut")]
        verdict = "fits" if not cut else f"cuts short {', '.join(cut)} (their rows are what the cap leaves them)"
        lines.append(f"--max-total-queries {cap:,}: {verdict}")
    return "\n".join(lines)
