"""Searches on all reference models at once give every row what a search run alone on that model gives, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelleak.attacks import ShadowData, create_attack
from labelleak.attacks._reference_search import RoutedOracle, model_groups, route, search_references
from labelleak.attacks._shadow import ShadowRecipe
from labelleak.attacks.boundary_lira import signed_distances
from labelleak.attacks.dhattack import (
    fixed_path_distance,
    gaussian_scores,
    model_classifier,
    path_endpoints,
    reference_path_distances,
)
from labelleak.attacks.hsja import HopSkipJump
from labelleak.data import load_digits
from labelleak.errors import BudgetExhaustedError, InvalidInputError
from labelleak.models import ModelSpec, TrainSettings, build_model, init_model, train_model
from labelleak.oracle import TorchOracle
from labelleak.oracle.budget import BudgetedOracle, QueryLedger

SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def digits():
    ds = load_digits()
    return torch.from_numpy(ds.features()), torch.from_numpy(ds.y)


@pytest.fixture(scope="module")
def cnns(digits) -> list[torch.nn.Module]:
    """Three small cnn2s trained on different digits with different seeds: each has its own boundaries (and conv kernels
    are what may round differently by batch)."""
    x, y = digits
    recipe = ShadowRecipe(arch="cnn2", width=0.5, epochs=10, lr=3e-3, batch_size=32)
    return [
        recipe.train(x[100 + 200 * s : 300 + 200 * s].numpy(), y[100 + 200 * s : 300 + 200 * s].numpy(),
                     input_shape=SHAPE, n_classes=10, seed=s).eval()
        for s in range(3)
    ]  # fmt: skip


def _alone(engine: HopSkipJump, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, cap: int):
    """The search on one model, as boundary-LiRA ran it before the batched engine."""
    ledger = QueryLedger(len(x), max_per_sample=cap)
    oracle = BudgetedOracle(TorchOracle(model, input_shape=SHAPE, n_classes=10), ledger)
    d, status = signed_distances(engine, oracle, x, y)
    return d, status, ledger.used.clone()


def test_each_row_of_the_batched_search_is_the_search_run_alone_on_its_model(digits, cnns):
    x, y = digits[0][:16], digits[1][:16]
    # a small chunk size splits the gradient estimates into calls whose rows differ between the runs
    engine = HopSkipJump(max_iter=4, max_eval=40, init_eval=10, init_size=20, seed=3, chunk_elements=1 << 12)
    cap = 90
    alone = [_alone(engine, model, x, y, cap) for model in cnns]
    used: list[torch.Tensor] = []

    def measure(oracle, xs, ys):
        d, status = signed_distances(engine, oracle, xs, ys)
        used.append(oracle.ledger.used.clone())
        return d, status

    for max_elements in (1 << 25, 16 * 64):  # all three models in one search; one model per search
        used.clear()
        got = search_references(
            measure, cnns, x, y, input_shape=SHAPE, n_classes=10, bounds=(0.0, 1.0), cap=cap, max_elements=max_elements
        )
        assert len(used) == len(model_groups(3, 16, 64, max_elements))
        per_row = torch.cat(used).reshape(3, 16)
        for k, (d, status, spent) in enumerate(alone):
            # the same queries per candidate (labels are what steer the search), then the same bits
            assert torch.equal(per_row[k], spent)
            assert got.distance[k].tobytes() == d.tobytes() and np.array_equal(got.status[k], status)
            assert got.queries[k] == int(spent.sum())
    assert per_row.max() <= cap and per_row.double().mean() > 0.9 * cap  # the budget, not max_iter, ends them
    assert len(np.unique(got.status)) >= 2 and not np.array_equal(got.distance[0], got.distance[1])


def test_route_sends_every_row_to_its_model_in_order():
    seen = []

    def model(k):
        def labels(points, rows):
            seen.append((k, rows.tolist()))
            return k * 100 + rows

        return labels

    rows = torch.tensor([7, 0, 5, 2, 3, 9, 1])  # n = 4: models 1, 0, 1, 0, 0, 2, 0
    out = route(4, [model(0), model(1), model(2)])(torch.zeros(7, 2), rows)
    assert out.tolist() == [103, 0, 101, 2, 3, 201, 1]
    assert seen == [(0, [0, 2, 3, 1]), (1, [3, 1]), (2, [1])]  # one call per model present, rows in batch order


def test_routed_oracle_charges_each_row_and_refuses_setup_queries(digits, cnns):
    models, x = cnns[:2], digits[0][:3]
    oracle = RoutedOracle(models, 3, input_shape=SHAPE, n_classes=10, bounds=(0.0, 1.0), cap=2)
    labels = oracle.query(torch.cat([x, x]), torch.arange(6))
    for k, model in enumerate(models):
        assert torch.equal(
            labels[3 * k : 3 * k + 3], TorchOracle(model, input_shape=SHAPE, n_classes=10).predict_labels(x)
        )
    oracle.query(x[:1], torch.tensor([4]))
    assert oracle.ledger.used.tolist() == [1, 1, 1, 1, 2, 1]
    with pytest.raises(BudgetExhaustedError, match="per-sample budget 2 would be exceeded"):
        oracle.query(x[:1], torch.tensor([4]))
    with pytest.raises(InvalidInputError, match="a reference search has no setup queries"):
        oracle.query_setup(x)
    with pytest.raises(InvalidInputError, match="expected at least one model"):
        RoutedOracle([], 3, input_shape=SHAPE, n_classes=10, bounds=(0.0, 1.0), cap=2)


@pytest.mark.parametrize("max_elements", [1 << 25, 20 * 64])
def test_fixed_path_reference_distances_are_those_of_each_model_alone(digits, cnns, max_elements):
    models, (x, y) = cnns, (digits[0][:20], digits[1][:20])
    flat = x.reshape(20, -1)
    pool_x, pool_y = digits[0][-60:], digits[1][-60:]
    pool = pool_x.reshape(60, -1)
    end_out, _ = path_endpoints(flat, y, pool, pool_y)
    end_in, _ = path_endpoints(flat, y, pool, pool_y, same=True)
    got = reference_path_distances(
        models, flat, y, end_out, end_in, shape=SHAPE, steps=9, min_ratio=1e-3, max_elements=max_elements
    )
    for k, model in enumerate(models):
        alone = fixed_path_distance(model_classifier(model, SHAPE), flat, y, end_out, end_in, steps=9, min_ratio=1e-3)
        assert got[k].tobytes() == alone.distance.numpy().tobytes()
    assert (got < 0).any() and (got > 0).any() and not np.array_equal(got[0], got[1])


def _clusters(rng, n):
    y = np.repeat([0, 1, 2], n)
    centres = np.array([[0.2, 0.3], [0.8, 0.3], [0.5, 0.8]])
    return np.clip(centres[y] + rng.normal(scale=0.12, size=(3 * n, 2)), 0, 1).astype(np.float32), y


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    rng = np.random.default_rng(1)
    x, y = _clusters(rng, 6)
    sx, sy = _clusters(rng, 20)
    spec = ModelSpec("mlp", (2,), 3, hidden=(16,))
    tx, ty = _clusters(rng, 20)
    settings = TrainSettings(epochs=20, lr=1e-2, batch_size=16)
    target = train_model(init_model(lambda: build_model(spec), 0), tx, ty, settings, n_classes=3).eval()
    return dict(
        oracle=TorchOracle(target, input_shape=(2,), n_classes=3),
        x=x,
        y=y,
        shadow=ShadowData(sx[::2], sy[::2], sx[1::2], sy[1::2]),
        recipe=dict(arch="mlp", hidden=(16,), epochs=20, lr=1e-2, batch_size=16),
    )


@pytest.mark.parametrize(
    "name", ["boundary-lira", "boundary-lira-offline", "boundary-lira-guided", "boundary-lira-guided-offline"]
)
def test_boundary_lira_reference_rows_follow_their_models_and_in_out_masks(world, name):
    """Row k of the attack's reference distances is the search alone on reference model k, whose IN set is row k of
    ``inside``: the scores are the likelihood ratio of those rows, so the bookkeeping is the one of K solo searches.
    Guided, the solo search is boundary-guided's, with the same shadow model (its starts and prior)."""
    search = dict(max_iter=4, max_eval=40, init_eval=10, init_size=10)
    attack = create_attack(name, n_reference=4, **search, **world["recipe"])
    res = attack(world["oracle"], world["x"], world["y"], shadow=world["shadow"], max_queries_per_sample=80)
    xt, yt = torch.from_numpy(world["x"]), torch.from_numpy(world["y"])
    ledger = QueryLedger(len(xt), max_per_sample=80)
    refs = attack._reference_models(BudgetedOracle(world["oracle"], ledger), xt, yt, world["shadow"])
    assert refs.inside.sum(0).tolist() == ([2] * len(xt) if attack.online else [0] * len(xt))
    total = 0
    engine = attack.engine((2,))
    search, _ = attack._guided(engine, BudgetedOracle(world["oracle"], QueryLedger(len(xt))), world["shadow"], False)
    assert (search is not None) == ("guided" in name) and res.extras["search"] == attack.search
    for k, model in enumerate(refs.models):
        ledger = QueryLedger(len(xt), max_per_sample=80)
        oracle = BudgetedOracle(TorchOracle(model, input_shape=(2,), n_classes=3), ledger)
        d, _ = signed_distances(engine, oracle, xt, yt, search)
        assert res.extras["reference_distances"][k].tobytes() == d.tobytes()
        total += ledger.total
    assert res.extras["reference_queries"] == total
    assert len({row.tobytes() for row in res.extras["reference_distances"]}) == 4  # four different models


