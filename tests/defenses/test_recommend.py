"""The recommendation on constructed matrices: upper bounds decide, never point estimates; the Pareto ranking;
unresolvable FPRs; the epsilon target, which a lower bound can refute but never meet; targets out of range."""

from __future__ import annotations

import math

import pytest

from labelleak.counts import clopper_pearson
from labelleak.defenses.matrix import matrix_row, pareto_front
from labelleak.defenses.recommendation import annotate, epsilon_status, recommend, strongest_label_only
from labelleak.errors import InvalidInputError
from labelleak.report.markdown import matrix_markdown, recommendation_markdown

ATTACKS = ["gap", "hsja", "loss"]
NAN = float("nan")


def _row(defense, acc, gap_tpr, hsja_tpr, *, gap_high=None, hsja_high=None, auc_high=0.62, epsilon=None, eps_lb=0.0):
    """A matrix row whose label-only intervals are [tpr / 2, high] (high defaults to 1.5 x the point)."""
    row = {"defense": defense, "test_accuracy": acc, "epsilon": epsilon, "eps_lb": eps_lb, "dp_tuning": None}
    for name, tpr, high in (("gap", gap_tpr, gap_high), ("hsja", hsja_tpr, hsja_high)):
        high = tpr * 1.5 if high is None else high
        row.update({f"{name}.threat": "label-only", f"{name}.auc": 0.6, f"{name}.auc_high": auc_high})
        row.update({f"{name}.tpr@1%": tpr, f"{name}.tpr@1%_low": tpr / 2, f"{name}.tpr@1%_high": high})
    # a score attack never decides: the recommendation is about label-only ones
    row.update({"loss.threat": "scores", "loss.auc": 0.9, "loss.tpr@1%": 0.5, "loss.tpr@1%_high": 0.6})
    return row


def test_a_point_below_the_target_whose_interval_is_not_is_not_shown():
    # dp=8 as in the issue: 1 member of 200 found (0.005), its exact interval reaches 0.0275
    low, high = clopper_pearson(1, 200)
    rows = [_row("none", 0.8, 0.05, 0.08), _row("dp=8", 0.6, 0.004, 0.005, hsja_high=high)]
    rec = recommend(rows, ATTACKS, target_tpr=0.01)
    assert high > 0.01 > 0.005
    assert not rec.found and rec.defense is None
    dp = next(r for r in rec.ranking if r.defense == "dp=8")
    assert dp.status == "not shown" and dp.tpr_attack == "hsja" and dp.tpr_high == pytest.approx(high)
    assert "although its point estimate 0.005" in dp.reasons[0]
    assert rec.closest == "dp=8" and rec.statement().startswith("No measured defense is shown enough")


def test_a_row_whose_upper_bound_clears_the_target_is_enough_and_the_most_accurate_wins():
    rows = [
        _row("none", 0.80, 0.05, 0.08),
        _row("l2=1e-3", 0.78, 0.004, 0.005, hsja_high=0.02),  # point below, interval not
        _row("dp=1", 0.60, 0.001, 0.002, gap_high=0.004, hsja_high=0.006),
        _row("l2=1e-2", 0.70, 0.001, 0.003, gap_high=0.005, hsja_high=0.009),
    ]
    rec = recommend(rows, ATTACKS, target_tpr=0.01)
    assert rec.found and rec.defense == "l2=1e-2" and rec.tpr_high == 0.009
    assert rec.accuracy_loss == pytest.approx(0.10) and rec.baseline_accuracy == 0.80
    assert rec.strongest.tpr_attack == "hsja" and rec.strongest.tpr == 0.003
    assert "l2=1e-2" in rec.statement() and "0.100 below none" in rec.statement()
    status = {r.defense: r.status for r in rec.ranking}
    assert status == {"none": "not shown", "l2=1e-3": "not shown", "dp=1": "enough", "l2=1e-2": "enough"}
    # an AUC target is met only by the upper end of the AUC interval
    rows[3]["gap.auc_high"] = 0.58
    rows[2]["gap.auc_high"] = rows[2]["hsja.auc_high"] = 0.54
    assert recommend(rows, ATTACKS, target_tpr=0.01, target_auc=0.55).defense == "dp=1"


