"""A short bounded locust load test of ``labelleak serve`` on loopback (bench/load_serve.py): no request fails."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

# locust runs in its own process: importing it here would monkey-patch this one with gevent
if importlib.util.find_spec("locust") is None:
    pytest.skip("locust is not installed", allow_module_level=True)


def test_load_test_runs_without_errors():
    path = Path(__file__).resolve().parents[2] / "bench" / "load_serve.py"
    spec = importlib.util.spec_from_file_location("load_serve", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    summary = module.run(users=4, seconds=3)
    print(f"load test: {summary}")
    assert summary["requests"] > 0 and summary["failures"] == 0
