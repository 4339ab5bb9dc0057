"""labelleak reproduce lowfpr: the plan, the low-FPR summary on constructed scores with known TPRs, the ratio to
online LiRA on matched candidates, the log-log ROC and the goal's verdict from its interval, and a tiny plan end to
end (seconds)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from labelleak._extras import has_module
from labelleak.attacks import attack_names
from labelleak.cli import app
from labelleak.counts import clopper_pearson
from labelleak.errors import UnknownNameError
from labelleak.metrics import exact_tpr_at_fpr, summarize
from labelleak.pipeline.plan import load_plan
from labelleak.pipeline.reproduce import run_reproduce
from labelleak.report.claims import check_claims, check_goals
from labelleak.report.lowfpr import (
    Scored,
    held_out_point,
    low_fpr_metrics,
    mask_unresolved,
    matched,
    roc_ratio,
    summarize_lowfpr,
    tpr_ratio,
)
from labelleak.report.summaries import RunRecord

ISSUE_ATTACKS = {
    "gap",
    "boundary-hsja",
    "boundary-qeba",
    "oslo",
    "lira",
    "lira-offline",
    "rmia",
    "boundary-lira",
    "boundary-lira-offline",
    "dhattack",
    "yoqo",
}
NEW_ATTACKS = {"rmia", "boundary-lira", "boundary-lira-offline", "dhattack", "yoqo"}


# ---------------------------------------------------------------- the plan


def test_lowfpr_plan_runs_every_attack_on_the_sizes_target():
    target_keys = ("dataset", "arch", "width", "epochs", "lr", "lr_schedule", "batch_size", "train_size")
    target_keys += ("reserve_train", "test_size", "shadow_size", "seed", "defense")
    for scale, boundary_size in (("cpu", 200), ("paper", 1000)):
        plan = load_plan("lowfpr", scale=scale)
        assert plan.kind == "lowfpr" and "1% FPR" in plan.claim
        runs = {r.group: r.config for r in plan.runs}
        assert set(runs) == {"wide", "boundary"}
        guided = {"boundary-lira-guided", "boundary-lira-guided-offline", "dhattack-guided"}  # issue 34, item 6
        guided |= {"boundary-lira-guided-views-offline", "boundary-lira-combined"}  # views, signals (item 4)
        assert set(runs["wide"].attacks) | set(runs["boundary"].attacks) == ISSUE_ATTACKS | guided
        assert runs["wide"].eval_size == 1000 and runs["boundary"].eval_size == boundary_size
        searched = {"boundary-hsja", "boundary-qeba", "boundary-lira", "boundary-lira-offline"}
        assert searched | guided == set(runs["boundary"].attacks)
        for c in runs.values():
            assert c.queries == 1000 and c.thresholds is False and c.n_boot == 1000
        # the target is the sizes experiment's 1,000-member one: same config, so the model cache serves it
        sizes = next(r.config for r in load_plan("sizes", scale=scale).runs if r.config.train_size == 1000)
        for c in runs.values():
            assert [getattr(c, k) for k in target_keys] == [getattr(sizes, k) for k in target_keys]


def test_lowfpr_plan_description_says_how_many_boundary_candidates_and_what_they_cannot_resolve():
    plan = load_plan("lowfpr", scale="cpu")
    assert "200 + 200" in plan.description and "1,000 + 1,000" in plan.description
    assert "n/a" in plan.description and "1,000 non-members" in plan.description


def test_every_attack_of_the_lowfpr_plan_is_registered():
    missing = {a for r in load_plan("lowfpr").runs for a in r.config.attacks} - set(attack_names())
    assert missing == set()


def test_an_unregistered_attack_stops_a_plan_before_any_data_is_read(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "kind: lowfpr\naudit: {dataset: npz, data: missing.npz}\n"
        "groups:\n  wide: {attacks: [gap]}\n  later: {attacks: [gap, no-such-attack]}\n"
    )
    with pytest.raises(UnknownNameError, match=r"experiment plan: unknown attack\(s\) no-such-attack; choose from"):
        run_reproduce(plan, out=tmp_path / "out", progress=False)
    result = CliRunner().invoke(app, ["reproduce", str(plan), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "error: experiment plan: unknown attack(s) no-such-attack" in result.output
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- the numbers, on constructed scores


def _constructed(high: int, at_01: int, at_1: int, n_members: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Non-members score 0..999; ``high`` members score above all of them, ``at_01`` just below the top
    non-member (1 false positive = 0.1% FPR), ``at_1`` just below the tenth (1% FPR), the rest below all."""
    low = n_members - high - at_01 - at_1
    members = np.r_[5000.0 + np.arange(high), np.full(at_01, 998.5), np.full(at_1, 989.5), np.full(low, -1.0)]
    return np.r_[np.ones(n_members, bool), np.zeros(1000, bool)], np.r_[members, np.arange(1000.0)]


