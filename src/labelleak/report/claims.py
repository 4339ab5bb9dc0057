"""The paper's claims (Li & Zhang, CCS 2021) and this project's own goals, checked against one reproduced
experiment's tables.

Each check states its rule, what this run measured and a verdict; a verdict is only as good as its rule, so the
rule is shown beside it on the page. A paper's claim is checked item by item (each attack, size or quantity),
and each item on its 95% intervals, never on a point estimate alone: it ``holds`` when the intervals clear the
rule, ``does not hold`` when they clear its opposite, and is undecided otherwise or where the table has no
interval. The claim ``holds`` when every item does, ``does not hold`` when every item fails, is ``partly`` true
when items hold and fail with none undecided, and ``inconclusive`` otherwise. A project goal (such as issue 16's
ratio to LiRA) is not the paper's and is listed apart, judged on its interval
(:func:`labelleak.verdicts.verdict`): ``met``, ``not met`` or ``inconclusive``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from labelleak.counts import resolution
from labelleak.report.lowfpr import fpr_label
from labelleak.verdicts import VERDICTS, Verdict, verdict

Rows = list[dict[str, Any]]
Claim = dict[str, str]


HOLDS, FAILS, UNDECIDED = "holds", "does not hold", "undecided"


def _claim(claim: str, rule: str, measured: str, items: list[str]) -> Claim:
    """A claim's verdict from its items' (``HOLDS``, ``FAILS`` or ``UNDECIDED``)."""
    n, held, failed = len(items), items.count(HOLDS), items.count(FAILS)
    if n and held == n:
        verdict = f"holds ({n} of {n})"
    elif n and failed == n:
        verdict = f"does not hold ({n} of {n})"
    elif n and held + failed == n:
        verdict = f"partly ({held} of {n})"
    else:
        verdict = f"inconclusive ({held} hold, {failed} do not, {n - held - failed} undecided, of {n})"
    return {"claim": claim, "rule": rule, "measured": measured, "verdict": verdict}


def _by(rows: Rows, key: str) -> dict[Any, Rows]:
    groups: dict[Any, Rows] = {}
    for r in rows:
        groups.setdefault(r[key], []).append(r)
    return groups


def _judge(holds: bool, fails: bool) -> str:
    return HOLDS if holds else FAILS if fails else UNDECIDED


def _interval(row: dict[str, Any], prefix: str = "auc") -> tuple[float, float] | None:
    """The row's 95% interval of ``prefix`` (``None`` where the table has none, or a NaN bound)."""
    lo, hi = row.get(f"{prefix}_low"), row.get(f"{prefix}_high")
    if lo is None or hi is None or lo != lo or hi != hi:
        return None
    return float(lo), float(hi)


def _below(a: tuple[float, float] | None, b: tuple[float, float] | None) -> str:
    """Interval ``a`` entirely below ``b``: holds; entirely above: does not; overlapping or missing: undecided."""
    if a is None or b is None:
        return UNDECIDED
    return _judge(a[1] < b[0], a[0] > b[1])


def _all_of(items: list[str]) -> str:
    """One item from several: holds when all do, does not when any fails, else undecided."""
    return HOLDS if all(i == HOLDS for i in items) else FAILS if FAILS in items else UNDECIDED


def _above_half(row: dict[str, Any], prefix: str = "auc") -> str:
    ci = _interval(row, prefix)
    return UNDECIDED if ci is None else _judge(ci[0] > 0.5, ci[1] < 0.5)


def _best_interval(rows: Rows) -> tuple[float, float] | None:
    """An interval of the largest true AUC among ``rows``' attacks: from the largest lower end to the largest
    upper end (``None`` where any row has no interval). It needs no pick of the point-best attack, whose own
    interval would be read after a selection on the same data."""
    cis = [_interval(r) for r in rows]
    if any(ci is None for ci in cis):
        return None
    known = cast(list[tuple[float, float]], cis)
    return max(ci[0] for ci in known), max(ci[1] for ci in known)


