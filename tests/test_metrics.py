import numpy as np
import pytest

from labelleak.errors import InvalidInputError
from labelleak.metrics import (
    auc,
    balanced_accuracy,
    bootstrap,
    precision_recall,
    summarize,
    threshold_best_balanced_accuracy,
    tpr_at_fpr,
)

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
