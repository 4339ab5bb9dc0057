"""Throughput of the label oracle over HTTP (labelleak serve on loopback) against the in-process oracle.

    .venv/bin/python bench/bench_http.py --samples 200000 --batch 4096

Starts the server in this process's background thread on a free loopback port, with the default audit's digits
target (trained or loaded from the cache), and reports samples per second for both oracles on the same inputs,
plus the ratio.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time

import numpy as np
import uvicorn

from labelleak.oracle.http import HttpOracle
from labelleak.pipeline import make_config
from labelleak.pipeline.setup import prepare
from labelleak.serve import ServeLimits, create_app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=4096)
    args = ap.parse_args()
    setup = prepare(make_config(progress=False))
    local = setup.oracle
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(
        local.model, input_shape=local.input_shape, n_classes=local.n_classes, limits=ServeLimits(max_batch=args.batch)
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    remote = HttpOracle(f"http://127.0.0.1:{port}", batch_size=args.batch)
    x = np.random.default_rng(0).uniform(0, 1, (args.samples, *local.input_shape)).astype(np.float32)
    rates = {}
    for name, oracle in (("in-process", local), ("http", remote)):
        oracle.predict_labels(x[: args.batch])  # warm up
        start = time.perf_counter()
        labels = oracle.predict_labels(x)
        rates[name] = args.samples / (time.perf_counter() - start)
        rates[f"{name}_labels_checksum"] = int(labels.sum())
    server.should_exit = True
    rates["http_over_in_process"] = rates["http"] / rates["in-process"]
    print(json.dumps(rates, indent=2))


if __name__ == "__main__":
    main()
