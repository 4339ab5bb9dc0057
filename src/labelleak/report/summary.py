"""The report's executive summary, from ``results.json`` alone: the risk level and why in plain words, the threat
model in one paragraph, what to do, and which settings apply to this kind of target.

Every sentence is built from the numbers of the verdict (:mod:`labelleak.report.verdict`): a paragraph never says
more than the lower bounds it quotes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from labelleak.attacks import attack_settings, create_attack
from labelleak.attacks.registry import AUDIT_SETTINGS
from labelleak.counts import resolution
from labelleak.epsilon import bound_from_counts
from labelleak.errors import LabelleakError
from labelleak.report.verdict import target_kind
from labelleak.risk import CHANCE_TPR, detectable_tpr

LEVEL_WORDS = {
    "high": "an adversary who sees only the predicted labels can tell training members from non-members",
    "medium": "membership leaks through the labels, measurably but not strongly",
    "low": "membership leaks on average (AUC above chance), but no member is shown exposed at a low false-positive "
    "rate",
    "none": "no leakage detected at this sample size",
}
TARGET_WORDS = {
    "trained": "a target labelleak trained",
    "model-file": "a model file",
    "remote": "a remote service",
    "python": "a Python model",
}
# settings of a target labelleak trains on a split it draws, and of the other kinds of target
TRAINED_ONLY = ("dataset", "data", "train_size", "test_size", "reserve_train", "eval_size", "shadow_size", "defense")
TRAINING = ("arch", "width", "epochs", "lr", "lr_schedule", "batch_size", "shadow_arch")  # also the adversary's
OWN_DATA = ("members", "nonmembers", "shadow", "input_shape", "bounds", "n_classes")
ONLY_FOR: dict[str, tuple[str, ...]] = {
    "model-file": ("model", "mean", "std", "layout", "output", "trust"),
    "remote": (
        "target", "api_key_env", "protocol", "model_name", "rest_spec", "concurrency", "timeout", "retries",
        "max_retry_wait", "retry_window",
    ),
}  # fmt: skip
RAY = ("ray_address", "workers", "worker_cpus", "worker_gpus")
DATA_FREE = ("top_t", "noise_samples")  # the data-free threshold of the attacks that report one


def _capabilities(name: str) -> tuple[bool, bool]:
    """``(uses shadow data, trains reference models)`` of the attack registered as ``name`` (asked, not guessed
    from its name); ``(False, False)`` for a name the registry does not know."""
    try:
        attack = create_attack(name)
    except LabelleakError:
        return False, False
    return bool(attack.needs_shadow), bool(attack.trains_reference_models)


def _label_only(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: e for n, e in results.get("attacks", {}).items() if e.get("threat_model") == "label-only"}


def _found(results: dict[str, Any]) -> list[str]:
    """Label-only attacks whose own eps_LB (95%) is above 0: they show members beyond what chance explains."""
    return [n for n, e in _label_only(results).items() if ((e.get("epsilon") or {}).get("eps_lb") or 0.0) > 0.0]


def _detectable(results: dict[str, Any], v: dict[str, Any]) -> tuple[bool, str]:
    """``(measurable, clause)``: what TPR at 1% FPR this sample could detect, or why it cannot measure one."""
    attacks = results.get("attacks", {})
    best: dict[str, Any] = attacks.get(v.get("strongest_attack") or "") or next(iter(attacks.values()), {})
    n_m, n_n = int(best.get("n_members") or 0), int(best.get("n_nonmembers") or 0)
    res = resolution(n_n, 0.01)
    if not res.interval or n_m == 0:
        return False, f"TPR at 1% FPR cannot be measured here: {res.interval_shortfall()}"
    x = detectable_tpr(n_m, level=float(v.get("per_attack_confidence") or 0.95))
    if x is None:
        return False, f"{n_m} member candidates are too few to show any TPR above chance at 1% FPR"
    return True, f"could detect TPR >= {x:.1%} at 1% FPR ({n_m:,} member and {n_n:,} non-member candidates)"


def _most_eps(v: dict[str, Any]) -> float:
    """The largest eps_LB this audit's evaluation half could show (perfect separation)."""
    b = v.get("bound") or {}
    n_m, n_n = int(b.get("n_members") or 0), int(b.get("n_nonmembers") or 0)
    level = float(v.get("per_attack_confidence") or 0.95)
    return bound_from_counts(n_m, 0, n_m, n_n, delta=float(v["delta"]), confidence=level)[0]


