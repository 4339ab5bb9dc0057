"""Which defense to deploy: the most accurate point of a defense matrix whose leakage is *shown* below a target.

Pure functions on matrix rows (as :func:`labelleak.defenses.matrix.matrix_row` builds them): no model, no file.
A point estimate of TPR at 1% FPR on a few hundred non-members moves by one found member (0.005 at 200), so the
choice rests on intervals, never on point estimates:

* **TPR.** A row is *enough* by ``target_tpr`` only when the upper end of the exact (Clopper-Pearson, 95%)
  interval of TPR at 1% FPR of *every* label-only attack it was measured with is below the target. A point
  below the target whose interval is not, or an attack whose candidates cannot resolve 1% FPR (``n/a``: the
  interval needs :func:`labelleak.counts.min_nonmembers` x 2 non-members), is *not shown*, with the reason.
* **AUC** (``target_auc``, optional): the upper end of every label-only attack's bootstrap interval below it.
* **Epsilon** (``target_epsilon``, optional). The audit's eps_LB (``results["verdict"]["eps_lb"]``) is a lower
  bound: above the target it *refutes* it; at or below it, it only *does not refute* it. Only an upper bound can
  show a target met, and the one there is is the DP accountant's epsilon of the training, when it covers the whole
  procedure (not when DP-SGD was tuned on the private data, ``dp_tuning == "private"``, whose epsilon excludes
  the tuning): at or below the target that is *enough*. A row without one is at best *not refuted*, never enough.

A row is enough when every target it is given is; the recommendation is the most accurate enough row (ties: the
lower TPR upper bound, then the earlier row). Every measured row is also ranked on the Pareto front of test
accuracy against leakage (the highest TPR upper bound of its label-only attacks): the undominated rows first, by
accuracy, then the dominated ones, then those whose leakage has no interval. A row with a missing or NaN test
accuracy, or no finite label-only measurement, is listed as unmeasured.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from labelleak.counts import resolution
from labelleak.errors import InvalidInputError

FPR = 0.01  # the operating point the targets are about (the matrix's "tpr@1%")
Status = Literal["enough", "not shown"]
EpsilonStatus = Literal["enough", "not refuted", "refuted", "not shown"]


@dataclass(frozen=True)
class Strongest:
    """The strongest label-only attack on one row: the highest TPR@1%FPR and the highest AUC (maybe two attacks)."""

    tpr_attack: str
    tpr: float
    auc_attack: str
    auc: float


@dataclass
class Ranked:
    """One measured row judged against the targets: its leakage with intervals, its place on the Pareto front."""

    defense: str
    test_accuracy: float
    tpr_attack: str | None  # the label-only attack with the highest TPR upper bound
    tpr: float | None  # that attack's point estimate
    tpr_high: float | None  # the highest upper bound; None when an attack cannot resolve 1% FPR
    auc_high: float | None
    eps_lb: float | None
    accountant_epsilon: float | None
    status: Status
    tpr_status: Status
    auc_status: Status | None
    epsilon_status: EpsilonStatus | None
    reasons: list[str]
    pareto: bool = False
    rank: int = 0


@dataclass
class Recommendation:
    """The answer to "what is the most accurate defense shown to bring the label-only attacks below the target?"."""

    target_tpr: float
    target_auc: float | None
    found: bool
    target_epsilon: float | None = None
    defense: str | None = None
    test_accuracy: float | None = None
    accuracy_loss: float | None = None
    baseline: str = "none"
    baseline_accuracy: float | None = None
    strongest: Strongest | None = None  # point estimates of the recommended row
    tpr_high: float | None = None  # the recommended row's highest TPR upper bound
    closest: str | None = None  # with none found: the Pareto row with the lowest TPR upper bound
    ranking: list[Ranked] = field(default_factory=list)
    unmeasured: list[str] = field(default_factory=list)

    def bar(self) -> str:
        """The targets in words."""
        parts = [f"TPR@1%FPR upper bound < {self.target_tpr:g}"]
        if self.target_auc is not None:
            parts.append(f"AUC upper bound < {self.target_auc:g}")
        if self.target_epsilon is not None:
            parts.append(f"accountant epsilon <= {self.target_epsilon:g}")
        return " and ".join(parts)

    def statement(self) -> str:
        """One sentence for the matrix and the report."""
        if self.found and self.strongest is not None and self.tpr_high is not None:
            loss = self.accuracy_loss or 0.0
            return (
                f"Most accurate defense shown enough ({self.bar()}, 95% intervals): {self.defense} (test accuracy "
                f"{self.test_accuracy:.3f}, {abs(loss):.3f} {'below' if loss >= 0 else 'above'} {self.baseline}; "
                f"highest TPR@1%FPR upper bound {self.tpr_high:.3f}, strongest attack {self.strongest.tpr_attack} at "
                f"{self.strongest.tpr:.3f}, {self.strongest.auc_attack} at AUC {self.strongest.auc:.3f})."
            )
        closest = f"; the closest on the Pareto front is {self.closest}" if self.closest else ""
        return f"No measured defense is shown enough ({self.bar()}, 95% intervals){closest}."

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["statement"] = self.statement()
        return d


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _number(v: Any) -> float | None:
    return float(v) if _finite(v) else None


def _label_only(row: dict[str, Any], attacks: list[str]) -> list[str]:
    """The label-only attacks with a finite AUC on ``row``: those it was measured with."""
    return [a for a in attacks if row.get(f"{a}.threat") == "label-only" and _finite(row.get(f"{a}.auc"))]


def strongest_label_only(row: dict[str, Any], attacks: list[str]) -> Strongest | None:
    """The label-only attacks' highest TPR@1%FPR and AUC on ``row`` (point estimates); ``None`` when none has
    both finite."""
    measured = [
        (a, row[f"{a}.tpr@1%"], row[f"{a}.auc"]) for a in _label_only(row, attacks) if _finite(row.get(f"{a}.tpr@1%"))
    ]
    if not measured:
        return None
    t = max(measured, key=lambda m: m[1])
    u = max(measured, key=lambda m: m[2])
    return Strongest(t[0], float(t[1]), u[0], float(u[2]))


def _tpr(
    row: dict[str, Any], names: list[str], target: float
) -> tuple[str | None, float | None, float | None, Status, str]:
    """(attack, point, highest upper bound, status, reason) of TPR at 1% FPR over the label-only ``names``."""
    unresolved = [a for a in names if not _finite(row.get(f"{a}.tpr@1%_high"))]
    if unresolved:
        a = unresolved[0]
        need = resolution(0, FPR).interval_needs
        why = row.get(f"{a}.tpr@1%_na") or f"its exact interval needs >= {need} non-members"
        return None, None, None, "not shown", f"{a}: TPR at 1% FPR has no interval ({why})"
    a = max(names, key=lambda n: float(row[f"{n}.tpr@1%_high"]))
    high, point = float(row[f"{a}.tpr@1%_high"]), row.get(f"{a}.tpr@1%")
    point = _number(point)
    if high < target:
        return a, point, high, "enough", f"every TPR@1%FPR upper bound is below {target:g} (highest {high:.3f}, {a})"
    shown = "" if point is None or point >= target else f" although its point estimate {point:.3f} is"
    return a, point, high, "not shown", f"{a}: TPR@1%FPR upper bound {high:.3f} is not below {target:g}{shown}"


def _auc(row: dict[str, Any], names: list[str], target: float) -> tuple[float | None, Status, str]:
    highs = [_number(row.get(f"{a}.auc_high")) for a in names]
    if any(h is None for h in highs):
        return None, "not shown", "an AUC has no bootstrap interval"
    high = max(h for h in highs if h is not None)
    if high < target:
        return high, "enough", f"every AUC upper bound is below {target:g} (highest {high:.3f})"
    return high, "not shown", f"AUC upper bound {high:.3f} is not below {target:g}"


def epsilon_status(row: dict[str, Any], target: float) -> tuple[EpsilonStatus, str]:
    """Whether ``row`` meets ``epsilon <= target``, and why (the rule in the module docstring)."""
    lb, eps = _number(row.get("eps_lb")), _number(row.get("epsilon"))
    if lb is not None and lb > target:
        return "refuted", f"eps_LB {lb:.2f} refutes epsilon <= {target:g}"
    lb_text = "no eps_LB" if lb is None else f"eps_LB {lb:.2f}"
    if row.get("dp_tuning") == "private":
        return "not refuted", (
            f"DP-SGD was tuned on the private data, so its epsilon excludes the tuning and bounds nothing; "
            f"{lb_text} does not refute epsilon <= {target:g}"
        )
    if eps is None:
        return "not refuted", f"no upper bound on epsilon (no DP accountant); {lb_text} does not refute {target:g}"
    if eps <= target:
        return "enough", f"the accountant's epsilon {eps:.2f} is at most {target:g}"
    return "not shown", f"the accountant's epsilon {eps:.2f} is above {target:g}; {lb_text} does not refute it"


def _judge(
    row: dict[str, Any], names: list[str], target_tpr: float, target_auc: float | None, target_epsilon: float | None
) -> Ranked:
    attack, point, high, tpr_status, why = _tpr(row, names, target_tpr)
    reasons = [why]
    auc_high, auc_status = None, None
    if target_auc is not None:
        auc_high, auc_status, why = _auc(row, names, target_auc)
        reasons.append(why)
    eps_status: EpsilonStatus | None = None
    if target_epsilon is not None:
        eps_status, why = epsilon_status(row, target_epsilon)
        reasons.append(why)
    ok = tpr_status == "enough" and auc_status in (None, "enough") and eps_status in (None, "enough")
    return Ranked(
        str(row.get("defense")), float(row["test_accuracy"]), attack, point, high, auc_high,
        _number(row.get("eps_lb")), _number(row.get("epsilon")),
        "enough" if ok else "not shown", tpr_status, auc_status, eps_status, reasons,
    )  # fmt: skip


def pareto_rank(ranked: list[Ranked]) -> list[Ranked]:
    """Mark the undominated rows (no other row has at least their accuracy and at most their TPR upper bound,
    one strictly) and order them: the front by accuracy, then the dominated rows, then those without a bound."""
    bounded = [r for r in ranked if r.tpr_high is not None]
    for r in bounded:
        r.pareto = not any(
            o.test_accuracy >= r.test_accuracy
            and o.tpr_high <= r.tpr_high  # type: ignore[operator]  # bounded: never None
            and (o.test_accuracy > r.test_accuracy or o.tpr_high < r.tpr_high)  # type: ignore[operator]
            for o in bounded
        )
    order = sorted(
        enumerate(ranked),
        key=lambda e: (e[1].tpr_high is None, not e[1].pareto, -e[1].test_accuracy, e[1].tpr_high or 0.0, e[0]),
    )
    out = [r for _, r in order]
    for i, r in enumerate(out, 1):
        r.rank = i
    return out


def _check_targets(target_tpr: float, target_auc: float | None, target_epsilon: float | None) -> None:
    if not (_finite(target_tpr) and 0 < target_tpr < 1):
        raise InvalidInputError(f"target_tpr: expected a rate in (0, 1), got {target_tpr!r}")
    if target_auc is not None and not (_finite(target_auc) and 0 < target_auc <= 1):
        raise InvalidInputError(f"target_auc: expected a number in (0, 1], got {target_auc!r}")
    if target_epsilon is not None and not (_finite(target_epsilon) and target_epsilon >= 0):
        raise InvalidInputError(f"target_epsilon: expected a non-negative number, got {target_epsilon!r}")


def recommend(
    rows: list[dict[str, Any]],
    attacks: list[str],
    *,
    target_tpr: float = 0.01,
    target_auc: float | None = None,
    target_epsilon: float | None = None,
    baseline: str = "none",
) -> Recommendation:
    """The most accurate row shown to meet every target, and the Pareto ranking (see the module docstring)."""
    _check_targets(target_tpr, target_auc, target_epsilon)
    rec = Recommendation(target_tpr, target_auc, found=False, target_epsilon=target_epsilon, baseline=baseline)
    judged: list[tuple[Ranked, dict[str, Any]]] = []
    for row in rows:
        names = _label_only(row, attacks)
        if not names or not _finite(row.get("test_accuracy")):
            rec.unmeasured.append(str(row.get("defense")))
            continue
        judged.append((_judge(row, names, target_tpr, target_auc, target_epsilon), row))
    base = next((r for r, _ in judged if r.defense == baseline), None)
    if base is None:
        rec.baseline = "best test accuracy"
    rec.baseline_accuracy = (
        base.test_accuracy if base is not None else max((r.test_accuracy for r, _ in judged), default=None)
    )
    rec.ranking = pareto_rank([r for r, _ in judged])
    enough = [(i, r, row) for i, (r, row) in enumerate(judged) if r.status == "enough"]
    if not enough:
        front = [r for r in rec.ranking if r.pareto]
        if front:
            rec.closest = min(front, key=lambda r: (r.tpr_high, -r.test_accuracy)).defense
        return rec
    _, best, row = min(enough, key=lambda e: (-e[1].test_accuracy, e[1].tpr_high, e[0]))
    rec.found, rec.defense, rec.test_accuracy, rec.tpr_high = True, best.defense, best.test_accuracy, best.tpr_high
    rec.strongest = strongest_label_only(row, attacks)
    rec.accuracy_loss = None if rec.baseline_accuracy is None else rec.baseline_accuracy - best.test_accuracy
    return rec


def annotate(rows: list[dict[str, Any]], rec: Recommendation) -> list[dict[str, Any]]:
    """``rows`` with the recommendation's judgement as columns (``status``, ``tpr@1%_upper``, ``pareto``,
    ``pareto_rank``; ``unmeasured`` rows get ``None``), for the matrix's CSV and JSON."""
    by_name = {r.defense: r for r in rec.ranking}
    out = []
    for row in rows:
        r = by_name.get(str(row.get("defense")))
        out.append(
            {
                **row,
                "status": r.status if r is not None else None,
                "tpr@1%_upper": r.tpr_high if r is not None else None,
                "pareto": r.pareto if r is not None else None,
                "pareto_rank": r.rank if r is not None else None,
            }
        )
    return out