def _pair_text(label: tuple[float, float] | None, score: tuple[float, float] | None) -> str:
    """The best attacks' intervals the verdict reads, where both sides have them."""
    if label is None or score is None:
        return ""
    return f" (best: [{label[0]:.3f}, {label[1]:.3f}] vs [{score[0]:.3f}, {score[1]:.3f}])"


def _ci_text(row: dict[str, Any], prefix: str = "auc") -> str:
    ci = _interval(row, prefix)
    return "" if ci is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def _sizes(tables: dict[str, Rows]) -> list[Claim]:
    rows = [r for r in tables.get("sizes", []) if r.get("auc") is not None]
    attacks = _by(rows, "attack")
    falling = []
    for name, rs in attacks.items():
        rs = sorted(rs, key=lambda r: r["train_size"])
        first, last = rs[0], rs[-1]
        falling.append((name, first, last, _below(_interval(last), _interval(first)) if len(rs) > 1 else UNDECIDED))
    claims = [
        _claim(
            "Leakage falls as the training set grows",
            "each attack's AUC interval at the largest size lies below its interval at the smallest",
            "; ".join(f"{n} {a['auc']:.3f}{_ci_text(a)} -> {b['auc']:.3f}{_ci_text(b)}" for n, a, b, _ in falling),
            [f[3] for f in falling],
        )
    ]
    gaps = []
    for size, rs in sorted(_by(rows, "train_size").items()):
        label = [r for r in rs if r.get("threat_model") == "label-only"]
        score = [r for r in rs if r.get("threat_model") == "scores"]
        if label and score:
            # the point-best of each side names the attack shown; the verdict is on the best's interval, which
            # no pick by point AUC decides: the best's true AUC lies above every attack's lower end and below the
            # largest upper end (when each interval covers)
            lo, sc = max(label, key=lambda r: r["auc"]), max(score, key=lambda r: r["auc"])
            li, si = _best_interval(label), _best_interval(score)
            item = UNDECIDED if li is None or si is None else _judge(si[1] - li[0] <= 0.05, si[0] - li[1] > 0.05)
            gaps.append((size, lo, sc, item, _pair_text(li, si)))
    if gaps:
        claims.append(
            _claim(
                "Label-only attacks leak about as much as score-based ones",
                "at each size, the best score-based AUC exceeds the best label-only AUC by at most 0.05 even at "
                "the far ends of their 95% intervals (by more than 0.05 at the near ends: does not hold); the best "
                "attack's interval runs from the largest lower end to the largest upper end of its side's attacks, "
                "so no attack is picked by its point AUC",
                "; ".join(
                    f"{s} members: {lo['auc']:.3f}{_ci_text(lo)} vs {sc['auc']:.3f}{_ci_text(sc)}{best}"
                    for s, lo, sc, _, best in gaps
                ),
                [g[3] for g in gaps],
            )
        )
    return claims


def _queries(tables: dict[str, Rows]) -> list[Claim]:
    found = []
    for name, rs in _by(tables.get("queries", []), "attack").items():
        rs = sorted(rs, key=lambda r: r["queries"])
        final = rs[-1]
        at_2k = [r for r in rs if r["queries"] <= 2000][-1:] or rs[:1]
        found.append((name, at_2k[0]["queries"], at_2k[0]["auc"], final["queries"], final["auc"]))
    # undecided item by item: a budget of at most 2,000 has no later reading to compare (the claim would be read
    # against itself), and two readings need an interval of their difference, which the table does not hold
    return [
        _claim(
            "A few thousand queries per candidate are enough",
            "each attack's AUC within 2,000 queries is within 0.02 of its AUC at a larger budget, on an interval "
            "of the difference; the table holds none (and a budget of at most 2,000 no later reading)",
            "; ".join(f"{n}: {a:.3f} at {qa} vs {b:.3f} at {qb}" for n, qa, a, qb, b in found),
            [UNDECIDED for _ in found],
        )
    ]


NORMS = ("l0", "l1", "l2", "linf")


