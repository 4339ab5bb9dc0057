"""Which defense to deploy: the cheapest point of a defense matrix that brings the label-only attacks below a target.

Pure functions on matrix rows (as :func:`labelleak.defenses.matrix.matrix_row` builds them): no model, no file.
A point qualifies when *every* label-only attack it was measured with (so the strongest one) has TPR at 1% FPR
below ``target_tpr`` and, when given, AUC below ``target_auc``. Among qualifying points the cheapest loses the
least test accuracy against the undefended row (``none``; the best test accuracy of the matrix when there is
none); ties go to the lower strongest-attack TPR, then AUC, then the earlier row. A row with a missing or NaN test
accuracy, or no finite label-only measurement, cannot show that it qualifies and is listed as unmeasured.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from labelleak.errors import InvalidInputError


@dataclass(frozen=True)
class Strongest:
    """The strongest label-only attack on one row: the highest TPR@1%FPR and the highest AUC (maybe two attacks)."""

    tpr_attack: str
    tpr: float
    auc_attack: str
    auc: float


@dataclass
class Recommendation:
    """The answer to "what is the cheapest defense that brings the label-only attacks below the target?"."""

    target_tpr: float
    target_auc: float | None
    found: bool
    defense: str | None = None
    test_accuracy: float | None = None
    accuracy_loss: float | None = None
    baseline: str = "none"
    baseline_accuracy: float | None = None
    strongest: Strongest | None = None
    closest: str | None = None  # with none found: the row with the lowest strongest-attack TPR
    unmeasured: list[str] = field(default_factory=list)

    def statement(self) -> str:
        """One sentence for the matrix and the report."""
        bar = f"TPR@1%FPR < {self.target_tpr:g}" + (
            f" and AUC < {self.target_auc:g}" if self.target_auc is not None else ""
        )
        if self.found and self.strongest is not None:
            loss = self.accuracy_loss or 0.0
            return (
                f"Cheapest defense with every label-only attack at {bar}: {self.defense} (test accuracy "
                f"{self.test_accuracy:.3f}, {abs(loss):.3f} {'below' if loss >= 0 else 'above'} "
                f"{self.baseline}; strongest attack "
                f"{self.strongest.tpr_attack} at TPR@1%FPR {self.strongest.tpr:.3f}, "
                f"{self.strongest.auc_attack} at AUC {self.strongest.auc:.3f})."
            )
        closest = f"; the closest is {self.closest}" if self.closest else ""
        return f"No measured defense brings every label-only attack to {bar}{closest}."

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["statement"] = self.statement()
        return d


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def strongest_label_only(row: dict[str, Any], attacks: list[str]) -> Strongest | None:
    """The label-only attacks' highest TPR@1%FPR and AUC on ``row``; ``None`` when none has both finite."""
    measured = [
        (a, row[f"{a}.tpr@1%"], row[f"{a}.auc"])
        for a in attacks
        if row.get(f"{a}.threat") == "label-only" and _finite(row.get(f"{a}.tpr@1%")) and _finite(row.get(f"{a}.auc"))
    ]
    if not measured:
        return None
    t = max(measured, key=lambda m: m[1])
    u = max(measured, key=lambda m: m[2])
    return Strongest(t[0], float(t[1]), u[0], float(u[2]))


def recommend(
    rows: list[dict[str, Any]],
    attacks: list[str],
    *,
    target_tpr: float = 0.01,
    target_auc: float | None = None,
    baseline: str = "none",
) -> Recommendation:
    """The cheapest row whose label-only attacks all stay below the targets (see the module docstring)."""
    if not (_finite(target_tpr) and 0 < target_tpr < 1):
        raise InvalidInputError(f"target_tpr: expected a rate in (0, 1), got {target_tpr!r}")
    if target_auc is not None and not (_finite(target_auc) and 0 < target_auc <= 1):
        raise InvalidInputError(f"target_auc: expected a number in (0, 1], got {target_auc!r}")
    rec = Recommendation(target_tpr, target_auc, found=False, baseline=baseline)
    scored = []
    for i, row in enumerate(rows):
        s = strongest_label_only(row, attacks)
        if s is None or not _finite(row.get("test_accuracy")):
            rec.unmeasured.append(str(row.get("defense")))
            continue
        scored.append((i, row, s))
    base = next((r for _, r, _ in scored if r.get("defense") == baseline), None)
    if base is None:
        rec.baseline = "best test accuracy"
    ref = (
        float(base["test_accuracy"])
        if base is not None
        else max((r["test_accuracy"] for _, r, _ in scored), default=None)
    )
    rec.baseline_accuracy = ref
    ok = [
        (i, r, s) for i, r, s in scored if s.tpr < target_tpr and (target_auc is None or s.auc < target_auc)
    ]  # fmt: skip
    if not ok:
        if scored:
            rec.closest = str(min(scored, key=lambda e: (e[2].tpr, e[2].auc, e[0]))[1]["defense"])
        return rec
    i, row, s = min(ok, key=lambda e: (-float(e[1]["test_accuracy"]), e[2].tpr, e[2].auc, e[0]))
    rec.found, rec.defense, rec.strongest = True, str(row["defense"]), s
    rec.test_accuracy = float(row["test_accuracy"])
    rec.accuracy_loss = None if ref is None else ref - rec.test_accuracy
    return rec