def test_the_ranking_is_the_pareto_front_of_accuracy_against_the_upper_bound_first():
    rows = [
        _row("a", 0.80, 0.05, 0.08, hsja_high=0.12),  # front: most accurate
        _row("b", 0.70, 0.04, 0.05, hsja_high=0.10),  # dominated by c (more accurate and less leaky)
        _row("c", 0.75, 0.02, 0.03, hsja_high=0.05),  # front
        _row("d", 0.60, 0.001, 0.002, gap_high=0.004, hsja_high=0.006),  # front: least leaky
        _row("e", 0.90, 0.1, NAN, hsja_high=NAN),  # hsja unresolvable: no bound, ranked last
    ]
    rec = recommend(rows, ATTACKS, target_tpr=0.01)
    assert [(r.defense, r.pareto, r.rank) for r in rec.ranking] == [
        ("a", True, 1), ("c", True, 2), ("d", True, 3), ("b", False, 4), ("e", False, 5),
    ]  # fmt: skip
    front = pareto_front([(r.tpr_high, r.test_accuracy) for r in rec.ranking if r.tpr_high is not None])
    assert {acc for _, acc in front} == {r.test_accuracy for r in rec.ranking if r.pareto}
    assert rec.defense == "d" and rec.baseline == "best test accuracy" and rec.baseline_accuracy == 0.9
    annotated = annotate(rows, rec)
    assert [r["pareto_rank"] for r in annotated] == [1, 4, 2, 3, 5]
    assert annotated[3]["status"] == "enough" and annotated[3]["tpr@1%_upper"] == 0.006


def test_an_unresolvable_fpr_is_not_shown_with_the_count_it_needs():
    results = {
        "target": {"train_accuracy": 0.9, "test_accuracy": 0.7, "epsilon": None},
        "verdict": {"eps_lb": 0.4},
        "attacks": {
            "gap": {
                "auc": 0.5, "auc_ci": [0.45, 0.55], "threat_model": "label-only",
                "tpr_at_fpr": {"0.001": None, "0.01": 0.0},  # 150 non-members: a point but no interval
                "tpr_at_fpr_ci": {"0.001": None, "0.01": None},
                "tpr_at_fpr_na": {
                    "0.001": "TPR at 0.1% FPR needs >= 1000 non-members, has 150",
                    "0.01": "the exact interval of TPR at 1% FPR needs >= 200 non-members (half to choose the "
                    "threshold, half to check its FPR), has 150",
                },
            }
        },
    }  # fmt: skip
    row = matrix_row("dropout=0.5", results)
    assert row["eps_lb"] == 0.4 and math.isnan(row["gap.tpr@1%_high"]) and "has 150" in row["gap.tpr@1%_na"]
    rec = recommend([row], ["gap"], target_tpr=0.01)
    (r,) = rec.ranking
    assert not rec.found and r.status == "not shown" and r.tpr_high is None and not r.pareto
    assert "needs >= 200 non-members" in r.reasons[0] and "has 150" in r.reasons[0]
    assert "0.000 [n/a]" in matrix_markdown([row], ["gap"])
    row.pop("gap.tpr@1%_na")  # an older matrix without the reason: the count still comes from the rule
    assert "needs >= 200 non-members" in recommend([row], ["gap"]).ranking[0].reasons[0]


def test_target_epsilon_needs_an_upper_bound_and_a_lower_bound_only_refutes():
    rows = [
        _row("none", 0.80, 0.001, 0.002, gap_high=0.004, hsja_high=0.006, eps_lb=0.0),  # no accountant
        _row("dp=8", 0.70, 0.001, 0.002, gap_high=0.004, hsja_high=0.006, epsilon=8.0, eps_lb=0.3),
        _row("dp=1", 0.60, 0.001, 0.002, gap_high=0.004, hsja_high=0.006, epsilon=1.0, eps_lb=0.1),
        _row("leaky", 0.75, 0.001, 0.002, gap_high=0.004, hsja_high=0.006, epsilon=0.5, eps_lb=2.5),
    ]
    rec = recommend(rows, ATTACKS, target_tpr=0.01, target_epsilon=2.0)
    eps = {r.defense: r.epsilon_status for r in rec.ranking}
    assert eps == {"none": "not refuted", "dp=8": "not shown", "dp=1": "enough", "leaky": "refuted"}
    assert rec.defense == "dp=1"  # the most accurate with an upper bound at most 2
    assert "accountant epsilon <= 2" in rec.statement()
    without = recommend(rows, ATTACKS, target_tpr=0.01)
    assert without.defense == "none"  # without the epsilon target, the TPR bound alone decides
    # private DP tuning: the accountant's epsilon excludes the tuning and cannot show the target met
    rows[2]["dp_tuning"] = "private"
    status, why = epsilon_status(rows[2], 2.0)
    assert status == "not refuted" and "excludes the tuning" in why
    assert not recommend(rows, ATTACKS, target_tpr=0.01, target_epsilon=2.0).found
    md = recommendation_markdown(recommend(rows, ATTACKS, target_tpr=0.01, target_epsilon=2.0))
    assert "| 1 | none | 0.800 | 0.006 (hsja) | yes | not shown |" in md and "never meet it" in md