def test_low_fpr_metrics_give_the_known_tprs_and_the_audits_intervals():
    m, s = _constructed(high=3, at_01=4, at_1=8)
    row = low_fpr_metrics(m, s, n_boot=50, seed=3)
    assert row["tpr@0.1%"] == pytest.approx(0.07) and row["tpr@1%_roc"] == pytest.approx(0.15)  # the ROC readings
    # members above all 1000: 3 x 1000 pairs won, at 998.5: 4 x 999, at 989.5: 8 x 990
    assert row["auc"] == pytest.approx((3 * 1000 + 4 * 999 + 8 * 990) / 100_000)
    assert row["auc_low"] < row["auc"] < row["auc_high"]
    # 1,000 non-members: 0.1% FPR is read, but its exact interval needs 2,000 (1,000 to choose the threshold)
    assert row["tpr@0.1%_low"] is None and row["tpr@0.1%_high"] is None
    assert "needs >= 2000 non-members (half to choose the threshold" in row["tpr@0.1%_na"]
    exact = exact_tpr_at_fpr(m, s, 0.01, seed=3)  # 1% FPR: Clopper-Pearson at the calibration half's threshold
    assert (row["tpr@1%_low"], row["tpr@1%_high"]) == clopper_pearson(exact.true_positives, 100)
    assert row["tpr@1%_low"] < exact.tpr.value < row["tpr@1%_high"] and "tpr@1%_na" not in row
    # beside its interval the point is the held-out threshold's TPR, the number the interval is about; without
    # an interval (0.1% here) it is the ROC reading
    assert row["tpr@1%"] == exact.tpr.value != row["tpr@1%_roc"] and row["tpr@0.1%"] == row["tpr@0.1%_roc"]
    audit = summarize(m, s, n_boot=50, seed=3)  # what results.json holds: the same numbers
    assert audit["tpr_at_fpr_ci"]["0.001"] is None and audit["auc_ci"] == [row["auc_low"], row["auc_high"]]
    assert [row["tpr@1%_low"], row["tpr@1%_high"]] == audit["tpr_at_fpr_ci"]["0.01"]
    perfect = low_fpr_metrics(m, np.r_[np.full(100, 2000.0), np.arange(1000.0)], n_boot=50, seed=3)
    assert (perfect["tpr@1%"], perfect["tpr@1%_high"]) == (1.0, 1.0) and 0.96 < perfect["tpr@1%_low"] < 0.97


