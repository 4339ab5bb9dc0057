"""The examples in examples/ run end to end (small sizes) and write a full audit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    **os.environ,
    "PYTHON": sys.executable,
    "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    "MEMBERS": "60",
    "QUERIES": "100",
    "OMP_NUM_THREADS": "2",
}


def _check(results: Path) -> dict:
    res = json.loads(results.read_text())
    assert set(res["attacks"]) == {"gap", "transfer", "boundary-hsja"}
    assert res["attacks"]["gap"]["n_members"] == 60 and res["attacks"]["gap"]["n_nonmembers"] == 60
    assert "data_free" in res["attacks"]["boundary-hsja"]
    assert (results.parent / "scores.csv").is_file() and (results.parent / "roc.png").is_file()
    return res


@pytest.mark.parametrize("script", ["onnx_cnn.sh", "skops_forest.sh"])
def test_shell_examples(tmp_path, script):
    pytest.importorskip("onnxruntime" if "onnx" in script else "skops")
    proc = subprocess.run(
        ["bash", str(ROOT / "examples" / script), str(tmp_path / "ex")], env=ENV, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = _check(tmp_path / "ex" / "audit" / "results.json")
    assert res["target"]["format"] == ("onnx" if "onnx" in script else "skops")
    if "onnx" in script:
        assert res["target"]["preprocess"]["mean"] is not None  # normalisation declared, applied in the oracle


def test_python_api_example(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "python_api.py"), str(tmp_path / "api"), "60", "100"],
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "boundary-hsja" in proc.stdout
    _check(tmp_path / "api" / "results.json")