def _norms(tables: dict[str, Rows]) -> list[Claim]:
    rows = tables.get("norms", [])
    every = []
    least = []
    for r in rows:
        every.append(_all_of([_above_half(r, f"auc_{k}") for k in NORMS]))
        least.append(_all_of([_below(_interval(r, "auc_l0"), _interval(r, f"auc_{k}")) for k in NORMS[1:]]))
    text = "; ".join(
        f"{r['attack']}: " + ", ".join(f"{k} {r[f'auc_{k}']:.3f}{_ci_text(r, f'auc_{k}')}" for k in NORMS) for r in rows
    )
    return [
        _claim("Every norm separates members from non-members", "AUC interval above 0.5 in every norm", text, every),
        _claim("L0 separates least", "the L0 AUC interval lies below each other norm's", text, least),
    ]


def _threshold(tables: dict[str, Rows]) -> list[Claim]:
    claims = []
    for name, rs in _by(tables.get("threshold", []), "attack").items():
        shadow = [r for r in rs if r["method"] != "data-free"]
        sweep = [r for r in rs if r["method"] == "data-free"]
        if not shadow or not sweep:
            continue
        close = [r["t"] for r in sweep if r["accuracy"] >= shadow[0]["accuracy"] - 0.05]
        claims.append(
            _claim(
                f"The data-free threshold works over a broad range of t ({name})",
                "values of t whose accuracy is within 0.05 of the shadow-calibrated accuracy; holds when all do; "
                "the table has no intervals of the accuracies, so no value of t is decided",
                f"shadow-calibrated accuracy {shadow[0]['accuracy']:.3f}; close at t = "
                + (", ".join(f"{t:g}" for t in close) or "none"),
                [UNDECIDED] * len(sweep),
            )
        )
    return claims


def _distances(tables: dict[str, Rows]) -> list[Claim]:
    rows = tables.get("distances", [])
    return [
        _claim(
            "Members lie farther from the decision boundary than non-members",
            "the AUC interval of each quantity lies above 0.5 (below: does not hold)",
            "; ".join(
                f"{r['quantity']}: median {r['member_median']:.3f} vs {r['nonmember_median']:.3f}, "
                f"AUC {r['auc']:.3f}{_ci_text(r)}"
                for r in rows
            ),
            [_above_half(r) for r in rows],
        )
    ]


def _transfer(tables: dict[str, Rows]) -> list[Claim]:
    rows = tables.get("transfer_ablation", [])
    by_size = _by(rows, "shadow_size")
    spreads = {}
    for size, rs in by_size.items():
        cis = [ci for ci in map(_interval, rs) if ci is not None]
        point = max(r["auc"] for r in rs) - min(r["auc"] for r in rs)
        if len(cis) < len(rs):
            spreads[size] = (point, UNDECIDED)
            continue
        far = max(ci[1] for ci in cis) - min(ci[0] for ci in cis)  # the spread at the intervals' far ends
        near = max(ci[0] for ci in cis) - min(ci[1] for ci in cis)  # ... and at their near ends
        spreads[size] = (point, _judge(far <= 0.03, near > 0.03))
    grows = []
    for arch, rs in _by(rows, "shadow_arch").items():
        rs = sorted(rs, key=lambda r: r["shadow_size"])
        item = _below(_interval(rs[0]), _interval(rs[-1])) if len(rs) > 1 else UNDECIDED
        grows.append((arch, rs[0], rs[-1], item))
    return [
        _claim(
            "The transfer attack does not need the target's architecture",
            "at each shadow-set size, the AUCs of all shadow architectures lie within 0.03 of each other, even "
            "at the far ends of their 95% intervals (more than 0.03 apart at the near ends: does not hold)",
            "; ".join(f"{s} shadow samples: spread {v:.3f}" for s, (v, _) in sorted(spreads.items())),
            [item for _, item in spreads.values()],
        ),
        _claim(
            "More shadow data helps the transfer attack",
            "each architecture's AUC interval at the largest shadow set lies above its interval at the smallest",
            "; ".join(f"{a}: {lo['auc']:.3f}{_ci_text(lo)} -> {hi['auc']:.3f}{_ci_text(hi)}" for a, lo, hi, _ in grows),
            [g[3] for g in grows],
        ),
    ]