def test_dhattack_scores_are_the_gaussians_of_each_reference_model_alone(world):
    attack = create_attack("dhattack", n_reference=4, max_queries=8, **world["recipe"])
    res = attack(world["oracle"], world["x"], world["y"], shadow=world["shadow"], max_queries_per_sample=8)
    xt, yt = torch.from_numpy(world["x"]), torch.from_numpy(world["y"])
    budgeted = BudgetedOracle(world["oracle"], QueryLedger(len(xt)))
    distilled = attack.distill(budgeted, world["shadow"])
    refs = attack._reference_models(budgeted, xt, yt, distilled, online=False)
    pool = torch.from_numpy(np.concatenate([distilled.x_train, distilled.x_test]))
    labels = torch.from_numpy(np.concatenate([distilled.y_train, distilled.y_test]))
    end_out, _ = path_endpoints(xt, yt, pool, labels)
    end_in, _ = path_endpoints(xt, yt, pool, labels, same=True)
    alone = [
        fixed_path_distance(model_classifier(m, (2,)), xt, yt, end_out, end_in, steps=7, min_ratio=1e-4).distance
        for m in refs.models
    ]
    ref = torch.stack(alone).numpy()
    assert res.extras["reference_mean"].tobytes() == ref.mean(0).tobytes()
    scores, _, _ = gaussian_scores(res.extras["distance"], ref, shrinkage=attack.shrinkage)
    assert res.scores.tobytes() == scores.tobytes()
    assert len({row.tobytes() for row in ref}) == 4


