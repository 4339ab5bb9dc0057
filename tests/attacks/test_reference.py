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


@pytest.mark.parametrize("size", [None, 20, 31])
def test_online_every_candidate_is_in_for_exactly_half_and_every_model_has_the_target_size(size):
    x, y, shadow = _data()
    refs = _train(x, y, shadow, n_reference=6, reference_size=size)
    n, want = len(x), 20 if size is None else size  # None: half the 40 shadow rows
    assert refs.inside.shape == (6, n) and refs.seeds == (4, 5, 6, 7, 8, 9) and refs.size == want
    assert refs.inside.sum(0).tolist() == [3] * n  # exactly K / 2 IN models each, so always IN and OUT ones
    for k, rows in enumerate(refs.rows):
        assert len(rows) == want == len(np.unique(rows)) and rows.max() < n + 40
        expected = np.zeros(n, bool)
        expected[refs.order[rows[rows < n]]] = True  # pool row j < n is candidate order[j]
        np.testing.assert_array_equal(refs.inside[k], expected)
        assert (rows < n).sum() == 15  # half the candidates; the shadow data fills the rest
    for j in range(3):  # complementary pairs
        np.testing.assert_array_equal(refs.inside[2 * j], ~refs.inside[2 * j + 1])
    assert all(not m.training for m in refs.models)


def test_online_odd_candidates_split_floor_and_ceil_and_a_small_target_size_is_raised_with_a_warning(caplog):
    x, y, shadow = _data(n_cand=29)
    with caplog.at_level("WARNING", logger="labelleak"):
        refs = _train(x, y, shadow, reference_size=10)
    assert refs.size == 15 and "half the 29 candidates (15) do not fit in the target's 10" in caplog.text
    assert refs.inside.sum(0).tolist() == [2] * 29
    assert refs.inside.sum(1).tolist() == [14, 15, 14, 15] and all(len(r) == 15 for r in refs.rows)


def test_odd_model_counts_are_refused_online_and_allowed_offline():
    x, y, shadow = _data()
    with pytest.raises(InvalidInputError, match=r"complementary pairs.*expected an even number, got 5 \(use 6"):
        _train(x, y, shadow, n_reference=5)
    refs = _train(x, y, shadow, n_reference=3, online=False, recipe=ShadowRecipe(arch="mlp", hidden=(4,), epochs=1))
    assert refs.k == 3 and not refs.inside.any()


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
    refs = _train(x, y, shadow, online=False, reference_size=25)
    assert not refs.inside.any() and refs.inside.shape == (4, 30)
    # random subsets of the shadow pool (its 40 rows only) of the target's size
    assert all(len(r) == 25 == len(np.unique(r)) and int(r.max()) < 40 for r in refs.rows)
    assert len({r.tobytes() for r in refs.rows}) == 4
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
    _train(x, y, shadow, recipe=recipe, seed=4)  # another seed: other training sets, other models
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


def test_too_little_shadow_data_and_bad_sizes_are_refused():
    x, y, shadow = _data()
    with pytest.raises(
        InvalidInputError, match=r"each trains on 41 rows \(shadow rows\), but the shadow data holds only 40"
    ):
        _train(x, y, shadow, online=False, reference_size=41)
    with pytest.raises(
        InvalidInputError, match=r"each trains on 56 rows \(15 candidates and 41 shadow rows\), .* holds only 40"
    ):
        _train(x, y, shadow, reference_size=56)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(InvalidInputError, match="reference_size: expected a positive integer or None"):
            _train(x, y, shadow, reference_size=bad)
