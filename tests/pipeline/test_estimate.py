"""``--estimate`` equals what the audit spends, for every registered attack a target kind serves: a target labelleak
trains, a model file and a remote target (``labelleak serve`` on loopback). The documented rounding: an attack
that asks its queries all at once spends exactly its row; a search spends at most its row (a candidate the target
misclassifies stops after one query, a search may end before its budget)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from _distributed_world import SHAPE, digits_world
from _loopback import Server

from labelleak.attacks import attack_names, create_attack
from labelleak.attacks.capabilities import ThreatModel
from labelleak.pipeline import make_config, run_audit
from labelleak.pipeline.estimate import estimate, format_estimate
from labelleak.serve import create_app

audit_module = importlib.import_module("labelleak.pipeline.audit")

TINY = dict(
    queries=30, max_iter=2, max_eval=20, init_eval=5, init_size=5, noise_samples=3, lira_models=2, epochs=2,
    smoothing_n=10, n_boot=5, progress=False, checkpoint=False, batch_size=16, width=0.25,
)  # fmt: skip
# a model file and a remote target give labels only: the score and white-box attacks need a model labelleak trained
LABEL_ONLY = [n for n in attack_names() if create_attack(n).capabilities().threat_model == ThreatModel.LABEL_ONLY]


@pytest.fixture(autouse=True)
def _no_files(monkeypatch):
    monkeypatch.setattr(audit_module, "write_audit_outputs", lambda *args, **kwargs: None)  # not the point here


@pytest.fixture(scope="module")
def own_files(tmp_path_factory):
    """The memorising digits MLP as a TorchScript file, and candidate files: 15 + 15 candidates, 41 shadow rows."""
    world, folder = digits_world(), tmp_path_factory.mktemp("own")
    torch.jit.save(torch.jit.trace(world["model"], torch.zeros(1, *SHAPE)), str(folder / "model.pt"))
    x, y, shadow = world["x"], world["y"], world["shadow"]
    parts = {
        "members": (x[15:30], y[15:30]),
        "nonmembers": (x[30:45], y[30:45]),
        "shadow": (shadow.x_train[:41], shadow.y_train[:41]),  # odd: the halves are 20 and 21
    }
    files = {}
    for name, (xs, ys) in parts.items():
        np.savez(folder / f"{name}.npz", x=xs, y=ys)
        files[name] = str(folder / f"{name}.npz")
    return world["model"], str(folder / "model.pt"), files


def _check(rows, results, *, thresholds: bool = True):
    """Every row against the attack's entry: equal where the plan is exact, a ceiling it keeps where it searches."""
    n = sum(results["split"][k] for k in ("members", "nonmembers")) if "members" in results["split"] else None
    by_name = {r["attack"]: r for r in rows}
    for name, entry in results["attacks"].items():
        row = by_name[name]
        if n is not None:
            assert row["candidates"] == n, name
        assert row["setup"] == entry["setup_queries"], name
        spent = entry["target_queries"]
        if row["exact"]:
            assert round(entry["queries_per_sample"] * row["candidates"]) == row["main"], name
            assert spent == row["total"], name
        else:
            assert entry["max_queries_per_sample"] <= row["per_candidate"] and spent <= row["total"], name
        if "data_free" in entry:
            assert thresholds and 0 < entry["data_free"]["noise_queries"] <= row["data_free"], name
        else:
            assert row["data_free"] == 0, name
    if "utility" in by_name:
        assert results["utility"]["queries"] == by_name["utility"]["total"] > 0
    totals = sum(r["total"] for r in rows)
    assert results["queries_asked"] <= totals
    if all(r["exact"] for r in rows):
        assert results["queries_asked"] == totals


def test_a_trained_target(tmp_path):
    cfg = make_config(
        attacks=attack_names(), train_size=20, shadow_size=20, out=str(tmp_path / "out"),
        cache_dir=str(tmp_path / "cache"), **TINY,
    )  # fmt: skip
    rows = estimate(cfg)
    assert [r["attack"] for r in rows] == attack_names()  # labelleak knows its target's accuracy: no utility row
    assert all(r["candidates"] == 40 for r in rows)
    augmentation = {r["attack"]: r for r in rows}["augmentation"]
    assert (augmentation["per_candidate"], augmentation["exact"]) == (5, True)  # was 300, the budget
    results = run_audit(cfg)
    assert results["split"]["shadow_train"] == 20 and set(results["attacks"]) == set(attack_names())
    _check(rows, results)


def test_a_model_file_and_the_utility_labels(own_files, tmp_path):
    _, path, files = own_files
    attacks = [n for n in LABEL_ONLY if not create_attack(n).capabilities().reports_accuracy]  # gap: remote test
    cfg = make_config(
        model=path, **files, input_shape=list(SHAPE), n_classes=10, attacks=attacks, thresholds=False,
        out=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"), **TINY,
    )  # fmt: skip
    rows = estimate(cfg)
    by_name = {r["attack"]: r for r in rows}
    assert by_name["noise"]["candidates"] == 30  # the files' rows (was the default split's 600)
    assert by_name["transfer"]["setup"] == 20  # half the shadow file labelled (was the default split's 300)
    assert by_name["dhattack"]["setup"] == 41  # the whole shadow file, distilled
    assert by_name["utility"]["total"] == 30  # no attack labelled the candidates once: one label each
    results = run_audit(cfg)
    assert set(results["attacks"]) == set(attacks)
    _check(rows, results, thresholds=False)


def _served(model, files, tmp_path, **options):
    with Server(create_app(model, input_shape=SHAPE, n_classes=10)) as server:
        cfg = make_config(
            target=server.url, **files, out=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"),
            **{**TINY, "thresholds": False, **options},
        )  # fmt: skip
        return cfg, estimate(cfg), run_audit(cfg)


def test_a_remote_target(own_files, tmp_path):
    model, _, files = own_files
    cfg, rows, results = _served(model, files, tmp_path, attacks=LABEL_ONLY)
    assert set(results["attacks"]) == set(LABEL_ONLY) and "utility" not in {r["attack"] for r in rows}
    assert results["utility"]["source"] == "gap"  # read from gap's statuses, for free
    _check(rows, results, thresholds=False)


def test_a_remote_target_under_a_total_cap(own_files, tmp_path):
    model, _, files = own_files
    # 30 (gap) + 150 (augmentation: the image and its 4 one-pixel shifts) leave 820: 27 for each of 30 candidates
    cfg, rows, results = _served(
        model, files, tmp_path, attacks=["gap", "augmentation", "boundary-hsja"], max_total_queries=1000
    )
    by_name = {r["attack"]: r for r in rows}
    assert (by_name["gap"]["total"], by_name["augmentation"]["total"]) == (30, 150)
    assert (
        by_name["boundary-hsja"]["per_candidate"] == 27 == results["attacks"]["boundary-hsja"]["total_cap"]["allowance"]
    )
    assert "cuts short boundary-hsja" in format_estimate(rows, 1000)
    _check(rows, results, thresholds=False)
    assert results["queries_asked"] <= 1000
