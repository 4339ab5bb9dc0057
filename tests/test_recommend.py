"""The recommendation on constructed matrices: ties, no feasible point, NaN rows, targets out of range."""

from __future__ import annotations

import math

import pytest

from labelleak.defenses.matrix import pareto_front
from labelleak.defenses.recommendation import recommend, strongest_label_only
from labelleak.errors import InvalidInputError

ATTACKS = ["gap", "hsja", "loss"]


def _row(defense, acc, gap_tpr, hsja_tpr, gap_auc=0.6, hsja_auc=0.6, loss_tpr=0.5):
    return {
        "defense": defense,
        "test_accuracy": acc,
        "gap.threat": "label-only",
        "gap.auc": gap_auc,
        "gap.tpr@1%": gap_tpr,
        "hsja.threat": "label-only",
        "hsja.auc": hsja_auc,
        "hsja.tpr@1%": hsja_tpr,
        "loss.threat": "scores",  # a score attack never decides: the recommendation is about label-only ones
        "loss.auc": 0.9,
        "loss.tpr@1%": loss_tpr,
    }


def test_cheapest_point_below_the_target_wins_and_the_strongest_attack_decides():
    rows = [
        _row("none", 0.80, 0.05, 0.08),
        _row("l2=1e-3", 0.78, 0.004, 0.02),  # hsja still above the target: not feasible
        _row("dp=8", 0.60, 0.002, 0.005),
        _row("l2=1e-2", 0.70, 0.003, 0.009),
    ]
    rec = recommend(rows, ATTACKS, target_tpr=0.01)
    assert rec.found and rec.defense == "l2=1e-2"
    assert rec.accuracy_loss == pytest.approx(0.10) and rec.baseline_accuracy == 0.80
    assert rec.strongest.tpr_attack == "hsja" and rec.strongest.tpr == 0.009
    assert "l2=1e-2" in rec.statement() and "0.100 below none" in rec.statement()
    # an AUC target excludes the cheaper point whose AUC is too high
    rows[3]["hsja.auc"] = 0.58
    rows[2]["gap.auc"] = rows[2]["hsja.auc"] = 0.51
    assert recommend(rows, ATTACKS, target_tpr=0.01, target_auc=0.55).defense == "dp=8"
    # a point more accurate than none (public pre-training) is stated as a gain, not a negative loss
    rows.append(_row("dp=8+public=500", 0.85, 0.002, 0.004))
    better = recommend(rows, ATTACKS, target_tpr=0.01)
    assert better.defense == "dp=8+public=500" and "0.050 above none" in better.statement()


def test_ties_in_accuracy_go_to_lower_leakage_then_to_the_earlier_row():
    rows = [_row("none", 0.8, 0.1, 0.1), _row("a", 0.7, 0.005, 0.006), _row("b", 0.7, 0.002, 0.004)]
    assert recommend(rows, ATTACKS).defense == "b"
    rows.append(_row("c", 0.7, 0.002, 0.004))  # identical to b: the earlier row stays
    assert recommend(rows, ATTACKS).defense == "b"


def test_no_feasible_point_is_stated_with_the_closest_one():
    rows = [_row("none", 0.8, 0.2, 0.3), _row("l2=1e-2", 0.7, 0.05, 0.04), _row("relax", 0.75, 0.1, 0.1)]
    rec = recommend(rows, ATTACKS, target_tpr=0.01)
    assert not rec.found and rec.defense is None and rec.closest == "l2=1e-2"
    assert rec.statement().startswith("No measured defense brings every label-only attack to TPR@1%FPR < 0.01")
    assert rec.to_dict()["statement"] == rec.statement()


def test_nan_rows_are_unmeasured_never_recommended():
    nan = float("nan")
    rows = [
        _row("none", 0.8, 0.2, 0.3),
        _row("broken", nan, 0.0, 0.0),  # no accuracy: cannot show its cost
        {"defense": "no-label-only", "test_accuracy": 0.8, "loss.threat": "scores", "loss.auc": 0.5, "loss.tpr@1%": 0},
        _row("half", 0.75, nan, 0.004, gap_auc=nan),  # one attack unmeasured: the other one still counts
    ]
    rec = recommend(rows, ATTACKS, target_tpr=0.01)
    assert rec.unmeasured == ["broken", "no-label-only"]
    assert rec.defense == "half" and rec.strongest.tpr_attack == "hsja"
    assert strongest_label_only(rows[2], ATTACKS) is None


def test_without_an_undefended_row_the_best_accuracy_is_the_baseline():
    rec = recommend([_row("a", 0.7, 0.001, 0.001), _row("b", 0.9, 0.5, 0.5)], ATTACKS)
    assert rec.baseline == "best test accuracy" and rec.accuracy_loss == pytest.approx(0.2)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 2.0, math.nan])
def test_target_tpr_must_lie_strictly_between_0_and_1(bad):
    with pytest.raises(InvalidInputError, match="target_tpr: expected a rate in \\(0, 1\\)"):
        recommend([], ATTACKS, target_tpr=bad)
    with pytest.raises(InvalidInputError, match="target_auc"):
        recommend([], ATTACKS, target_tpr=0.01, target_auc=1.5)


def test_pareto_front_keeps_only_undominated_points():
    pts = [(0.1, 0.8), (0.05, 0.7), (0.06, 0.6), (0.2, 0.79), (0.01, 0.3)]
    assert pareto_front(pts) == [(0.01, 0.3), (0.05, 0.7), (0.1, 0.8)]
