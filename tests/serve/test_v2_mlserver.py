"""An audit against a real MLServer (Open Inference Protocol v2) serving a scikit-learn model on loopback.

MLServer's pins conflict with labelleak's fastapi/starlette, so it lives in its own environment, made by
``scripts/setup_mlserver.sh`` (``.venv-mlserver`` at the repository root). Without it the test is skipped,
except under CI (the ``CI`` environment variable set), where it fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from labelleak.cli import app as cli_app
from labelleak.oracle.remote.transport import Transport
from labelleak.oracle.remote.v2 import V2Oracle

ROOT = Path(__file__).resolve().parents[2]
MLSERVER = ROOT / ".venv-mlserver" / "bin" / "mlserver"
NAME = "digits-lr"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlserver(tmp_path_factory):
    if not MLSERVER.exists():
        message = f"{MLSERVER} missing: run scripts/setup_mlserver.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("mlserver")
    x, y = load_digits(return_X_y=True)
    clf = LogisticRegression(max_iter=300).fit(x[:600], y[:600])
    joblib.dump(clf, folder / "model.joblib")  # the target's own deployment, read by its own server
    (folder / "model-settings.json").write_text(
        json.dumps(
            {
                "name": NAME,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v1"},
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 64]}],
                "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1, 1]}],
            }
        )
    )
    port = _free_port()
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": _free_port(),
        "metrics_port": _free_port(),
        "metrics_endpoint": None,
        "parallel_workers": 0,
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    env = {**os.environ, "PATH": f"{MLSERVER.parent}:{os.environ['PATH']}"}
    log = (folder / "mlserver.log").open("w")
    proc = subprocess.Popen(
        [str(MLSERVER), "start", str(folder)], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlserver exited with {proc.returncode}: {(folder / 'mlserver.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/v2/models/{NAME}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlserver not ready after 180 s: {(folder / 'mlserver.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url, clf, x, y
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_v2_oracle_labels_equal_the_sklearn_predictions(mlserver):
    url, clf, x, _ = mlserver
    oracle = V2Oracle(Transport(url, concurrency=2), model_name=NAME, bounds=(0.0, 16.0), n_classes=10, batch_size=64)
    assert oracle.input_shape == (64,)
    sample = x[600:900].astype(np.float32)
    np.testing.assert_array_equal(oracle.predict_labels(sample), clf.predict(sample))
    oracle.close()


def test_audit_against_mlserver(mlserver, tmp_path):
    url, clf, x, y = mlserver
    x = x.astype(np.float32)
    np.savez(tmp_path / "members.npz", x=x[:20], y=y[:20])
    np.savez(tmp_path / "nonmembers.npz", x=x[1000:1020], y=y[1000:1020])
    np.savez(tmp_path / "shadow.npz", x=x[1100:1300], y=y[1100:1300])
    args = ["audit", "--protocol", "v2", "--target", url, "--model-name", NAME, "--bounds", "0,16", "--n-classes"]
    args += ["10", "--attacks", "gap,boundary-hsja", "--queries", "30", "--max-iter", "3", "--noise-samples", "3"]
    args += ["--epochs", "2", "--concurrency", "2", "--max-total-queries", "5000", "--quiet"]
    args += [f"--{k}={tmp_path / k}.npz" for k in ("members", "nonmembers", "shadow")]
    args += ["--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["target"]["protocol"] == "v2" and res["dataset"]["input_shape"] == [64]
    assert 0 < res["remote"]["queries_sent"] <= 5000
    # the gap attack marks exactly the candidates the target gets wrong: MLServer's labels, seen through the audit
    with np.load(tmp_path / "out" / "arrays.npz") as arrays:
        status = arrays["gap/status"]
    expected = clf.predict(np.concatenate([x[:20], x[1000:1020]])) == np.r_[y[:20], y[1000:1020]]
    np.testing.assert_array_equal(status == 0, expected)
