"""Shared reference models: IN/OUT bookkeeping, seeds, the model cache and the pluggable map."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelleak.attacks import ShadowData, ShadowRecipe, _shadow
from labelleak.attacks._reference import ReferenceJob, train_reference_job, train_reference_models
from labelleak.errors import InvalidInputError

RECIPE = ShadowRecipe(arch="mlp", hidden=(8,), epochs=2, batch_size=16)


def _data(n_cand: int = 30, n_shadow: int = 40):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (n_cand + n_shadow, 5)).astype(np.float32)
    y = (x[:, 0] > x[:, 1]).astype(np.int64)
    half = n_cand + n_shadow // 2
    shadow = ShadowData(x[n_cand:half], y[n_cand:half], x[half:], y[half:])
    return torch.from_numpy(x[:n_cand]), torch.from_numpy(y[:n_cand]), shadow


def _train(x, y, shadow, **kw):
    args = dict(n_reference=4, online=True, recipe=RECIPE, input_shape=(5,), n_classes=2, seed=3)
    return train_reference_models(x, y, shadow, **{**args, **kw})


@pytest.fixture
def fits(monkeypatch):
    """Count real trainings (cache misses) by wrapping the recipe's fit."""
    calls: list[int] = []
    real = _shadow._fit

    def counted(*args, **kwargs):
        calls.append(args[3].seed)
        return real(*args, **kwargs)

    monkeypatch.setattr(_shadow, "_fit", counted)
    return calls


def test_online_candidates_are_in_exactly_the_halves_that_hold_them():
    x, y, shadow = _data()
    refs = _train(x, y, shadow)
    n, pool = len(x), len(x) + 40
    assert refs.inside.shape == (4, n) and refs.seeds == (4, 5, 6, 7)
    rng = np.random.default_rng(3)  # the halves are LiRA's: drawn in turn from default_rng(seed)
    for k in range(4):
        half = rng.permutation(pool)[: pool // 2]
        np.testing.assert_array_equal(refs.halves[k], half)
        expected = np.zeros(n, bool)
        expected[refs.order[half[half < n]]] = True
        np.testing.assert_array_equal(refs.inside[k], expected)
    # each model trains on half the pool, so a candidate is IN for about half of the models
    assert refs.inside.mean() == pytest.approx(0.5, abs=0.15)
    assert all(not m.training for m in refs.models)


def test_online_models_do_not_depend_on_the_candidates_order():
    x, y, shadow = _data()
    perm = np.random.default_rng(1).permutation(len(x))
    a, b = _train(x, y, shadow), _train(x[perm], y[perm], shadow)
    np.testing.assert_array_equal(b.inside, a.inside[:, perm])
    probe = torch.rand(5, 5)
    for ma, mb in zip(a.models, b.models):
        torch.testing.assert_close(ma(probe), mb(probe))


def test_offline_candidates_are_never_in_and_never_trained_on(fits):
    x, y, shadow = _data()
    refs = _train(x, y, shadow, online=False)
    assert not refs.inside.any() and refs.inside.shape == (4, 30)
    assert all(int(h.max()) < 40 for h in refs.halves)  # rows of the shadow pool only
    assert sorted(fits) == [4, 5, 6, 7]


def test_second_call_loads_every_model_from_the_cache(tmp_path, fits):
    x, y, shadow = _data()
    recipe = ShadowRecipe(arch="mlp", hidden=(8,), epochs=2, batch_size=16, cache_dir=str(tmp_path))
    first = _train(x, y, shadow, recipe=recipe)
    assert len(fits) == 4
    second = _train(x, y, shadow, recipe=recipe)
    assert len(fits) == 4  # nothing trained again
    probe = torch.rand(7, 5)
    for a, b in zip(first.models, second.models):
        torch.testing.assert_close(a(probe), b(probe))
    _train(x, y, shadow, recipe=recipe, seed=4)  # another seed: other halves, other models
    assert len(fits) == 8


def test_map_fn_trains_the_jobs_and_its_results_are_the_models():
    x, y, shadow = _data()
    seen: list[ReferenceJob] = []

    def recording_map(fn, jobs):
        seen.extend(jobs)
        return [fn(job) for job in reversed(list(jobs))][::-1]

    refs = _train(x, y, shadow, map_fn=recording_map)
    assert [job.seed for job in seen] == [4, 5, 6, 7]
    direct = train_reference_job(seen[2])
    probe = torch.rand(5, 5)
    torch.testing.assert_close(direct(probe), refs.models[2](probe))


def test_same_seed_same_models_other_seed_other_models():
    x, y, shadow = _data()
    probe = torch.rand(5, 5)
    a, b, c = _train(x, y, shadow), _train(x, y, shadow), _train(x, y, shadow, seed=9)
    torch.testing.assert_close(a.models[0](probe), b.models[0](probe))
    assert not torch.allclose(a.models[0](probe), c.models[0](probe))
    assert not np.array_equal(a.inside, c.inside)


def test_map_fn_that_drops_jobs_and_too_few_models_are_refused():
    x, y, shadow = _data()
    with pytest.raises(InvalidInputError, match="returned 3 models for 4 jobs"):
        _train(x, y, shadow, map_fn=lambda fn, jobs: [fn(j) for j in list(jobs)[:3]])
    with pytest.raises(InvalidInputError, match="at least 2 reference models, got 1"):
        _train(x, y, shadow, n_reference=1)
    tiny = ShadowData(np.zeros((1, 5), np.float32), np.zeros(1, np.int64), np.zeros((0, 5), np.float32), np.zeros(0))
    with pytest.raises(InvalidInputError, match="the pool has 1 sample"):
        _train(x[:0], y[:0], tiny, online=False)
