import inspect
import json

import numpy as np
import pytest
from scipy.stats import binomtest

from labelleak.counts import clopper_pearson, min_nonmembers, resolution
from labelleak.errors import InvalidInputError
from labelleak.metrics import (
    auc,
    balanced_accuracy,
    bootstrap,
    bootstrap_auc,
    calibration_split,
    crossfit_balanced_accuracy,
    exact_tpr_at_fpr,
    precision_recall,
    resampled_aucs,
    summarize,
    threshold_best_balanced_accuracy,
    tpr_at_fpr,
)
from labelleak.pipeline.config import AuditConfig

M = np.array([1, 1, 1, 1, 0, 0, 0, 0])
S = np.array([0.9, 0.8, 0.4, 0.3, 0.7, 0.2, 0.1, 0.05])


def test_golden_auc_and_tpr():
    # pairs (member > non-member): 0.9 and 0.8 beat all 4; 0.4 and 0.3 beat 3 -> 14/16
    assert auc(M, S) == pytest.approx(14 / 16)
    assert tpr_at_fpr(M, S, 0.0) == pytest.approx(0.5)  # 0.9, 0.8 above the highest non-member 0.7
    assert tpr_at_fpr(M, S, 0.25) == pytest.approx(1.0)
    assert auc(M, -S) == pytest.approx(2 / 16)


def test_balanced_accuracy_and_thresholds():
    assert balanced_accuracy(M, S, 0.3) == pytest.approx(0.5 * (1.0 + 0.75))
    t = threshold_best_balanced_accuracy(M, S)
    assert balanced_accuracy(M, S, t) == pytest.approx(0.875)
    acc, prec, rec = precision_recall(M, S, 0.35)
    assert (acc, prec, rec) == (pytest.approx(0.75), pytest.approx(0.75), pytest.approx(0.75))


def test_bootstrap_interval_brackets_estimate():
    rng = np.random.default_rng(0)
    m = np.r_[np.ones(300), np.zeros(300)]
    s = rng.normal(m, 1.0)
    ci = bootstrap(m, s, auc, n_boot=100, seed=1)
    assert ci.low < ci.value < ci.high and 0.04 < ci.high - ci.low < 0.15
    assert bootstrap(m, s, auc, n_boot=100, seed=1) == ci


def test_summary_keys():
    r = summarize(M, S, threshold=0.5, n_boot=20)
    assert set(r["tpr_at_fpr"]) == {"0.001", "0.01", "0.1"}
    # 4 non-members resolve no FPR below 25%: every TPR is null, with the count it would need
    assert r["tpr_at_fpr"] == {"0.001": None, "0.01": None, "0.1": None} and r["tpr_at_fpr_exact"] == {}
    assert r["tpr_at_fpr_na"]["0.1"] == "TPR at 10% FPR needs >= 10 non-members, has 4"
    assert r["balanced_accuracy"] == pytest.approx(0.5 * (0.5 + 0.75))
    assert r["n_members"] == 4 and r["n_nonmembers"] == 4


def test_degenerate_and_bad_input():
    with pytest.warns(RuntimeWarning, match="both members and non-members"):
        assert np.isnan(auc(np.ones(3), np.arange(3.0)))
    with pytest.raises(InvalidInputError, match="equal length"):
        auc(M, S[:3])
    with pytest.raises(InvalidInputError, match="NaN"):
        auc(M, np.full(8, np.nan))
    with pytest.raises(InvalidInputError, match="only 0/1"):
        auc(M * 2, S)
    with pytest.raises(InvalidInputError, match=r"fpr: expected a value in \[0, 1\]"):
        tpr_at_fpr(M, S, 2.0)


# ---------------------------------------------------------------- operating points a sample can resolve


