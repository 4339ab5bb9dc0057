"""--repeats N: Rubin's pooling on planted numbers, the aggregate of planted results, and a tiny CLI audit."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import norm
from scipy.stats import t as student_t
from typer.testing import CliRunner

from labelleak.cli import app
from labelleak.errors import InvalidInputError
from labelleak.pipeline import AuditConfig
from labelleak.report.repeats import aggregate_repeats
from labelleak.seeds import combine_seeds, rubin_df

Z = norm.ppf(0.975)


def test_combined_variance_is_rubins_formula_on_planted_values():
    values = [0.60, 0.70, 0.68, 0.74]
    intervals = [(0.55, 0.65), (0.66, 0.74), (0.62, 0.74), (0.70, 0.78)]
    s = combine_seeds(values, intervals)
    half = [max(hi - v, v - lo) for v, (lo, hi) in zip(values, intervals)]  # 0.05, 0.04, 0.06, 0.04
    within = np.mean([(h / Z) ** 2 for h in half])
    between = np.var(values, ddof=1)
    total = within + (1 + 1 / 4) * between
    df = 3 * (1 + within / ((1 + 1 / 4) * between)) ** 2
    q = student_t.ppf(0.975, df)
    assert s.mean == pytest.approx(0.68, abs=1e-12)
    assert s.between == pytest.approx(0.0034666666666666, rel=1e-9)  # by hand: sum of squares 0.0104 / 3
    assert (s.within, s.total, s.df) == pytest.approx((within, total, df), rel=1e-12)
    assert s.interval == pytest.approx((0.68 - q * math.sqrt(total), 0.68 + q * math.sqrt(total)), rel=1e-12)
    assert (s.low, s.high, s.sd) == (0.60, 0.74, pytest.approx(math.sqrt(between)))
    assert s.mean_width == pytest.approx(0.095, abs=1e-12)
    # the seeds' spread widens the interval beyond the candidate-only one, mean +- z sqrt(within)
    assert s.interval[1] - s.interval[0] > 2 * Z * math.sqrt(within) + 0.05


def test_seeds_that_agree_give_back_each_seeds_interval():
    s = combine_seeds([0.7, 0.7, 0.7], [(0.65, 0.75)] * 3)
    assert s.between == 0.0 and math.isinf(s.df) and s.to_dict()["df"] is None
    assert s.interval == pytest.approx((0.65, 0.75), abs=1e-12)


def test_a_one_sided_exact_interval_is_not_halved():
    s = combine_seeds([0.0, 0.0], [(0.0, 0.06), (0.0, 0.06)])  # Clopper-Pearson at 0 true positives
    assert s.interval == pytest.approx((0.0, 0.06), abs=1e-12)


def test_without_candidate_variance_the_interval_is_t_n_minus_1():
    s = combine_seeds([0.5, 0.6, 0.7], [(0.5, 0.5), (0.6, 0.6), (0.7, 0.7)], bounds=None)
    assert s.df == 2 and rubin_df(0.0, 0.01, 3) == 2
    half = student_t.ppf(0.975, 2) * math.sqrt((1 + 1 / 3) * 0.01)
    assert s.interval == pytest.approx((0.6 - half, 0.6 + half), rel=1e-12)
    wide = combine_seeds([0.1, 0.5, 0.9], [(0.1, 0.1), (0.5, 0.5), (0.9, 0.9)])
    assert wide.interval == (0.0, 1.0)  # clipped to the range of a rate


@pytest.mark.parametrize(
    ("values", "intervals", "message"),
    [
        ([0.7], [(0.6, 0.8)], "at least 2 seeds"),
        ([0.7, 0.6], [(0.6, 0.8)], "2 values but 1 intervals"),
        ([0.7, float("nan")], [(0.6, 0.8), (0.5, 0.7)], "finite"),
        ([0.7, 0.6], [(0.6, 0.8), (0.7, 0.5)], "low end is above"),
    ],
)
def test_bad_seed_values_are_refused(values, intervals, message):
    with pytest.raises(InvalidInputError, match=message):
        combine_seeds(values, intervals)


def _results(auc, ci, tpr=None, tpr_ci=None, na=None, extra=None):
    attacks = {
        "gap": {
            "threat_model": "label-only",
            "auc": auc,
            "auc_ci": ci,
            "tpr_at_fpr": {"0.01": tpr},
            "tpr_at_fpr_ci": {"0.01": tpr_ci},
            "tpr_at_fpr_na": {"0.01": na} if na else {},
            "intervals": {"level": 0.95},
        }
    }
    attacks.update(extra or {})
    return {"dataset": {"name": "planted"}, "attacks": attacks, "queries_asked": 10, "seconds_total": 1.0}


def test_aggregate_pools_auc_and_tpr_and_says_why_not():
    runs = [
        (3, "seed-3", _results(0.6, [0.55, 0.65], 0.10, [0.05, 0.15])),
        (4, "seed-4", _results(0.7, [0.65, 0.75], 0.20, [0.15, 0.25], extra={"lone": {"auc": 0.9}})),
    ]
    agg = aggregate_repeats(runs, config={"seed": 3, "repeats": 2}, trains_target=True)
    gap = agg["attacks"]["gap"]
    assert gap["auc"]["mean"] == pytest.approx(0.65) and gap["auc"]["values"] == [0.6, 0.7]
    assert gap["auc"]["combined_ci"] == pytest.approx(
        list(combine_seeds([0.6, 0.7], [(0.55, 0.65), (0.65, 0.75)]).interval)
    )
    assert gap["tpr_at_fpr"]["0.01"]["mean"] == pytest.approx(0.15) and gap["tpr_at_fpr_na"] == {}
    assert (
        agg["attacks"]["lone"]["auc"] is None and agg["attacks"]["lone"]["auc_na"] == "ran under 1 of 2 seeds (not 3)"
    )
    assert (agg["seeds"], agg["folders"], agg["queries_asked"]) == ([3, 4], ["seed-3", "seed-4"], 20)
    assert "trains its own target" in agg["seed_changes"]
    runs[1] = (4, "seed-4", _results(0.7, [0.65, 0.75], None, None, na="TPR at 1% FPR needs >= 100 non-members"))
    agg = aggregate_repeats(runs, config={}, trains_target=False)
    assert agg["attacks"]["gap"]["tpr_at_fpr"]["0.01"] is None
    assert agg["attacks"]["gap"]["tpr_at_fpr_na"]["0.01"] == "seed 4: TPR at 1% FPR needs >= 100 non-members"
    assert "never the target" in agg["seed_changes"]


def test_repeats_key_is_validated_and_absent_from_one_audits_config():
    assert "repeats" not in AuditConfig().to_dict()  # one audit's results.json and checkpoint as before
    assert AuditConfig(repeats=3).to_dict()["repeats"] == 3 and AuditConfig(repeats=3).replace(seed=2).repeats == 3
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InvalidInputError, match="repeats: expected a positive integer"):
            AuditConfig(repeats=bad).validate()


runner = CliRunner()
TINY = ["--train-size", "40", "--epochs", "3", "--queries", "100", "--noise-samples", "10", "--quiet"]


def _audit(tmp_path, out, *extra):
    args = ["audit", *TINY, "--attacks", "gap,boundary-hsja", "--out", str(tmp_path / out)]
    return runner.invoke(app, [*args, "--cache-dir", str(tmp_path / "cache"), *extra])


def test_cli_repeats_writes_one_folder_per_seed_and_their_mean(tmp_path, monkeypatch):
    result = _audit(tmp_path, "rep", "--repeats", "3", "--seed", "5")
    assert result.exit_code == 0, result.output
    out = tmp_path / "rep"
    assert sorted(p.name for p in out.iterdir()) == ["repeats.json", "report.html", "seed-5", "seed-6", "seed-7"]
    per_seed = [json.loads((out / f"seed-{s}" / "results.json").read_text()) for s in (5, 6, 7)]
    assert [r["config"]["seed"] for r in per_seed] == [5, 6, 7] and all("repeats" not in r["config"] for r in per_seed)
    assert len({tuple(r["split"].values()) for r in per_seed}) == 1  # same sizes, drawn apart:
    aucs = [r["attacks"]["boundary-hsja"]["auc"] for r in per_seed]
    assert len(set(aucs)) == 3
    agg = json.loads((out / "repeats.json").read_text())
    assert agg["config"]["repeats"] == 3 and agg["seeds"] == [5, 6, 7]
    assert agg["attacks"]["boundary-hsja"]["auc"]["mean"] == pytest.approx(np.mean(aucs), abs=1e-12)
    assert agg["attacks"]["boundary-hsja"]["tpr_at_fpr"]["0.01"] is None  # 40 non-members cannot resolve 1%
    assert "boundary-hsja" in result.output and "combined CI" in result.output
    page = (out / "report.html").read_text()
    assert 'id="seed-variance"' in page and 'href="seed-6/report.html"' in page
    # --resume reads finished seeds back: no audit runs again
    import labelleak.pipeline.repeats as repeats

    monkeypatch.setattr(repeats, "run_audit", lambda *a, **k: pytest.fail("a finished seed ran again"))
    again = _audit(tmp_path, "rep", "--repeats", "3", "--seed", "5", "--resume")
    assert again.exit_code == 0, again.output
    assert json.loads((out / "repeats.json").read_text())["attacks"] == agg["attacks"]


def test_cli_repeats_1_writes_what_one_audit_writes(tmp_path):
    plain, once = _audit(tmp_path, "plain"), _audit(tmp_path, "once", "--repeats", "1")
    assert plain.exit_code == 0 and once.exit_code == 0, once.output
    a, b = (json.loads((tmp_path / o / "results.json").read_text()) for o in ("plain", "once"))
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == sorted(
        p.name for p in (tmp_path / "once").iterdir()
    )
    assert {k: v for k, v in a["config"].items() if k != "out"} == {k: v for k, v in b["config"].items() if k != "out"}
    assert [e["auc"] for e in a["attacks"].values()] == [e["auc"] for e in b["attacks"].values()]


def test_cli_repeats_0_is_one_clear_error(tmp_path):
    result = _audit(tmp_path, "bad", "--repeats", "0")
    assert result.exit_code == 2 and "repeats: expected a positive integer, got 0" in result.output