def test_nan_rows_are_unmeasured_never_recommended():
    rows = [
        _row("none", 0.8, 0.2, 0.3),
        _row("broken", NAN, 0.0, 0.0),  # no accuracy: cannot show its cost
        {"defense": "no-label-only", "test_accuracy": 0.8, "loss.threat": "scores", "loss.auc": 0.5, "loss.tpr@1%": 0},
        _row("half", 0.75, 0.001, 0.003, gap_high=0.004, hsja_high=0.008),
    ]
    rows[3]["gap.auc"] = NAN  # one attack did not run: the other one still counts
    rec = recommend(rows, ATTACKS, target_tpr=0.01)
    assert rec.unmeasured == ["broken", "no-label-only"]
    assert rec.defense == "half" and rec.strongest.tpr_attack == "hsja"
    assert strongest_label_only(rows[2], ATTACKS) is None
    assert annotate(rows, rec)[1]["status"] is None


def test_ties_in_accuracy_go_to_the_lower_upper_bound_then_to_the_earlier_row():
    rows = [_row("none", 0.8, 0.1, 0.1), _row("a", 0.7, 0.004, 0.006), _row("b", 0.7, 0.002, 0.004)]
    assert recommend(rows, ATTACKS).defense == "b"
    rows.append(_row("c", 0.7, 0.002, 0.004))  # identical to b: the earlier row stays
    assert recommend(rows, ATTACKS).defense == "b"


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 2.0, math.nan])
def test_targets_out_of_range_are_refused(bad):
    with pytest.raises(InvalidInputError, match="target_tpr: expected a rate in \\(0, 1\\)"):
        recommend([], ATTACKS, target_tpr=bad)
    with pytest.raises(InvalidInputError, match="target_auc"):
        recommend([], ATTACKS, target_tpr=0.01, target_auc=1.5)
    with pytest.raises(InvalidInputError, match="target_epsilon"):
        recommend([], ATTACKS, target_epsilon=-1.0 if bad == bad else bad)


def test_pareto_front_keeps_only_undominated_points():
    pts = [(0.1, 0.8), (0.05, 0.7), (0.06, 0.6), (0.2, 0.79), (0.01, 0.3)]
    assert pareto_front(pts) == [(0.01, 0.3), (0.05, 0.7), (0.1, 0.8)]


def test_the_matrix_tpr_is_the_one_its_interval_is_about():
    # the ROC reading over all 300 non-members (0.063) lies above the exact interval [0.007, 0.043] of the
    # threshold chosen on 150 of them, which flags 6 of 300 members (0.02) on the other 150
    exact = {"tpr": 0.02, "tpr_ci": [0.0074, 0.0430], "true_positives": 6, "n_members": 300}
    results = {
        "target": {"train_accuracy": 1.0, "test_accuracy": 0.9},
        "attacks": {
            "lira": {
                "auc": 0.63, "auc_ci": [0.59, 0.68], "threat_model": "scores",
                "tpr_at_fpr": {"0.001": None, "0.01": 0.0633},
                "tpr_at_fpr_ci": {"0.001": None, "0.01": [0.0074, 0.0430]},
                "tpr_at_fpr_exact": {"0.01": exact},
            }
        },
    }  # fmt: skip
    row = matrix_row("none", results)
    assert row["lira.tpr@1%"] == 0.02 and row["lira.tpr@1%_roc"] == 0.0633
    assert row["lira.tpr@1%_low"] <= row["lira.tpr@1%"] <= row["lira.tpr@1%_high"]
    assert row["lira.tpr@0.1%"] is None and row["lira.tpr@0.1%_roc"] is None  # not resolvable: neither
    assert "0.020 [0.007, 0.043]" in matrix_markdown([row], ["lira"])