def test_tpr_ratio_combines_exact_intervals_and_matched_aligns_candidates_by_sample_index():
    m, s = _constructed(high=3, at_01=4, at_1=8)
    _, ref = _constructed(high=6, at_01=8, at_1=16)
    half = tpr_ratio(m, s, ref, fpr=0.01, seed=0)
    a = exact_tpr_at_fpr(m, s, 0.01, level=0.975, seed=0).tpr  # Bonferroni: each interval at 97.5%
    r = exact_tpr_at_fpr(m, ref, 0.01, level=0.975, seed=0).tpr
    assert half is not None and half.value == pytest.approx(a.value / r.value) and half.low < 0.5 < half.high
    assert (half.low, half.high) == (pytest.approx(a.low / r.high), pytest.approx(a.high / r.low))
    assert roc_ratio(m, s, ref, fpr=0.01) == pytest.approx(0.15 / 0.30)  # the ROC readings' ratio, apart
    assert tpr_ratio(m, s, ref, fpr=0.001, seed=0) is None  # 1,000 non-members: no exact interval at 0.1%
    same = tpr_ratio(m, s, s, fpr=0.01, seed=0)  # an attack against itself: ratio 1, inside a real interval
    assert same is not None and same.low < same.value == 1.0 < same.high
    none_found = tpr_ratio(m, s, np.r_[np.full(100, -5.0), np.arange(1000.0)], fpr=0.01, seed=0)
    assert none_found is not None and math.isnan(none_found.value) and none_found.high == math.inf
    a = Scored(np.array([5, 3, 9, 1]), np.array([1, 1, 0, 0], bool), np.array([0.5, 0.3, 0.9, 0.1]))
    b = Scored(np.arange(10), np.arange(10) < 4, np.arange(10) * 10.0)
    with pytest.raises(AssertionError, match="two membership labels"):
        matched(a, b)  # index 5 is a member for a, not for b
    b = Scored(np.arange(10), np.isin(np.arange(10), [3, 5]), np.arange(10) * 10.0)
    mm, sa, sb = matched(a, b)
    assert mm.tolist() == [True, True, False, False] and sb.tolist() == [50.0, 30.0, 90.0, 10.0]
    assert sa.tolist() == a.scores.tolist()


def _record(group, sample_index, is_member, attacks, *, n_boot=50, seed=3):
    """A finished audit as the reproduce summary reads it: ``attacks`` maps a name to (entry, scores)."""
    arrays = {"sample_index": sample_index, "is_member": is_member}
    arrays.update({f"{name}/scores": scores for name, (_, scores) in attacks.items()})
    results = {"config": {"n_boot": n_boot, "seed": seed}, "attacks": {k: e for k, (e, _) in attacks.items()}}
    return RunRecord({}, group, results, arrays)


def _entry(threat, queries, *, setup=0, **more):
    return {"threat_model": threat, "queries_per_sample": float(queries), "max_queries_per_sample": queries,
            "setup_queries": setup, "seconds": 1.5, "params": {}, **more}  # fmt: skip


def _records() -> list[RunRecord]:
    m, oslo = _constructed(high=3, at_01=4, at_1=8)
    _, lira = _constructed(high=6, at_01=8, at_1=16)
    wide_index = np.r_[np.arange(100), 1000 + np.arange(1000)]
    wide = _record(
        "wide",
        wide_index,
        m,
        {
            "lira": (_entry("scores", 1, n_reference=8), lira),
            "oslo": (_entry("label-only", 5, setup=2200, params={"n_reference": 3}), oslo),
            "rmia": (_entry("scores", 1), lira),  # ratio 1, but not label-only
        },
    )
    # the boundary group: the first 50 members and 200 non-members of the wide group, in another order
    order = np.random.default_rng(0).permutation(250)
    b_index, b_member = np.r_[np.arange(50), 1000 + np.arange(200)][order], np.r_[np.ones(50, bool), np.zeros(200)]
    hsja = np.r_[np.full(40, 900.0), np.full(10, -1.0), np.arange(200.0)][order]  # TPR 0.8 at both FPRs
    perfect = np.r_[np.full(50, 900.0), np.arange(200.0)][order]
    boundary = _record(
        "boundary",
        b_index,
        b_member[order].astype(bool),
        {"boundary-hsja": (_entry("label-only", 1000), hsja), "expensive": (_entry("label-only", 2000), perfect)},
    )
    return [wide, boundary]


