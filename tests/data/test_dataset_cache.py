"""The dataset cache is an object its caller owns: no module-level state survives between callers."""

from __future__ import annotations

import os

import numpy as np

from labelleak.data import cache as cache_module


def test_dataset_cache_loads_once_per_owner_and_reloads_a_changed_file(tmp_path, monkeypatch):
    path = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.uniform(0, 1, (20, 3)).astype(np.float32), y=np.arange(20) % 2)
    loads = []
    real = cache_module.load_dataset
    monkeypatch.setattr(cache_module, "load_dataset", lambda name, p: loads.append(p) or real(name, p))

    cache = cache_module.DatasetCache()
    first = cache.load("npz", str(path))
    assert cache.load("npz", str(path)) is first and len(loads) == 1
    assert cache_module.DatasetCache().load("npz", str(path)) is not first and len(loads) == 2  # another owner
    cache_module.load_prepared("npz", str(path))
    assert len(loads) == 3  # no hidden cache behind the plain function
    os.utime(path, ns=(1, 1))  # the file changed on disk
    again = cache.load("npz", str(path))
    assert again is not first and len(loads) == 4
    np.testing.assert_array_equal(again[1], first[1])
