"""The target's accuracy on the audited candidates, beside the leakage, for targets labelleak did not train.

A model file or a remote target comes with no accuracy of its own, so a wrong ``--mean`` or ``--layout`` went
unseen: the target then misclassifies many members, the boundary attacks score those 0 and the audit ends near
chance, which reads as "no leakage". Accuracy on the member candidates below 0.5, or below that on the
non-members (a model fits its training data at least as well as new data), is the sign; the audit says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labelleak.attacks import Status
from labelleak.errors import BudgetExhaustedError
from labelleak.logs import get_logger
from labelleak.oracle import LabelOracle
from labelleak.pipeline.setup import AuditSetup

log = get_logger(__name__)

PREPROCESSING = "--mean/--std/--bounds/--layout"


def accuracy_of(is_member: np.ndarray, correct: np.ndarray, labelled: np.ndarray) -> dict[str, Any]:
    """Accuracy on the labelled member and non-member candidates (NaN where none of a kind was labelled)."""
    out: dict[str, Any] = {}
    for key, part in (("members", is_member), ("nonmembers", ~is_member)):
        asked = part & labelled
        out[f"{key}_accuracy"] = float(correct[asked].mean()) if asked.any() else float("nan")
        out[f"{key}_labelled"] = int(asked.sum())
    return out


def accuracy_from_status(is_member: np.ndarray, status: np.ndarray) -> dict[str, Any]:
    """:func:`accuracy_of` read from the statuses of an attack that labels every candidate once (``gap``)."""
    labelled = (status == Status.OK) | (status == Status.MISCLASSIFIED)
    return accuracy_of(is_member, status == Status.OK, labelled)


def preprocessing_warning(accuracy: dict[str, Any]) -> str | None:
    """One line when the member accuracy is below 0.5 or below the non-member accuracy; ``None`` otherwise."""
    m, n = accuracy.get("members_accuracy"), accuracy.get("nonmembers_accuracy")
    if m is None or m != m:
        return None
    if not (m < 0.5 or (n is not None and n == n and m < n)):
        return None
    return (
        f"target accuracy {m:.1%} on member candidates, {n:.1%} on non-members: "
        f"the preprocessing ({PREPROCESSING}) may be wrong"
    )


def measure_utility(
    entries: dict[str, dict[str, Any]], oracle: LabelOracle, setup: AuditSetup, *, left: int | None
) -> dict[str, Any]:
    """The target's accuracy on the candidates: from an attack that already labelled them (``source``: its name,
    no query), or one labelled query per candidate (counted in ``queries``), within ``left`` under a total cap."""
    for name, entry in entries.items():
        if "candidate_accuracy" in entry:
            return {**entry["candidate_accuracy"], "source": name, "queries": 0}
    n = len(setup.x)
    if left is not None and left < n:
        return {"skipped": f"--max-total-queries leaves {left} queries, {n} needed to label the candidates"}
    try:
        labels = np.asarray(oracle.predict_labels(setup.x))
    except BudgetExhaustedError as exc:
        return {"skipped": f"--max-total-queries: {exc}"}
    correct = labels == setup.y
    return {**accuracy_of(setup.is_member, correct, np.ones(n, dtype=bool)), "source": "labels", "queries": n}


def with_warning(utility: dict[str, Any]) -> dict[str, Any]:
    """``utility`` with the :func:`preprocessing_warning` added (and logged) when there is one."""
    warning = preprocessing_warning(utility)
    if warning is not None:
        log.warning("%s", warning)
        return {**utility, "warning": warning}
    return utility