def test_lowfpr_summary_reports_tprs_costs_and_the_ratio_to_lira(tmp_path):
    tables, figures = summarize_lowfpr(_records(), tmp_path)
    rows = {r["attack"]: r for r in tables["lowfpr"]}
    assert list(rows) == ["lira", "oslo", "rmia", "boundary-hsja", "expensive"]
    o = rows["oslo"]
    assert (o["tpr@0.1%"], o["tpr@1%_roc"], o["n_members"], o["n_nonmembers"]) == pytest.approx((0.07, 0.15, 100, 1000))
    # beside its interval, the held-out threshold's TPR (the calibration half's largest score keeps 7 members)
    assert o["tpr@1%"] == pytest.approx(0.07) and o["tpr@1%_low"] < 0.07 < o["tpr@1%_high"]
    assert (o["queries_per_candidate"], o["setup_queries"], o["setup_queries_per_candidate"]) == (5.0, 2200, 2.0)
    assert o["reference_models"] == 3 and rows["lira"]["reference_models"] == 8  # params, then extras
    assert rows["rmia"]["reference_models"] is None
    assert rows["boundary-hsja"]["tpr@1%"] == pytest.approx(0.8) and rows["boundary-hsja"]["group"] == "boundary"
    ratios = {r["attack"]: r for r in tables["lira_ratio"]}
    assert set(ratios) == {"oslo", "rmia", "boundary-hsja", "expensive"}
    assert ratios["oslo"]["ratio@1%"] == pytest.approx(0.07 / 0.14) and ratios["rmia"]["ratio@1%"] == 1.0
    assert ratios["oslo"]["ratio@1%_roc"] == pytest.approx(0.15 / 0.30) and ratios["oslo"]["lira_tpr@1%_roc"] == 0.3
    assert ratios["oslo"]["ratio@0.1%"] is None and "needs >= 2000 non-members" in ratios["oslo"]["ratio@0.1%_na"]
    # on the boundary attack's 50 + 200 candidates LiRA finds 30 members above every non-member: TPR 0.6
    h = ratios["boundary-hsja"]
    assert (h["n_members"], h["n_nonmembers"], h["lira_tpr@1%"], h["lira_tpr@0.1%"]) == (50, 200, 0.6, None)
    assert h["tpr@0.1%"] is None and "needs >= 1000 non-members, has 200" in h["ratio@0.1%_na"]
    assert h["ratio@1%"] == pytest.approx(0.8 / 0.6) and h["ratio@1%_low"] <= h["ratio@1%"] <= h["ratio@1%_high"]
    low = clopper_pearson(40, 50, level=0.975)[0] / clopper_pearson(30, 50, level=0.975)[1]
    assert h["ratio@1%_low"] == pytest.approx(low) and low > 0.5  # the whole interval clears the goal
    goal = {r["fpr"]: r for r in tables["goal"]}  # the 2,000-query attack and the score-based rmia are not eligible
    assert goal[0.01]["best_label_only"] == "boundary-hsja" and goal[0.01]["verdict"] == "met"
    assert goal[0.01]["ratio"] == pytest.approx(0.8 / 0.6) and goal[0.01]["tpr"] == pytest.approx(0.8)
    # 0.1%: no label-only attack has the 2,000 non-members its interval needs, so nothing is decided
    assert goal[0.001]["best_label_only"] is None and goal[0.001]["verdict"] == "inconclusive"
    assert "needs >= 2000 non-members" in goal[0.001]["na"] and "met" not in goal[0.001]
    assert [f.name for f in figures] == ["roc_lowfpr.png"] and figures[0].stat().st_size > 10_000


def test_lowfpr_summary_without_lira_has_no_ratio(tmp_path):
    wide, boundary = _records()
    del wide.results["attacks"]["lira"]
    tables, _ = summarize_lowfpr([wide, boundary], tmp_path)
    assert [r["attack"] for r in tables["lowfpr"]] == ["oslo", "rmia", "boundary-hsja", "expensive"]
    assert tables["lira_ratio"] == [] and tables["goal"] == []