def _goal_verdict(r: dict[str, Any]) -> Verdict:
    """The goal row's own verdict; a summary written before verdicts existed (a ``met`` flag read off the point
    estimate) is judged again from its interval and candidate count."""
    if r.get("verdict") in VERDICTS:
        return cast(Verdict, r["verdict"])
    resolved = resolution(r.get("n_nonmembers") or 0, r["fpr"]).interval
    return verdict(r.get("ratio_low"), r.get("ratio_high"), r["goal_ratio"], resolved=resolved)


def judged_goal_row(r: dict[str, Any]) -> dict[str, Any]:
    """A ``goal`` row as the report shows it: its verdict (judged again for an older summary, whose ``met`` flag
    is dropped), and ``None`` for the TPRs and ratio its candidates cannot resolve (older summaries printed them)."""
    row = {k: v for k, v in r.items() if k != "met"}
    row["verdict"] = _goal_verdict(r)
    res = resolution(r.get("n_nonmembers") or 0, r["fpr"])
    hidden: tuple[str, ...] = () if res.interval else ("ratio_low", "ratio_high")
    hidden += () if res.point else ("tpr", "lira_tpr", "ratio")
    row.update({k: None for k in hidden if k in row})
    if (hidden or row.get("best_label_only") is None) and not row.get("na"):
        row["na"] = res.reason() or "no label-only attack within the query budget has a ratio"
    return row


def _num(v: Any, digits: int) -> str:
    return "n/a" if v is None or v != v else f"{v:.{digits}f}"


def _lowfpr_goals(tables: dict[str, Rows]) -> list[Claim]:
    goals = []
    for r in map(judged_goal_row, tables.get("goal", [])):
        what = "the goal" if r["fpr"] >= 0.01 else "the stretch goal"
        who = r["best_label_only"] or "no label-only attack"
        counts = f" on {r['n_members']} + {r['n_nonmembers']} candidates" if r.get("n_nonmembers") else ""
        measured = f"{who}{counts}"
        if r.get("tpr") is not None:
            measured = (
                f"{who}: TPR {_num(r['tpr'], 3)} vs LiRA {_num(r.get('lira_tpr'), 3)}, ratio {_num(r.get('ratio'), 2)} "
                f"[{_num(r.get('ratio_low'), 2)}, {_num(r.get('ratio_high'), 2)}]{counts}"
            )
        if r.get("na"):
            measured += f"; {r['na']}"
        need = resolution(0, r["fpr"]).interval_needs
        goals.append(
            {
                "claim": f"A label-only attack reaches half of online LiRA's TPR at {fpr_label(r['fpr'])} FPR ({what})",
                "rule": f"the best label-only attack within {r['goal_queries']:,} queries per candidate has at least "
                f"{r['goal_ratio']} times LiRA's TPR on the same candidates: met when the ratio's 95% interval "
                f"lies above {r['goal_ratio']}, not met when below, inconclusive otherwise or below {need:,} "
                "non-members",
                "measured": measured,
                "verdict": r["verdict"],
            }
        )
    return goals


CHECKS: dict[str, Callable[[dict[str, Rows]], list[Claim]]] = {
    "sizes": _sizes,
    "queries": _queries,
    "norms": _norms,
    "threshold": _threshold,
    "distances": _distances,
    "transfer-ablation": _transfer,
}
GOALS: dict[str, Callable[[dict[str, Rows]], list[Claim]]] = {"lowfpr": _lowfpr_goals}


def check_claims(kind: str, tables: dict[str, Rows]) -> list[Claim]:
    """The paper's claims for an experiment of ``kind``, each checked by its stated rule (empty when unknown)."""
    check = CHECKS.get(kind)
    return check(tables) if check else []


def check_goals(kind: str, tables: dict[str, Rows]) -> list[Claim]:
    """This project's goals for an experiment of ``kind`` (not the paper's claims), each judged on its interval:
    ``met``, ``not met`` or ``inconclusive`` (empty when the experiment has none)."""
    check = GOALS.get(kind)
    return check(tables) if check else []


def is_project_goal(kind: str) -> bool:
    """Whether the plan's ``claim`` of an experiment of ``kind`` is a project goal rather than the paper's claim."""
    return kind in GOALS
