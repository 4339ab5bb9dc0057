"""Done-when of issue 12: one trained CNN audited in-process (TorchOracle), as an ONNX file (--model) and served
by ``labelleak serve`` (--target) gives the same scores.csv for gap and boundary-hsja."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import warnings

import httpx
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import labelleak
from labelleak.cli import app
from labelleak.data import load_digits
from labelleak.models import ModelSpec, TrainSettings, build_model, init_model, save_model, train_model
from labelleak.oracle import TorchOracle

pytest.importorskip("onnxruntime")
runner = CliRunner()
COMMON = ["--attacks", "gap,boundary-hsja", "--queries", "200", "--noise-samples", "10", "--epochs", "4", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A cnn2 (width 0.25) trained on 60 digits; its model folder, ONNX file and the three data files."""
    root = tmp_path_factory.mktemp("own")
    ds = load_digits()
    x, y = ds.features(), ds.y
    order = np.random.default_rng(0).permutation(len(x))
    m, n, s = order[:40], order[40:80], order[80:200]
    spec = ModelSpec("cnn2", (1, 8, 8), 10, width=0.25)
    net = init_model(lambda: build_model(spec), 0)
    net = train_model(net, x[m], y[m], TrainSettings(epochs=15, seed=0), n_classes=10).eval()
    save_model(root / "model", net, spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.from_numpy(x[:1]),),
            str(root / "cnn.onnx"),
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}},
            dynamo=False,
        )
    for name, idx in (("members", m), ("nonmembers", n), ("shadow", s)):
        np.savez(root / f"{name}.npz", x=x[idx], y=y[idx])
    return root, net, (x, y, m, n, s)


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _files(root):
    return [
        "--members",
        str(root / "members.npz"),
        "--nonmembers",
        str(root / "nonmembers.npz"),
        "--shadow",
        str(root / "shadow.npz"),
    ]


def test_torch_onnx_and_http_audits_give_identical_scores(trained, tmp_path):
    root, net, (x, y, m, n, s) = trained
    cache = str(tmp_path / "cache")
    # 1. in process, from Python, on arrays
    res = labelleak.audit(
        target=TorchOracle(net, input_shape=(1, 8, 8), n_classes=10),
        members=(x[m], y[m]),
        nonmembers=(x[n], y[n]),
        shadow=(x[s], y[s]),
        attacks=["gap", "boundary-hsja"],
        queries=200,
        noise_samples=10,
        epochs=4,
        out=tmp_path / "torch",
        cache_dir=cache,
        progress=False,
    )
    assert res["attacks"]["gap"]["n_members"] == 40 and res.target["oracle"] == "TorchOracle"
    # 2. the ONNX file through --model
    onnx = runner.invoke(
        app,
        [
            "audit",
            "--model",
            str(root / "cnn.onnx"),
            *_files(root),
            *COMMON,
            "--cache-dir",
            cache,
            "--out",
            str(tmp_path / "onnx"),
        ],
    )
    assert onnx.exit_code == 0, onnx.output
    # 3. the model folder served by `labelleak serve`, audited over HTTP
    port = _port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    server = subprocess.Popen(
        [sys.executable, "-m", "labelleak.cli", "serve", "--model", str(root / "model"), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/info", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and server.poll() is None, "labelleak serve did not start"
                time.sleep(0.2)
        http = runner.invoke(
            app,
            [
                "audit",
                "--target",
                f"http://127.0.0.1:{port}",
                *_files(root),
                *COMMON,
                "--cache-dir",
                cache,
                "--out",
                str(tmp_path / "http"),
            ],
        )
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert http.exit_code == 0, http.output
    scores = {k: (tmp_path / k / "scores.csv").read_text().splitlines() for k in ("torch", "onnx", "http")}
    assert len(scores["torch"]) == 1 + 2 * 80
    assert scores["torch"] == scores["http"]
    differ = [(a, b) for a, b in zip(scores["torch"], scores["onnx"]) if a != b]
    assert differ == [], f"{len(differ)} rows differ between TorchOracle and ONNX, e.g. {differ[:2]}"