def _separated(n_members: int, n_non: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    m = np.r_[np.ones(n_members, bool), np.zeros(n_non, bool)]
    return m, rng.normal(size=len(m)) + 1.5 * m


def test_min_nonmembers_is_one_over_the_fpr():
    assert [min_nonmembers(f) for f in (0.001, 0.01, 0.1, 0.3, 1.0)] == [1000, 100, 10, 4, 1]
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(InvalidInputError, match=r"fpr: expected a value in \(0, 1\] to resolve"):
            min_nonmembers(bad)
    r = resolution(150, 0.01)
    assert (r.point, r.interval, r.point_needs, r.interval_needs) == (True, False, 100, 200)
    assert "needs >= 200 non-members (half to choose the threshold, half to check its FPR), has 150" in r.reason()


def test_an_fpr_below_one_over_the_non_members_is_null_with_its_reason():
    m, s = _separated(300, 200)
    r = summarize(m, s, n_boot=50)
    assert r["tpr_at_fpr"]["0.001"] is None and r["tpr_at_fpr_ci"]["0.001"] is None
    assert r["tpr_at_fpr_na"]["0.001"] == "TPR at 0.1% FPR needs >= 1000 non-members, has 200"
    # 200 non-members: 1% FPR is resolved, and so is its interval (100 to choose the threshold, 100 to check it)
    assert r["tpr_at_fpr"]["0.01"] == tpr_at_fpr(m, s, 0.01) and "0.01" not in r["tpr_at_fpr_na"]
    assert r["tpr_at_fpr_ci"]["0.01"] == r["tpr_at_fpr_exact"]["0.01"]["tpr_ci"]
    fewer = summarize(m[:-60], s[:-60], n_boot=50)  # 140 non-members: the point, but no exact interval
    assert fewer["tpr_at_fpr"]["0.01"] is not None and fewer["tpr_at_fpr_ci"]["0.01"] is None
    assert "interval of TPR at 1% FPR needs >= 200 non-members" in fewer["tpr_at_fpr_na"]["0.01"]


def test_clopper_pearson_holds_at_zero_and_one_counts():
    low, high = clopper_pearson(0, 100)
    assert low == 0.0 and high == pytest.approx(0.0362, abs=1e-4)
    for k, n in ((0, 100), (1, 1000), (1, 2), (100, 100), (37, 120)):
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        assert clopper_pearson(k, n) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert 0.0 < clopper_pearson(1, 1000)[0] < 0.001 < clopper_pearson(1, 1000)[1]
    assert clopper_pearson(100, 100)[1] == 1.0 and np.isnan(clopper_pearson(0, 0)).all()


def test_the_threshold_is_chosen_on_non_members_disjoint_from_those_its_fpr_is_measured_on():
    m, s = _separated(100, 400)
    cal, ev = calibration_split(400, seed=5)
    assert len(cal) == len(ev) == 200 and not set(cal) & set(ev) and set(cal) | set(ev) == set(range(400))
    non = s[~m].copy()
    non[ev] = 100.0  # every evaluation non-member above every calibration one
    s2 = s.copy()
    s2[~m] = non
    e = exact_tpr_at_fpr(m, s2, 0.01, seed=5)
    # k = floor(0.01 * 201) = 2: the second-largest calibration score, whatever the evaluation half holds
    assert e.threshold == np.sort(non[cal])[-2] and (e.n_calibration, e.n_evaluation) == (200, 200)
    assert e.false_positives == 200 and e.fpr.value == 1.0 and e.fpr.low > 0.98
    assert e.true_positives == int((s[m] > e.threshold).sum()) and e.tpr.value == e.true_positives / 100
    assert (e.tpr.low, e.tpr.high) == clopper_pearson(e.true_positives, 100)
    with pytest.raises(InvalidInputError, match="needs >= 2000 non-members"):
        exact_tpr_at_fpr(m, s, 0.001)


def test_the_exact_fpr_interval_covers_the_target_on_fresh_non_members():
    """Calibrated on one half, the threshold's FPR on the other half stays near the target (mean over seeds)."""
    m, s = _separated(50, 2000)
    fprs = [exact_tpr_at_fpr(m, s, 0.01, seed=k).fpr.value for k in range(20)]
    assert 0.003 < float(np.mean(fprs)) <= 0.0125


def test_the_vectorised_auc_bootstrap_is_the_auc_of_each_resample():
    rng = np.random.default_rng(1)
    mem, non = np.round(rng.normal(1, 1, 40), 1), np.round(rng.normal(0, 1, 60), 1)  # ties on purpose
    mi, ni = rng.integers(0, 40, (6, 40)), rng.integers(0, 60, (6, 60))
    labels = np.r_[np.ones(40), np.zeros(60)]
    expected = [auc(labels, np.r_[mem[a], non[b]]) for a, b in zip(mi, ni)]
    assert resampled_aucs(mem, non, mi, ni) == pytest.approx(expected, abs=1e-12)
    m, s = labels.astype(bool), np.r_[mem, non]
    fast, slow = bootstrap_auc(m, s, n_boot=400, seed=2), bootstrap(m, s, auc, n_boot=400, seed=2)
    assert fast.value == slow.value and fast.low == pytest.approx(slow.low, abs=0.03)
    assert fast.high == pytest.approx(slow.high, abs=0.03) and fast.low < fast.value < fast.high


def test_the_auc_bootstrap_defaults_to_at_least_1000_resamples():
    for fn in (summarize, bootstrap_auc, bootstrap):
        assert inspect.signature(fn).parameters["n_boot"].default >= 1000, fn.__name__
    assert AuditConfig().n_boot >= 1000


def test_balanced_accuracy_without_a_threshold_is_cross_fitted_not_tuned_on_the_test():
    """On scores that carry no signal, the best threshold on the candidates themselves reports a balanced accuracy
    well above 0.5 (it is tuned on the test); the cross-fitted one (each half at the other half's threshold) does
    not (issue 29, item 9)."""
    rng = np.random.default_rng(0)
    m = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    tuned, crossed = [], []
    for _ in range(30):
        s = rng.normal(size=200)
        tuned.append(balanced_accuracy(m, s, threshold_best_balanced_accuracy(m, s)))
        r = summarize(m, s, n_boot=10)
        assert r["threshold_source"] == "cross-fitted"
        assert r["balanced_accuracy"] == crossfit_balanced_accuracy(m, s, seed=0)
        crossed.append(r["balanced_accuracy"])
    assert np.mean(tuned) > 0.53
    assert abs(np.mean(crossed) - 0.5) < 0.02


def test_cross_fitted_balanced_accuracy_finds_a_real_separation_and_needs_two_of_each():
    m = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    s = np.r_[np.linspace(1, 2, 50), np.linspace(-2, -1, 50)]
    assert crossfit_balanced_accuracy(m, s) >= 0.98  # a half's threshold sits at its own lowest member
    assert np.isnan(crossfit_balanced_accuracy(np.array([True, False, False]), np.array([1.0, 0.0, 0.5])))


def test_keyed_candidates_give_the_same_intervals_in_any_order():
    """issue 29, item 9: the calibration half, the bootstrap and the cross-fitting halves are drawn in the
    candidates' key order, so shuffling the candidates changes no number; in the given order they would move."""
    from labelleak.metrics import summarize

    rng = np.random.default_rng(7)
    member = np.r_[np.ones(300, bool), np.zeros(300, bool)]
    scores = rng.normal(size=600) + 0.8 * member
    keys = rng.permutation(10_000)[:600]
    first = summarize(member, scores, n_boot=200, seed=3, keys=keys)
    perm = rng.permutation(600)
    assert summarize(member[perm], scores[perm], n_boot=200, seed=3, keys=keys[perm]) == first
    unkeyed = summarize(member, scores, n_boot=200, seed=3)
    assert summarize(member[perm], scores[perm], n_boot=200, seed=3) != unkeyed
    with pytest.raises(InvalidInputError, match="keys must give one key per candidate"):
        summarize(member, scores, keys=keys[:10])


def test_an_own_data_audit_is_the_same_whatever_the_order_of_its_files(tmp_path):
    import labelleak
    from labelleak.oracle import CallableOracle

    rng = np.random.default_rng(2)
    x = rng.random((600, 6)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)

    def labels(q):
        flat = np.asarray(q).reshape(len(q), -1)
        return (flat[:, 0] + 0.1 * flat[:, 1] > 0.55).astype(np.int64)

    oracle = CallableOracle(labels, input_shape=(6,), n_classes=2, bounds=(0.0, 1.0))
    members, nonmembers, shadow = (x[:200], y[:200]), (x[200:400], y[200:400]), (x[400:], y[400:])
    for name, order in (("given", np.arange(200)), ("shuffled", rng.permutation(200))):
        labelleak.audit(target=oracle, members=(members[0][order], members[1][order]), nonmembers=nonmembers,
                        shadow=shadow, attacks=["gap"], out=tmp_path / name)  # fmt: skip
    ra, rb = (json.loads((tmp_path / n / "results.json").read_text()) for n in ("given", "shuffled"))
    a, b = ra["attacks"]["gap"], rb["attacks"]["gap"]
    assert a["auc_ci"] == b["auc_ci"] and a["tpr_at_fpr_ci"] == b["tpr_at_fpr_ci"]
    assert a["balanced_accuracy"] == b["balanced_accuracy"]
    assert a["epsilon"] == b["epsilon"] and ra["verdict"] == rb["verdict"]  # the halves follow content keys too