def test_lowfpr_goals_are_project_goals_judged_on_their_intervals(tmp_path):
    tables, _ = summarize_lowfpr(_records(), tmp_path)
    assert check_claims("lowfpr", tables) == []  # issue 16's goals are not the paper's claims
    goals = check_goals("lowfpr", tables)
    assert [g["verdict"] for g in goals] == ["inconclusive", "met"]
    assert "1% FPR (the goal)" in goals[1]["claim"] and "0.1% FPR (the stretch goal)" in goals[0]["claim"]
    assert "boundary-hsja: TPR 0.800 vs LiRA 0.600, ratio 1.33 [" in goals[1]["measured"]
    assert "on 50 + 200 candidates" in goals[1]["measured"] and "needs >= 2000 non-members" in goals[0]["measured"]


def _goal_row(ratio, low, high, n_non, **more):
    return {"fpr": 0.01, "best_label_only": "boundary-lira-offline", "n_members": n_non, "n_nonmembers": n_non,
            "tpr": 0.24, "lira_tpr": 0.42, "ratio": ratio, "ratio_low": low, "ratio_high": high, "goal_ratio": 0.5,
            "goal_queries": 1000, **more}  # fmt: skip


@pytest.mark.parametrize(
    "row, expected",
    [
        # docs/runs/reproduce-lowfpr-cpu/goal.csv: met=True on the point 0.571, but the interval straddles 0.5
        (_goal_row(0.571, 0.185, 1.964, 200, met=True), "inconclusive"),
        (_goal_row(0.9, 0.6, 1.2, 200, met=True), "met"),
        (_goal_row(0.2, 0.1, 0.4, 200, met=False), "not met"),
        (_goal_row(0.9, 0.6, 1.2, 150, met=True), "inconclusive"),  # too few non-members for the interval
        (_goal_row(0.9, 0.6, 1.2, 200, verdict="inconclusive"), "inconclusive"),  # the row's own verdict wins
    ],
)
def test_a_goal_is_met_only_when_its_interval_clears_it(row, expected):
    (goal,) = check_goals("lowfpr", {"goal": [row]})
    assert goal["verdict"] == expected


def test_an_older_summary_row_loses_the_rates_its_candidates_cannot_resolve():
    row = {"attack": "boundary-hsja", "n_nonmembers": 200, "auc": 0.886, "tpr@0.1%": 0.045, "tpr@0.1%_low": 0.02,
           "tpr@1%": 0.045, "tpr@1%_low": 0.02, "tpr@1%_high": 0.155, "lira_tpr@0.1%": 0.1, "ratio@0.1%": 0.45,
           "ratio@1%_high": 1.9}  # fmt: skip
    masked = mask_unresolved(row)
    assert [k for k, v in masked.items() if v is None] == ["tpr@0.1%", "tpr@0.1%_low", "lira_tpr@0.1%", "ratio@0.1%"]
    assert masked["tpr@1%_high"] == 0.155 and masked["auc"] == 0.886 and row["tpr@0.1%"] == 0.045  # a copy
    assert mask_unresolved({**row, "n_nonmembers": 150})["tpr@1%_low"] is None  # 1%'s interval needs 200
    assert mask_unresolved({"attack": "x", "tpr@0.1%": 0.5}) == {"attack": "x", "tpr@0.1%": 0.5}  # no count: as is


# ---------------------------------------------------------------- a tiny plan, end to end


