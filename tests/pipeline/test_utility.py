"""Issue 29, item 10: the target's accuracy on the candidates beside the leakage, and the warning that the
declared preprocessing may be wrong (a missing --mean gave a silent near-chance audit)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import labelleak
from labelleak.attacks import Status
from labelleak.cli import app
from labelleak.oracle import CallableOracle
from labelleak.pipeline.utility import accuracy_from_status, preprocessing_warning

runner = CliRunner()
MEAN, STD = 0.5, 0.1
HINT = "the preprocessing (--mean/--std/--bounds/--layout) may be wrong"


def test_accuracy_is_read_from_the_statuses_of_the_labelled_candidates():
    member = np.array([1, 1, 1, 1, 0, 0, 0], bool)
    ok, wrong, cut = Status.OK, Status.MISCLASSIFIED, Status.BUDGET_HIT
    acc = accuracy_from_status(member, np.array([ok, ok, wrong, cut, ok, wrong, wrong]))
    assert acc["members_accuracy"] == pytest.approx(2 / 3) and acc["members_labelled"] == 3  # budget_hit: unasked
    assert acc["nonmembers_accuracy"] == pytest.approx(1 / 3) and acc["nonmembers_labelled"] == 3
    none = accuracy_from_status(member, np.full(7, cut))
    assert math.isnan(none["members_accuracy"]) and preprocessing_warning(none) is None


@pytest.mark.parametrize(
    ("members", "nonmembers", "warns"),
    [(0.45, 0.40, True), (0.90, 0.95, True), (0.95, 0.90, False), (0.50, 0.50, False), (0.60, float("nan"), False)],
)
def test_the_warning_fires_below_one_half_or_below_the_nonmembers(members, nonmembers, warns):
    warning = preprocessing_warning({"members_accuracy": members, "nonmembers_accuracy": nonmembers})
    assert (warning is not None) == warns
    if warns:
        assert HINT in warning and f"target accuracy {members:.1%} on member candidates" in warning


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A TorchScript model that expects (x - 0.5) / 0.1, and members, non-members and shadow pool it labels."""
    root = tmp_path_factory.mktemp("utility")
    torch.manual_seed(0)
    net = nn.Linear(4, 3).eval()
    torch.jit.save(torch.jit.script(net), root / "m.ts")
    rng = np.random.default_rng(0)
    for name in ("members", "nonmembers", "shadow"):
        x = rng.uniform(0.3, 0.7, size=(40, 4)).astype(np.float32)
        with torch.no_grad():
            y = net((torch.from_numpy(x) - MEAN) / STD).argmax(1).numpy()
        np.savez(root / f"{name}.npz", x=x, y=y)
    return root


def _audit(root, out, *extra):
    args = ["audit", "--model", str(root / "m.ts"), "--input-shape", "4"]
    for name in ("members", "nonmembers", "shadow"):
        args += [f"--{name}", str(root / f"{name}.npz")]
    args += ["--attacks", "gap", "--epochs", "1", "--quiet", "--no-checkpoint", "--out", str(out)]
    result = runner.invoke(app, [*args, "--cache-dir", str(root / "cache"), *extra])
    assert result.exit_code == 0, result.output
    return result, json.loads((out / "results.json").read_text())


def test_a_model_file_audit_with_a_missing_mean_warns_and_a_correct_one_does_not(files, tmp_path):
    wrong, res = _audit(files, tmp_path / "wrong")  # no --mean/--std: the model sees un-normalised inputs
    assert res["utility"]["members_accuracy"] < 0.5 and res["utility"]["source"] == "gap"
    said = " ".join(wrong.output.split())  # the console wraps long lines
    assert said.count(HINT) == 2 and said.startswith("WARNING target accuracy")  # logged at once, and under the table
    assert HINT in res["utility"]["warning"]
    res_wrong = res["utility"]["warning"]
    right, res = _audit(files, tmp_path / "right", "--mean", str(MEAN), "--std", str(STD))
    assert res["utility"]["members_accuracy"] == res["utility"]["nonmembers_accuracy"] == 1.0
    assert res["utility"]["members_labelled"] == 40 and res["utility"]["queries"] == 0  # gap's answers, free
    assert HINT not in right.output and "warning" not in res["utility"]
    said = " ".join(right.output.split())
    assert "Target accuracy on the candidates (gap's queries): members 100.0%, non-members 100.0%" in said
    html = (tmp_path / "right" / "report.html").read_text()
    assert "members 100.0%, non-members 100.0%" in html and "Warning:" not in html
    assert f"Warning: {res_wrong}" in (tmp_path / "wrong" / "report.html").read_text()


def test_without_gap_one_labelled_query_per_candidate_measures_it_and_is_counted(tmp_path, blobs):
    x, y = blobs
    oracle = CallableOracle(lambda a: (a[:, 0] > 0.5).astype(int) + (a[:, 1] > 0.5), input_shape=(6,), n_classes=3)
    res = labelleak.audit(
        target=oracle,
        members=(x[:30], y[:30]),
        nonmembers=(x[30:60], y[30:60]),
        shadow=(x[60:], y[60:]),
        attacks=["noise"],
        out=tmp_path / "out",
        cache_dir=tmp_path / "cache",
        epochs=1,
        progress=False,
    )
    utility = res["utility"]
    assert utility["source"] == "labels" and utility["queries"] == 60
    truth = oracle.predict_labels(x[:60]) == y[:60]
    assert utility["members_accuracy"] == pytest.approx(truth[:30].mean())
    assert utility["nonmembers_accuracy"] == pytest.approx(truth[30:].mean())
    assert res["queries_asked"] == res["attacks"]["noise"]["target_queries"] + 60


def test_the_api_takes_the_statistics_and_budget_keys_by_name(tmp_path, blobs):
    x, y = blobs
    oracle = CallableOracle(lambda a: (a[:, 0] > 0.5).astype(int) + (a[:, 1] > 0.5), input_shape=(6,), n_classes=3)
    res = labelleak.audit(
        target=oracle,
        members=(x[:30], y[:30]),
        nonmembers=(x[30:60], y[30:60]),
        shadow=(x[60:], y[60:]),
        attacks=["gap"],
        out=tmp_path / "out",
        n_boot=123,
        lira_models=2,
        max_total_queries=100,
        claimed_epsilon=0.25,
        claimed_delta=1e-6,
        progress=False,
    )
    config = res.config
    assert (config["n_boot"], config["lira_models"], config["max_total_queries"]) == (123, 2, 100)
    assert res["queries_asked"] <= 100 and res["total_cap"]["max_total_queries"] == 100
    assert res["verdict"]["claim"]["epsilon"] == 0.25 and res["verdict"]["delta"] == 1e-6
    assert "123 resamples" in res.attacks["gap"]["intervals"]["auc"]