def risk_paragraph(results: dict[str, Any]) -> str | None:
    """The risk level and why, in plain words from the verdict's numbers (``None`` before verdicts existed)."""
    v = results.get("verdict")
    if not v:
        return None
    level, eps, delta = v["risk_level"], float(v["eps_lb"]), float(v["delta"])
    words = LEVEL_WORDS[level]
    if v.get("threat_model") == "scores":  # no label-only attack ran: the verdict rests on score-based ones
        words = words.replace("sees only the predicted labels", "sees the target's scores")
        words = words.replace("through the labels", "through the scores")
    parts = [f"Risk {level}: {words}"]
    measurable, clause = _detectable(results, v)
    if level == "none":
        parts[0] += f", which {clause}" if measurable else f". {clause}"
    strongest = v.get("strongest_attack")
    if eps > 0:
        parts.append(
            f"The attacks rule out differentially private training with epsilon below {eps:.2f} (delta {delta:g}, "
            f"{v['confidence']:.0%} confidence, strongest attack {strongest})"
        )
        b = v.get("bound") or {}
        if b.get("form") == "tnr/fnr":  # the bound says which side of the test decided it
            parts.append(
                f"That bound rests on the members {strongest} does not miss: its threshold flags {b['tp']} of "
                f"{b['n_members']} evaluation members but only {b['fp']} of {b['n_nonmembers']} non-members, and no "
                "training that private could miss so few members, even though no member need stand out at a low "
                "false-positive rate"
            )
    else:
        parts.append(
            f"No epsilon is ruled out (eps_LB 0); on {v.get('n_evaluation', 0):,} evaluation candidates the bound "
            f"could reach at most {_most_eps(v):.2f}"
        )
    tpr = v.get("tpr_at_1pct_fpr_low")
    if tpr is not None and tpr > CHANCE_TPR:
        parts.append(f"At 1% false-positive rate, at least {tpr:.1%} of members are flagged (chance is 1%)")
    elif level != "none":
        parts.append(
            f"No attack's TPR at 1% FPR clears chance at its lower bound; this sample {clause}"
            if measurable
            else clause
        )
    exposed = results.get("exposed") or {}
    flagged = (exposed.get("members_flagged_by_any") or {}).get("0.01")
    if flagged:
        n_m, over = int(exposed["n_members"]), int(exposed.get("any_over_attacks") or 1)
        parts.append(
            f"{flagged:,} of {n_m:,} members are flagged at 1% FPR by at least one of {over} attack(s) (chance "
            f"alone flags up to about {0.01 * n_m * over:,.0f})"
        )
    one = v.get("one_run") or {}
    if one.get("eps_lb") is not None:
        parts.append(
            f"The one-run audit ({one['attack']}, {one['correct']} of {one['guesses']} guesses right"
            f"{' on canaries, each trained on by its own coin' if one.get('candidates') == 'canaries' else ''}) gives "
            f"eps_LB {one['eps_lb']:.2f}"
        )
    claim = v.get("claim")
    if claim:
        said = "refutes" if claim["refuted"] else "does not refute"
        parts.append(f"The audit {said} the claim epsilon {claim['epsilon']:g} (delta {claim['delta']:g})")
    return ". ".join(parts) + "."