def test_tiny_lowfpr_plan_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 120)
    means = np.array([[0.3, 0.5, 0.7], [0.6, 0.4, 0.3], [0.5, 0.6, 0.5]])
    x = np.clip(means[y][:, None, None, :] + rng.normal(scale=0.25, size=(360, 8, 8, 3)), 0, 1)
    np.savez(tmp_path / "tiny.npz", x=(x * 255).astype(np.uint8), y=y)
    plan = tmp_path / "tinylow.yaml"
    plan.write_text(
        "kind: lowfpr\ndescription: tiny\nclaim: half of LiRA at 1% FPR\n"
        "audit: {dataset: npz, arch: cnn2, width: 0.5, epochs: 2, train_size: 60, test_size: 60, shadow_size: 60,\n"
        "        queries: 30, max_eval: 20, init_eval: 10, n_boot: 20, lira_models: 2, thresholds: false}\n"
        "groups:\n  wide: {attacks: [gap, lira], eval_size: 30}\n"
        "  boundary: {attacks: [boundary-hsja], eval_size: 15}\n"
    )
    out = tmp_path / "out"
    overrides = {"data": str(tmp_path / "tiny.npz"), "cache_dir": str(tmp_path / "cache")}
    summary = run_reproduce(plan, out=out, overrides=overrides, progress=False)
    rows = {r["attack"]: r for r in summary["tables"]["lowfpr"]}
    assert list(rows) == ["gap", "lira", "boundary-hsja"]
    for name, r in rows.items():  # the summary's numbers are the audit's own
        group = "boundary" if name == "boundary-hsja" else "wide"
        entry = json.loads((out / "runs" / "base" / group / "results.json").read_text())["attacks"][name]
        assert r["auc"] == entry["auc"] and [r["auc_low"], r["auc_high"]] == entry["auc_ci"]
        assert [r["tpr@1%_low"], r["tpr@1%_high"]] == (entry["tpr_at_fpr_ci"]["0.01"] or [None, None])
        assert r["tpr@0.1%"] == entry["tpr_at_fpr"]["0.001"] and r["seconds"] == entry["seconds"]
        # 30 (or 15) non-members resolve neither 0.1% nor 1% FPR: null in results.json, n/a in the summary
        assert entry["tpr_at_fpr"]["0.01"] is None and r["tpr@1%"] is None and "has " in r["tpr@1%_na"]
    assert rows["lira"]["reference_models"] == 2 and rows["boundary-hsja"]["max_queries_per_candidate"] <= 30
    ratios = {r["attack"]: r for r in summary["tables"]["lira_ratio"]}
    assert (ratios["boundary-hsja"]["n_members"], ratios["gap"]["n_members"]) == (15, 30)
    assert [g["fpr"] for g in summary["tables"]["goal"]] == [0.001, 0.01]
    for f in ("lowfpr.csv", "lira_ratio.csv", "goal.csv", "roc_lowfpr.png", "summary.md"):
        assert (out / f).is_file(), f
    md = (out / "summary.md").read_text()
    assert "## goal" in md and summary["figures"] == ["roc_lowfpr.png"]
    assert "| lira | scores | 30 + 30 | n/a | n/a | " in md  # the short table: unresolvable TPRs are n/a
    assert "Project goal (not a claim of the paper)" in md and "Paper's claim" not in md
    if has_module("jinja2"):  # the report extra: report.html checks the goal as a project goal
        html = (out / "report.html").read_text()
        assert "half of online LiRA&#39;s TPR at 1% FPR (the goal)" in html and 'id="goals"' in html
        assert "The paper&#39;s claims" not in html and "inconclusive" in html


def test_the_point_beside_an_exact_interval_is_the_held_out_tpr_it_is_about():
    """Tables that print ``point [interval]`` take the point from the same threshold as the interval (the ROC
    reading over all non-members can lie outside it at a few hundred non-members)."""
    m, s = _constructed(high=3, at_01=4, at_1=8)
    entry = summarize(m, s, n_boot=20, seed=3)
    held = held_out_point(entry, "0.01")
    low, high = entry["tpr_at_fpr_ci"]["0.01"]
    assert held == entry["tpr_at_fpr_exact"]["0.01"]["tpr"] and low <= held <= high
    assert entry["tpr_at_fpr"]["0.01"] == pytest.approx(0.15) != held  # the ROC reading is another number
    assert held_out_point(entry, "0.001") == entry["tpr_at_fpr"]["0.001"]  # no interval: the ROC reading
    old = {k: v for k, v in entry.items() if k != "tpr_at_fpr_exact"}  # results.json before exact intervals
    assert held_out_point(old, "0.01") == entry["tpr_at_fpr"]["0.01"]
    assert held_out_point({"tpr_at_fpr": {"0.01": None}}, "0.01") is None