def test_dhattack_guided_runs_boundary_guideds_search_on_the_target_and_each_distilled_model_alone(world):
    """dhattack-guided (issue 34, item 2): the fixed path gives way to boundary-guided's search, up to the call's
    per-candidate budget, guided by a shadow model of the distilled data, the same on the target and on each
    distilled reference model; the scores are dhattack's per-sample Gaussians over those distances."""
    attack = create_attack("dhattack-guided", n_reference=4, **world["recipe"])
    res = attack(world["oracle"], world["x"], world["y"], shadow=world["shadow"], max_queries_per_sample=60)
    xt, yt = torch.from_numpy(world["x"]), torch.from_numpy(world["y"])
    budgeted = BudgetedOracle(world["oracle"], QueryLedger(len(xt)))
    distilled = attack.distill(budgeted, world["shadow"])
    refs = attack._reference_models(budgeted, xt, yt, distilled, online=False)
    guide = attack.guide()
    engine = guide.engine((2,))
    model = guide.guidance_model(budgeted, distilled)

    def search(o, xs, labels, owners):
        return guide.guided_search(engine, o, xs, labels, owners, shadow=distilled, model=model)

    target = BudgetedOracle(world["oracle"], QueryLedger(len(xt), max_per_sample=60))
    d, _ = signed_distances(engine, target, xt, yt, search)
    assert res.extras["distance"].tobytes() == d.tobytes()
    assert 0 < int(target.ledger.used.max()) <= 60  # the call's budget, not max_queries = 15
    for k, m in enumerate(refs.models):
        oracle = BudgetedOracle(TorchOracle(m, input_shape=(2,), n_classes=3), QueryLedger(len(xt), max_per_sample=60))
        alone, _ = signed_distances(engine, oracle, xt, yt, search)
        assert res.extras["reference_distances"][k].tobytes() == alone.tobytes()
    scores, _, _ = gaussian_scores(d, res.extras["reference_distances"], shrinkage=attack.shrinkage)
    assert res.scores.tobytes() == scores.tobytes() and res.extras["search"] == "guided"
    plan = attack.query_plan(60, shadow_train=10, shadow_test=10)
    assert plan.setup == 20 and plan.per_candidate == 60
    with pytest.raises(InvalidInputError, match="dhattack: search must be 'path' or 'guided', got 'walk'"):
        create_attack("dhattack", search="walk")(world["oracle"], world["x"], world["y"], shadow=world["shadow"])


def test_dhattack_guided_reads_its_finished_reference_searches_from_the_cache(world, tmp_path, monkeypatch):
    import labelleak.attacks.boundary_lira as module

    calls = []
    real = module.search_references
    monkeypatch.setattr(module, "search_references", lambda *a, **k: calls.append(len(a[1])) or real(*a, **k))
    recipe = {**world["recipe"], "cache_dir": str(tmp_path / "cache")}
    runs = [
        create_attack("dhattack-guided", n_reference=4, **recipe)(
            world["oracle"], world["x"], world["y"], shadow=world["shadow"], max_queries_per_sample=40
        )
        for _ in range(2)
    ]
    assert calls == [4]  # the second run searched no reference model
    assert len(list((tmp_path / "cache" / "reference-searches").glob("*.npz"))) == 4
    assert runs[0].scores.tobytes() == runs[1].scores.tobytes()
