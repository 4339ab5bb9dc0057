"""``labelleak serve`` serves any model file ``--model`` accepts, on /predict and under the v2 protocol, and a
served file answers exactly as the same file audited in process (loopback only)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
import torch
from _loopback import Server, free_port
from torch import nn

from labelleak.oracle.files import load_target
from labelleak.oracle.http import HttpOracle
from labelleak.oracle.remote.transport import Transport
from labelleak.oracle.remote.v2 import V2Oracle
from labelleak.serve import create_app

SHAPE = (1, 8, 8)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 4)).eval()


def _files(tmp_path):
    net, example = _net(), torch.rand(2, *SHAPE)
    torch.export.save(
        torch.export.export(net, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},)), tmp_path / "m.pt2"
    )
    torch.jit.save(torch.jit.script(net), tmp_path / "m.ts")
    paths = [tmp_path / "m.pt2", tmp_path / "m.ts"]
    if pytest.importorskip("onnxruntime") is not None:
        torch.onnx.export(
            net, (example,), str(tmp_path / "m.onnx"), input_names=["x"], dynamic_axes={"x": {0: "n"}}, dynamo=False
        )
        paths.append(tmp_path / "m.onnx")
    return paths


def test_every_model_file_answers_the_same_served_as_in_process(tmp_path):
    x = np.random.default_rng(0).uniform(size=(40, *SHAPE)).astype(np.float32)
    for path in _files(tmp_path):
        local = load_target(path, input_shape=SHAPE)
        expected = local.predict_labels(x)
        app = create_app(
            local.predict_labels, input_shape=SHAPE, n_classes=local.n_classes, bounds=local.bounds, v2_name="m"
        )
        with Server(app) as s:
            np.testing.assert_array_equal(HttpOracle(s.url, batch_size=16).predict_labels(x), expected)
            v2 = V2Oracle(Transport(s.url), model_name="m", bounds=(0.0, 1.0), n_classes=4, batch_size=16)
            assert v2.input_shape == SHAPE and v2.n_classes == 4
            np.testing.assert_array_equal(v2.predict_labels(x), expected)


def test_v2_errors_are_4xx_with_an_error_field():
    app = create_app(_net(), input_shape=SHAPE, n_classes=4, v2_name="m")
    with Server(app) as s:
        assert httpx.get(f"{s.url}/v2/health/ready").json() == {"ready": True}
        unknown = httpx.post(f"{s.url}/v2/models/other/infer", json={"inputs": []})
        assert unknown.status_code == 404 and "unknown model 'other'" in unknown.json()["error"]
        short = {"inputs": [{"name": "input-0", "shape": [2, 1, 8, 8], "datatype": "FP32", "data": [0.5] * 10}]}
        bad = httpx.post(f"{s.url}/v2/models/m/infer", json=short)
        assert bad.status_code == 422 and "holds 10 values" in bad.json()["error"]
        text = httpx.post(f"{s.url}/v2/models/m/infer", json={"inputs": [{"datatype": "BYTES", "shape": [1]}]})
        assert text.status_code == 422 and "datatype must be numeric" in text.json()["error"]


def test_the_serve_command_serves_a_model_file_with_its_preprocessing(tmp_path):
    path = next(p for p in _files(tmp_path) if p.suffix == ".pt2")
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "labelleak.cli", "serve", "--model", str(path), "--input-shape", "1,8,8"]
    command += ["--mean", "0.5", "--std", "0.25", "--v2-name", "m", "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/info", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        x = np.random.default_rng(1).uniform(size=(20, *SHAPE)).astype(np.float32)
        from labelleak.oracle.preprocess import Preprocessing

        local = load_target(path, input_shape=SHAPE, preprocess=Preprocessing(mean=(0.5,), std=(0.25,)))
        served = V2Oracle(Transport(url), model_name="m", bounds=(0.0, 1.0), n_classes=4)
        np.testing.assert_array_equal(served.predict_labels(x), local.predict_labels(x))
    finally:
        server.terminate()
        server.wait(timeout=20)