def threat_paragraph(results: dict[str, Any]) -> str:
    """What the adversary had: label-only queries (per candidate and in all), the cap, shadow data, reference
    models; score-based attacks named apart as a stronger adversary."""
    label = _label_only(results)
    config, split = results.get("config", {}), results.get("split", {})
    n_cand = sum(int(e.get("n_members") or 0) + int(e.get("n_nonmembers") or 0) for e in list(label.values())[:1])
    per = {n: float(e.get("queries_per_sample") or 0.0) for n, e in label.items()}
    parts = [
        f"The adversary saw only the predicted label of each query it sent to {TARGET_WORDS[target_kind(results)]}"
        f" ({len(label)} label-only attack(s) on {n_cand:,} candidates: {', '.join(label) or 'none'})"
    ]
    if per:
        lo, hi = min(per.values()), max(per.values())
        spread = f"{lo:,.0f}" if round(lo) == round(hi) else f"between {lo:,.0f} and {hi:,.0f}"
        asked = results.get("queries_asked")
        total = f", {asked:,} queries to the target in all" if isinstance(asked, int) else ""
        limit = config.get("queries")
        budget = f" (budget {limit:,} each)" if isinstance(limit, int) else " (no per-candidate budget)"
        noun = "query" if spread == "1" else "queries"
        parts.append(f"It sent {spread} {noun} per candidate on average, by attack{budget}{total}")
    cap = config.get("max_total_queries")
    parts.append(f"A total cap of {cap:,} queries applied" if cap else "No total cap on the queries applied")
    used = {n: _capabilities(n) for n in label}
    shadow_n = int(split.get("shadow_train") or 0) + int(split.get("shadow_test") or 0)
    shadowed = [n for n, (s, _) in used.items() if s]
    if shadowed:
        parts.append(
            f"It had {shadow_n:,} labelled samples of its own from the target's distribution (shadow data), used by "
            f"{', '.join(shadowed)}"
        )
    else:
        parts.append("No attack used data of its own beyond the candidates")
    refs = {n: (label[n].get("params") or {}).get("n_reference") for n, (_, r) in used.items() if r}
    if refs:
        parts.append(
            "Reference models trained by the adversary: "
            + ", ".join(f"{n} {k if k is not None else '?'}" for n, k in refs.items())
        )
    stronger = [n for n, e in results.get("attacks", {}).items() if e.get("threat_model") not in (None, "label-only")]
    if stronger:
        parts.append(f"Score-based attacks ({', '.join(stronger)}) assume a stronger adversary and are reported apart")
    return ". ".join(parts) + "."


def _defend_statement(folder: Path, results: dict[str, Any]) -> str | None:
    """The recommendation of the ``labelleak defend`` run this audit folder is part of: its parent holds the
    matrix, and one of the matrix's rows is this audit's defense."""
    path = folder.parent / "matrix.json"
    try:
        matrix = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return None
    rec, rows = matrix.get("recommendation"), matrix.get("rows") or []
    defense = results.get("config", {}).get("defense", "none")
    if not isinstance(rec, dict) or not any(isinstance(r, dict) and r.get("defense") == defense for r in rows):
        return None
    return rec.get("statement")


def _defend_command(results: dict[str, Any]) -> str:
    config = results.get("config", {})
    parts = ["labelleak defend", f"--dataset {config.get('dataset', 'digits')}"]
    if config.get("data"):
        parts.append(f"--data {config['data']}")
    if config.get("train_size"):
        parts.append(f"--train-size {config['train_size']}")
    found = _found(results) or list(_label_only(results))
    if found:
        parts.append(f"--attacks {','.join(found)}")
    return " ".join(parts)


