"""The defense matrix, from audit results: one row per defense, and the Pareto front of its points.

It reads results only (``results.json`` as a dictionary), so ``defend``, ``reproduce defenses`` and the report
build the same rows; :mod:`labelleak.defenses.recommendation` chooses among them.
"""

from __future__ import annotations

from typing import Any


def family_and_strength(defense: str) -> tuple[str, float | None]:
    """``l2=0.001`` -> (``l2``, 0.001); ``l2=5e-4+augment`` -> (``l2+augment``, 0.0005); ``none`` -> (``none``,
    None)."""
    parts = [p.strip().partition("=") for p in defense.strip().split("+")]
    family = "+".join(name for name, _, _ in parts) or "none"
    raw = parts[0][2]
    try:
        return family, float(raw) if raw else None
    except ValueError:
        return family, None


def matrix_row(defense: str, results: dict[str, Any]) -> dict[str, Any]:
    """One row of the matrix: the defense's family and strength, utility, generalisation gap, the accountant's
    epsilon (and ``dp_tuning``, what DP-SGD's tuning read), the verdict's eps_LB and one-run eps_LB, and each
    attack's AUC (bootstrap interval) and TPR at 0.1% and 1% FPR (at the threshold chosen on held-out
    non-members, with its exact interval, and the ROC reading in ``..._roc``; ``None`` where the candidates cannot
    resolve the FPR, with the reason in ``..._na``)."""
    target = results["target"]
    family, strength = family_and_strength(defense)
    # a defense that changes the answers (label randomisation) is worth the accuracy of what it answers
    train = target.get("served_train_accuracy", target["train_accuracy"])
    test = target.get("served_test_accuracy", target["test_accuracy"])
    row: dict[str, Any] = {
        "defense": defense,
        "family": family,
        "strength": strength,
        "train_accuracy": train,
        "test_accuracy": test,
        "gap": train - test,
        "epsilon": target.get("epsilon"),
        "evaluation": target.get("evaluation"),  # adaptive: the adversary's models knew the defense
        "dp_tuning": target.get("dp_tuning"),  # "private": the epsilon excludes the tuning (models/private.py)
        "eps_lb": (results.get("verdict") or {}).get("eps_lb"),
        # the one-run audit's bound of the training pipeline, beside the accountant's epsilon (None: n/a)
        "one_run_eps_lb": ((results.get("verdict") or {}).get("one_run") or {}).get("eps_lb"),
    }
    nan2 = [float("nan")] * 2
    for name, entry in results["attacks"].items():
        row[f"{name}.auc"] = entry["auc"]
        row[f"{name}.auc_low"], row[f"{name}.auc_high"] = entry.get("auc_ci") or nan2
        for fpr, label in (("0.001", "0.1%"), ("0.01", "1%")):
            # the held-out threshold's TPR, the number its exact interval is about (the ROC reading over all
            # non-members, ``_roc``, can lie outside that interval); the ROC reading where there is no interval
            exact = (entry.get("tpr_at_fpr_exact") or {}).get(fpr) or {}
            roc = entry["tpr_at_fpr"].get(fpr)
            row[f"{name}.tpr@{label}"] = exact.get("tpr", roc)
            row[f"{name}.tpr@{label}_roc"] = roc
            ci = (entry.get("tpr_at_fpr_ci") or {}).get(fpr) or nan2
            row[f"{name}.tpr@{label}_low"], row[f"{name}.tpr@{label}_high"] = ci
            row[f"{name}.tpr@{label}_na"] = (entry.get("tpr_at_fpr_na") or {}).get(fpr)
        row[f"{name}.threat"] = entry["threat_model"]
    return row


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (leakage, accuracy) points no other point beats on both (lower leakage, higher accuracy), by leakage."""
    front: list[tuple[float, float]] = []
    for leak, acc in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or acc > front[-1][1]:
            front.append((leak, acc))
    return front
