"""The paper's claims (Li & Zhang, CCS 2021) and this project's own goals, checked against one reproduced
experiment's tables.

Each check states its rule, what this run measured and a verdict; a verdict is only as good as its rule, so the
rule is shown beside it on the page. A paper's claim is judged ``holds``, ``partly`` or ``does not hold`` by its
rule; a project goal (such as issue 16's ratio to LiRA) is not the paper's and is listed apart, judged on its
interval (:func:`labelleak.verdicts.verdict`): ``met``, ``not met`` or ``inconclusive``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from labelleak.counts import resolution
from labelleak.report.lowfpr import fpr_label
from labelleak.verdicts import VERDICTS, Verdict, verdict

Rows = list[dict[str, Any]]
Claim = dict[str, str]


def _claim(claim: str, rule: str, measured: str, ok: int, of: int) -> Claim:
    verdict = "holds" if ok == of and of else "does not hold" if ok == 0 else "partly"
    return {"claim": claim, "rule": rule, "measured": measured, "verdict": f"{verdict} ({ok} of {of})"}


def _by(rows: Rows, key: str) -> dict[Any, Rows]:
    groups: dict[Any, Rows] = {}
    for r in rows:
        groups.setdefault(r[key], []).append(r)
    return groups


def _sizes(tables: dict[str, Rows]) -> list[Claim]:
    rows = [r for r in tables.get("sizes", []) if r.get("auc") is not None]
    attacks = _by(rows, "attack")
    falling = []
    for name, rs in attacks.items():
        aucs = [r["auc"] for r in sorted(rs, key=lambda r: r["train_size"])]
        falling.append((name, aucs[0], aucs[-1], len(aucs) > 1 and aucs[-1] < aucs[0]))
    claims = [
        _claim(
            "Leakage falls as the training set grows",
            "each attack's AUC at the largest size is below its AUC at the smallest",
            "; ".join(f"{n} {a:.3f} -> {b:.3f}" for n, a, b, _ in falling),
            sum(f[3] for f in falling),
            len(falling),
        )
    ]
    gaps = []
    for size, rs in sorted(_by(rows, "train_size").items()):
        label = [r["auc"] for r in rs if r.get("threat_model") == "label-only"]
        score = [r["auc"] for r in rs if r.get("threat_model") == "scores"]
        if label and score:
            gaps.append((size, max(label), max(score)))
    if gaps:
        claims.append(
            _claim(
                "Label-only attacks leak about as much as score-based ones",
                "at each size, the best label-only AUC is within 0.05 of the best score-based AUC",
                "; ".join(f"{s} members: {lo:.3f} vs {sc:.3f}" for s, lo, sc in gaps),
                sum(sc - lo <= 0.05 for _, lo, sc in gaps),
                len(gaps),
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
    return [
        _claim(
            "A few thousand queries per candidate are enough",
            "each attack's AUC within 2,000 queries is within 0.02 of its AUC at the whole budget",
            "; ".join(f"{n}: {a:.3f} at {qa} vs {b:.3f} at {qb}" for n, qa, a, qb, b in found),
            sum(b - a <= 0.02 for _, _, a, _, b in found),
            len(found),
        )
    ]


def _norms(tables: dict[str, Rows]) -> list[Claim]:
    rows = tables.get("norms", [])
    ok = [all(r.get(f"auc_{k}", 0) > 0.5 for k in ("l0", "l1", "l2", "linf")) for r in rows]
    l0_least = [r["auc_l0"] <= min(r["auc_l1"], r["auc_l2"], r["auc_linf"]) for r in rows]
    text = "; ".join(
        f"{r['attack']}: " + ", ".join(f"{k} {r[f'auc_{k}']:.3f}" for k in ("l0", "l1", "l2", "linf")) for r in rows
    )
    return [
        _claim("Every norm separates members from non-members", "AUC above 0.5 in every norm", text, sum(ok), len(ok)),
        _claim("L0 separates least", "the L0 AUC is the lowest of the four", text, sum(l0_least), len(l0_least)),
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
                "values of t whose accuracy is within 0.05 of the shadow-calibrated accuracy; holds when all do",
                f"shadow-calibrated accuracy {shadow[0]['accuracy']:.3f}; close at t = "
                + (", ".join(f"{t:g}" for t in close) or "none"),
                len(close),
                len(sweep),
            )
        )
    return claims


def _distances(tables: dict[str, Rows]) -> list[Claim]:
    rows = tables.get("distances", [])
    return [
        _claim(
            "Members lie farther from the decision boundary than non-members",
            "member median above non-member median and AUC above 0.5, for each quantity",
            "; ".join(
                f"{r['quantity']}: median {r['member_median']:.3f} vs {r['nonmember_median']:.3f}, AUC {r['auc']:.3f}"
                for r in rows
            ),
            sum(r["member_median"] > r["nonmember_median"] and r["auc"] > 0.5 for r in rows),
            len(rows),
        )
    ]


def _transfer(tables: dict[str, Rows]) -> list[Claim]:
    rows = tables.get("transfer_ablation", [])
    by_size = _by(rows, "shadow_size")
    spreads = {s: max(r["auc"] for r in rs) - min(r["auc"] for r in rs) for s, rs in by_size.items()}
    grows = []
    for arch, rs in _by(rows, "shadow_arch").items():
        rs = sorted(rs, key=lambda r: r["shadow_size"])
        grows.append((arch, rs[0]["auc"], rs[-1]["auc"], len(rs) > 1 and rs[-1]["auc"] > rs[0]["auc"]))
    return [
        _claim(
            "The transfer attack does not need the target's architecture",
            "at each shadow-set size, the AUCs of all shadow architectures lie within 0.03 of each other",
            "; ".join(f"{s} shadow samples: spread {v:.3f}" for s, v in sorted(spreads.items())),
            sum(v <= 0.03 for v in spreads.values()),
            len(spreads),
        ),
        _claim(
            "More shadow data helps the transfer attack",
            "each architecture's AUC at the largest shadow set is above its AUC at the smallest",
            "; ".join(f"{a}: {lo:.3f} -> {hi:.3f}" for a, lo, hi, _ in grows),
            sum(g[3] for g in grows),
            len(grows),
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