def recommended_actions(results: dict[str, Any], folder: Path) -> list[str]:
    """What to do, from the risk level, which attacks found members and how many queries they needed."""
    v = results.get("verdict") or {}
    level, kind = v.get("risk_level", "none"), target_kind(results)
    actions: list[str] = []
    one = v.get("one_run") or {}
    accountant = one.get("accountant_epsilon")
    if accountant is not None and one.get("eps_lb") is not None and one["eps_lb"] > accountant:
        actions.append(
            f"The one-run bound {one['eps_lb']:.2f} is above the accountant's epsilon {accountant:g}: the DP training "
            "or its accounting is wrong. Check them before anything else"
        )
    if (v.get("claim") or {}).get("refuted"):
        actions.append("The claimed DP guarantee is refuted: check the implementation and its privacy accounting")
    if level in ("high", "medium"):
        verb = "Do not release the model as it is" if level == "high" else "Treat the model as leaking membership"
        statement = _defend_statement(folder, results) if kind == "trained" else None
        if statement:
            actions.append(f"{verb}. labelleak defend measured defenses for this target: {statement}")
        elif kind == "trained":
            actions.append(
                f"{verb}. Measure what the defenses cost and buy for this target: {_defend_command(results)}"
            )
        else:
            actions.append(
                f"{verb}. Retrain it with a defense and rerun this audit: DP-SGD gives a provable bound; weight decay, "
                "early stopping and data augmentation narrow the gap between members and non-members "
                "(labelleak defend measures them on targets it trains)"
            )
        found = _found(results)
        cheap = [n for n in found if float(_label_only(results)[n].get("queries_per_sample") or 0) <= 1.5]
        costly = [n for n in found if n not in cheap]
        if cheap:
            actions.append(
                f"{', '.join(cheap)} found members with about one query per candidate: rate limits will not stop "
                "them, the leak is in the labels themselves (members are classified better than non-members)"
            )
        if costly:
            actions.append(
                f"{', '.join(costly)} needed many queries per candidate: a per-client query limit makes them "
                "costlier (the queries figure shows how their AUC falls with fewer queries)"
            )
    elif level == "low":
        actions.append(
            "Membership leaks on average only. Audit more candidates to resolve low false-positive rates "
            "(TPR at 0.1% FPR needs 2,000 non-members) before release"
        )
    else:
        actions.append(
            "No action is needed on this evidence, but it is no proof of privacy: a larger audit can detect smaller "
            "leaks, and only DP training (e.g. --defense dp=8) gives a guarantee"
        )
    return [a if a.endswith(".") else a + "." for a in actions]


def applicable_settings(results: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The configuration keys that apply to this audit's kind of target, its attacks and backend, and the names
    of the others (in results.json, not shown)."""
    config = results.get("config", {})
    kind = target_kind(results)
    names = list(results.get("attacks", {}))
    trains = kind == "trained" or any(any(_capabilities(n)) for n in names)
    taken: set[str] = set()
    for n in names:
        try:
            taken.update(attack_settings(n))
        except LabelleakError:
            continue
    hidden = set() if kind == "trained" else set(TRAINED_ONLY)
    hidden |= set() if trains else set(TRAINING)
    hidden |= set() if kind != "trained" else set(OWN_DATA)
    for k, keys in ONLY_FOR.items():
        hidden |= set() if kind == k else set(keys)
    hidden |= {k for k in AUDIT_SETTINGS if k in config and k not in taken and k != "seed"}
    hidden |= set() if config.get("backend") == "ray" else set(RAY)
    hidden |= set() if any(e.get("data_free") for e in results.get("attacks", {}).values()) else set(DATA_FREE)
    shown = {k: v for k, v in config.items() if k not in hidden}
    return shown, sorted(k for k in config if k in hidden)


def summary_context(results: dict[str, Any], folder: Path) -> dict[str, Any] | None:
    """What the report's executive summary shows (``None`` for results written before verdicts existed)."""
    risk = risk_paragraph(results)
    if risk is None:
        return None
    return {
        "level": results["verdict"]["risk_level"],
        "risk": risk,
        "threat": threat_paragraph(results),
        "actions": recommended_actions(results, folder),
        "kind": target_kind(results),
    }
