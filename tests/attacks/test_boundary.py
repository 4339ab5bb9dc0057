"""Boundary attacks: closed-form distances, budgets, seeds, statuses, thresholds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import LinearModel

from labelleak.attacks import Status, create_attack
from labelleak.attacks.boundary import BoundaryAttack, box_diameter
from labelleak.attacks.hsja import HopSkipJump
from labelleak.attacks.qeba import QEBA
from labelleak.errors import InvalidInputError
from labelleak.metrics import threshold_from_percentile, threshold_sweep
from labelleak.oracle import CallableOracle, TorchOracle
from labelleak.oracle.budget import BudgetedOracle, QueryLedger

FAST = dict(max_iter=15, max_eval=500, init_eval=50)


def _candidates(model, n=40, seed=0, scale=0.5):
    x = np.random.default_rng(seed).normal(size=(n, model.n_features)).astype(np.float32) * scale
    return x, model(x)


def test_hsja_matches_closed_form_distance_on_a_binary_linear_model():
    # two classes: one hyperplane, so the nearest boundary point is unique and HSJA must find it
    model = LinearModel(n_features=10, n_classes=2, seed=3)
    oracle = CallableOracle(model, input_shape=(10,), n_classes=2, bounds=(-20.0, 20.0))
    x, y = _candidates(model)
    res = create_attack("boundary-hsja", max_iter=30, max_eval=2000, seed=1)(oracle, x, y)
    exact = model.boundary_distance(x)
    rel = np.abs(res.scores - exact) / exact
    assert (res.status == Status.OK).all()
    assert rel.max() < 0.01, rel.max()  # achieved: max relative error below 1% (median about 0.1%)


def test_hsja_on_multiclass_linear_model_is_close_and_never_below_the_truth(linear_model, linear_oracle):
    x, y = _candidates(linear_model, n=60)
    res = create_attack("boundary-hsja", max_iter=30, max_eval=2000, seed=0)(linear_oracle, x, y)
    exact = linear_model.boundary_distance(x)
    rel = (res.scores - exact) / exact
    # an adversarial point can never be closer than the exact boundary (up to binary-search precision)
    assert rel.min() > -1e-3
    # with several classes HSJA can settle on a face that is not the nearest: most candidates are exact
    assert np.median(rel) < 0.01 and np.mean(rel < 0.02) >= 0.75


def test_budget_is_never_exceeded_and_milestones_are_monotone(linear_model, linear_oracle):
    x, y = _candidates(linear_model, n=30)
    for cap in (1, 7, 60, 300):
        res = create_attack("boundary-hsja", **FAST, milestones=(10, 50, 100, 200))(
            linear_oracle, x, y, max_queries_per_sample=cap
        )
        assert res.queries.max() <= cap
        ms = res.extras["milestone_scores"]
        stacked = np.stack([ms[m] for m in (10, 50, 100, 200)])
        assert (np.diff(stacked, axis=0) <= 1e-6).all()  # more queries never make the best distance worse
    before = linear_oracle.queries
    res = create_attack("boundary-hsja", **FAST)(linear_oracle, x, y, max_total_queries=500)
    assert res.queries.sum() <= 500 and linear_oracle.queries - before == res.queries.sum()


def test_same_seed_same_scores_and_batch_order_does_not_matter(linear_model, linear_oracle):
    x, y = _candidates(linear_model, n=20)
    attack = create_attack("boundary-hsja", **FAST, seed=4)
    a, b = attack(linear_oracle, x, y), attack(linear_oracle, x, y)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.queries, b.queries)
    perm = np.random.default_rng(0).permutation(len(x))
    c = attack(linear_oracle, x[perm], y[perm])
    np.testing.assert_array_equal(c.scores, a.scores[perm])
    d = create_attack("boundary-hsja", **FAST, seed=5)(linear_oracle, x, y)
    assert not np.array_equal(d.scores, a.scores)


@pytest.mark.parametrize(
    ("engine", "chunk_elements"), [("hsja", 4096), ("hsja", 1 << 16), ("hsja-linf", 4096), ("qeba", 4096)]
)
def test_a_candidates_search_does_not_depend_on_the_other_candidates_in_its_batch(engine, chunk_elements):
    # the gradient estimate works in memory-bounded chunks; their size must not follow the batch's row count,
    # or a shard of candidates sums its directions in another order than the whole batch and drifts apart
    d = 3 * 4 * 4
    model = LinearModel(n_features=d, n_classes=3, seed=5)
    oracle = CallableOracle(
        lambda x: model(x.reshape(len(x), -1)), input_shape=(3, 4, 4), n_classes=3, bounds=(-10.0, 10.0)
    )
    x = (np.random.default_rng(1).normal(size=(24, d)) * 0.5).astype(np.float32)
    x0, y = torch.tensor(x).reshape(-1, 3, 4, 4), torch.tensor(model(x))
    search = QEBA if engine == "qeba" else HopSkipJump
    kwargs = {"hsja": {}, "hsja-linf": {"norm": "linf"}, "qeba": {"ratio": 2}}[engine]

    def run(rows: slice) -> torch.Tensor:
        n = len(x0[rows])
        found = search(max_iter=6, max_eval=300, init_eval=60, seed=2, chunk_elements=chunk_elements, **kwargs).search(
            BudgetedOracle(oracle, QueryLedger(n)), x0[rows], y[rows], torch.arange(n)
        )
        return found.adv

    whole = run(slice(None))
    np.testing.assert_array_equal(torch.cat([run(slice(0, 5)), run(slice(5, None))]).numpy(), whole.numpy())


def test_misclassified_and_failed_candidates_are_flagged(linear_model):
    x, y = _candidates(linear_model, n=10)
    y_wrong = y.copy()
    y_wrong[:3] = (y[:3] + 1) % 3
    oracle = CallableOracle(linear_model, input_shape=(6,), n_classes=3, bounds=(-10.0, 10.0))
    res = create_attack("boundary-hsja", **FAST)(oracle, x, y_wrong)
    assert (res.status[:3] == Status.MISCLASSIFIED).all() and (res.scores[:3] == 0).all()
    assert res.queries[:3].tolist() == [1, 1, 1]
    constant = CallableOracle(lambda a: np.zeros(len(a), int), input_shape=(6,), n_classes=3, bounds=(-10.0, 10.0))
    res = create_attack("boundary-hsja", **FAST, init_size=5)(constant, x, np.zeros(10, int))
    assert (res.status == Status.FAILED).all()
    assert res.scores == pytest.approx([box_diameter((-10.0, 10.0), 6, "l2")] * 10)
    assert res.queries.tolist() == [6] * 10  # one correctness query and five noise tries each


@pytest.mark.parametrize("name", ["boundary-hsja", "boundary-qeba"])
def test_no_correctly_classified_candidate_is_not_an_error(name):
    # every candidate misclassified: nothing is left to search, and the search of zero rows must not fail
    oracle = CallableOracle(lambda a: np.ones(len(a), int), input_shape=(1, 4, 4), n_classes=2)
    res = create_attack(name, **FAST)(oracle, np.zeros((3, 1, 4, 4), np.float32), np.zeros(3, int))
    assert (res.status == Status.MISCLASSIFIED).all() and res.scores.tolist() == [0.0] * 3
    assert res.queries.tolist() == [1, 1, 1] and res.attack == name


def test_linf_and_all_norms_reported(linear_model, linear_oracle):
    x, y = _candidates(linear_model, n=15)
    res = create_attack("boundary-hsja-linf", **FAST)(linear_oracle, x, y)
    d = res.extras["distances"]
    np.testing.assert_allclose(res.scores, d["linf"])
    assert (d["l2"] >= d["linf"] - 1e-6).all() and (d["l1"] >= d["l2"] - 1e-6).all()
    l2 = create_attack("boundary-hsja", **FAST)(linear_oracle, x, y)
    assert np.median(res.scores) < np.median(l2.scores)  # Linf radius is smaller than L2 distance


def test_qeba_on_images_matches_closed_form_and_rejects_flat_input(linear_oracle):
    model = LinearModel(n_features=3 * 16 * 16, n_classes=2, seed=2)
    oracle = CallableOracle(model, input_shape=(3, 16, 16), n_classes=2, bounds=(-5.0, 5.0))
    x = (np.random.default_rng(0).normal(size=(12, 3, 16, 16)) * 0.1).astype(np.float32)
    y = model(x)
    hsja = create_attack("boundary-hsja", max_iter=10, max_eval=500, init_eval=50)(oracle, x, y)
    qeba = create_attack("boundary-qeba", max_iter=10, max_eval=500, init_eval=50, ratio=4)(oracle, x, y)
    exact = model.boundary_distance(x)
    assert (qeba.status == Status.OK).all()
    assert (qeba.scores >= exact * (1 - 1e-3)).all()  # never closer than the true boundary
    # the random weights have no low-frequency structure, so the subspace can only be as good as full space
    assert np.median(hsja.scores / exact) < np.median(qeba.scores / exact) < 10
    with pytest.raises(InvalidInputError, match="QEBA needs image inputs"):
        create_attack("boundary-qeba", **FAST)(linear_oracle, np.zeros((2, 6), np.float32), np.zeros(2, int))


def test_whitebox_matches_closed_form_on_a_linear_torch_model():
    ref = LinearModel(n_features=8, n_classes=3, seed=5)
    layer = torch.nn.Linear(8, 3).double()
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(ref.W))
        layer.bias.copy_(torch.from_numpy(ref.b))
    model = torch.nn.Sequential(layer).float().eval()
    oracle = TorchOracle(model, input_shape=(8,), n_classes=3, bounds=(-10.0, 10.0))
    x = (np.random.default_rng(1).normal(size=(30, 8)) * 0.5).astype(np.float32)
    y = ref(x)
    wb = create_attack("boundary-whitebox")(oracle, x, y)
    exact = ref.boundary_distance(x)
    assert wb.threat_model == "white-box" and (wb.status == Status.OK).all()
    rel = (wb.scores - exact) / exact
    assert rel.min() > -1e-3 and np.median(rel) < 0.05  # achieved: median about 2% above the exact distance
    with pytest.raises(InvalidInputError, match="needs an in-process PyTorch target"):
        create_attack("boundary-whitebox")(
            CallableOracle(ref, input_shape=(8,), n_classes=3, bounds=(-10.0, 10.0)), x, y
        )


def test_thresholds_shadow_and_data_free():
    rng = np.random.default_rng(0)
    members, nonmembers, noise = rng.normal(2, 1, 200), rng.normal(1, 1, 200), rng.normal(1, 1, 500)
    is_member = np.r_[np.ones(200), np.zeros(200)]
    scores = np.r_[members, nonmembers]
    sweep = threshold_sweep(is_member, scores, noise)
    assert [r["t"] for r in sweep] == [float(t) for t in range(0, 101, 10)]
    recalls = [r["recall"] for r in sweep]
    assert recalls == sorted(recalls, reverse=True)  # a higher percentile predicts fewer members
    mid = sweep[5]
    assert mid["threshold"] == pytest.approx(np.percentile(noise, 50))
    assert 0.6 < mid["accuracy"] < 0.75 and mid["precision"] > 0.6
    with pytest.raises(InvalidInputError, match="percentile in"):
        threshold_from_percentile(noise, 101)


def test_bad_parameters():
    with pytest.raises(InvalidInputError, match="norm: expected 'l2' or 'linf'"):
        BoundaryAttack(norm="l3").engine()
    with pytest.raises(InvalidInputError, match="max_eval: expected a positive integer"):
        BoundaryAttack(max_eval=0).engine()
    with pytest.raises(InvalidInputError, match="method: expected 'hsja', 'qeba' or 'auto'"):
        BoundaryAttack(method="boundary").engine()


def test_initialisation_finds_a_start_when_all_pixel_noise_shares_one_label():
    # a classifier that calls every noisy image class 0 and smooth ones 1 or 2 by brightness: i.i.d. noise never
    # leaves class 0, so only the low-resolution initialisation rounds can start the search for class-0 candidates
    def classify(x: np.ndarray) -> np.ndarray:
        roughness = np.abs(np.diff(x, axis=-1)).mean(axis=(1, 2, 3))
        return np.where(roughness > 0.15, 0, 1 + (x.mean(axis=(1, 2, 3)) > 0.5)).astype(np.int64)

    oracle = CallableOracle(classify, input_shape=(3, 8, 8), n_classes=3)
    x = np.random.default_rng(0).uniform(0, 1, size=(12, 3, 8, 8)).astype(np.float32)
    y = classify(x)
    assert (y == 0).all()
    result = create_attack("boundary-hsja", max_iter=2, init_eval=10, seed=0)(oracle, x, y)
    assert result.status_counts()["failed"] == 0 and (result.status == Status.OK).all()
    noise_labels = classify(np.random.default_rng(1).uniform(0, 1, size=(200, 3, 8, 8)).astype(np.float32))
    assert (noise_labels == 0).all()  # the situation the low-resolution rounds exist for
