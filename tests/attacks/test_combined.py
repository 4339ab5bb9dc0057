"""Issue 34, item 4: several label-only signals (boundary distance, the shifts' agreement, the fixed-path
distance) in one per-example likelihood ratio, each signal paid from its own share of the candidate's budget."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from labelleak.attacks import ShadowRecipe, Status, create_attack
from labelleak.attacks.combined import SHIFTS, agreement_logit, resolve_signals, shifted_copies
from labelleak.attacks.dhattack import fixed_path_distance, path_endpoints
from labelleak.errors import InvalidInputError
from labelleak.oracle import TorchOracle

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _distributed_world import RECIPE, SHAPE, digits_world

SMALL = dict(n_reference=2, max_iter=3, max_eval=40, init_eval=10, init_size=10)


@pytest.fixture(scope="module")
def world():
    return digits_world()


def _attack(name="boundary-lira-combined", **kw):
    return create_attack(name, **{**SMALL, **kw}, shadow_recipe=ShadowRecipe(**RECIPE))


@pytest.fixture(scope="module")
def combined(world):
    oracle = TorchOracle(world["model"], input_shape=SHAPE, n_classes=10)
    return oracle, _attack()(oracle, world["x"], world["y"], shadow=world["shadow"], max_queries_per_sample=80)


def test_each_signal_is_paid_from_its_share_and_no_candidate_passes_its_budget(world, combined):
    oracle, res = combined
    assert res.extras["signals"] == ["distance", "augmentation", "path"]  # images: both extra signals
    assert res.extras["queries_per_signal"] == {"distance": 60, "augmentation": 4, "path": 16}
    assert res.queries.max() <= 80 and res.extras["signal_values"].shape == (60, 3)
    assert np.isfinite(res.scores).all() and set(np.unique(res.status)) <= {int(s) for s in Status}
    offline = _attack("boundary-lira-combined-offline")
    capped = offline(oracle, world["x"], world["y"], shadow=world["shadow"], max_total_queries=3000)
    assert int(capped.queries.sum()) <= 3000 and capped.queries.max() <= 50  # 3,000 / 60 candidates each
    unpaid = _attack()(oracle, world["x"], world["y"], shadow=world["shadow"], max_queries_per_sample=21)
    assert (unpaid.status == Status.BUDGET_HIT).all() and unpaid.queries.sum() == 0
    assert "cannot pay the search (at least 2) beside 20 for augmentation and path" in unpaid.extras["unpaid"]


def test_the_signals_are_what_the_target_answers_to_the_shifts_and_along_the_path(world, combined):
    oracle, res = combined
    x, y = torch.as_tensor(world["x"]), torch.as_tensor(world["y"])
    labels = oracle.predict_labels(shifted_copies(x)).reshape(len(SHIFTS), len(x))
    np.testing.assert_array_equal(res.extras["shifts_kept"], (labels == y[None]).sum(0).numpy())
    shadow = world["shadow"]
    flat = x.reshape(len(x), -1)
    pool = torch.as_tensor(np.concatenate([shadow.x_train, shadow.x_test])).reshape(120, -1)
    pool_y = torch.as_tensor(np.concatenate([shadow.y_train, shadow.y_test]))
    out, has_out = path_endpoints(flat, y, pool, pool_y)
    inside, has_in = path_endpoints(flat, y, pool, pool_y, same=True)
    # asked alone, the path labels x first; in the attack the search already did, so its 16 pay 15 bisections
    path = fixed_path_distance(
        lambda p, rows: oracle.predict_labels(p.reshape(len(p), *SHAPE)), flat, y, out, inside, steps=15, min_ratio=1e-4
    )
    np.testing.assert_array_equal(res.extras["path_distance"], path.distance.numpy())
    endless = ~torch.where(path.correct, has_out, has_in)
    assert res.extras["path_without_endpoint"] == int(endless.sum())
    np.testing.assert_array_equal(res.extras["signal_values"][:, 1], agreement_logit(res.extras["shifts_kept"], 4))


def test_signals_resolve_by_input_and_refuse_what_cannot_be_measured():
    assert resolve_signals("auto", (1, 8, 8)) == ("augmentation", "path") and resolve_signals("auto", (6,)) == ("path",)
    assert np.isfinite(agreement_logit(np.array([0, 4]), 4)).all()
    with pytest.raises(InvalidInputError, match=r"signals: augmentation needs \(C, H, W\) images"):
        resolve_signals(["augmentation"], (6,))
    with pytest.raises(InvalidInputError, match="signals: expected distinct names among augmentation, path"):
        resolve_signals(["path", "noise"], (1, 8, 8))


def test_a_path_without_endpoint_spends_nothing_and_a_known_label_is_not_asked_again():
    x = torch.tensor([[0.0, 0.0], [0.0, 0.0], [3.0, 0.0]])
    y = torch.tensor([0, 0, 0])  # row 2 is misclassified: its path leads back to label 0
    asked: list[int] = []

    def classify(points, rows):  # the boundary is x0 = 1
        asked.extend(rows.tolist())
        return (points[:, 0] > 1).long()

    end = torch.tensor([[2.0, 0.0], [0.0, 0.0], [0.0, 0.0]])  # row 1 has no endpoint: it keeps itself
    has = torch.tensor([True, False, True])
    known = torch.tensor([True, True, False])
    path = fixed_path_distance(classify, x, y, end, end, steps=12, min_ratio=1e-3, has_end=(has, has), correct=known)
    assert 1 not in asked and asked.count(0) == 13 and asked.count(2) == 13  # the endpoint and 12 bisections
    assert not path.crossed[1] and path.distance[1] == 0 and path.complete.all()
    assert 0.99 < float(path.distance[0]) < 1.01 and -2.01 < float(path.distance[2]) < -1.99
