"""Throughput of the label oracle over HTTP (labelleak serve on loopback) against the in-process oracle, and the
wall time of a remote audit at several concurrencies against a server with injected latency.

    .venv/bin/python bench/bench_http.py --samples 200000 --batch 4096
    .venv/bin/python bench/bench_http.py --audit --latency 0.02 --batch 256 --concurrency 1,4,16

Serves the default audit's digits target (trained or loaded from the cache) on a free loopback port: with
``--server process`` (the default) as ``labelleak serve`` in a process of its own, as a real service runs, so the
server does not share the client's interpreter; with ``--server thread`` in a background thread of this process.
The first form reports samples per second for both oracles on the same
inputs, plus the ratio. ``--audit`` instead serves the target with ``--latency`` seconds added to every
prediction (not blocking the server: it waits on the event loop) and ``--batch`` samples per request at most, runs
the same remote boundary-hsja audit at each concurrency, and reports its wall time, the speed-up over
concurrency 1 and the speed-up per request in flight (goal: at least 0.8 until the server saturates), for the whole
audit (setup, thresholds off, outputs) and for the attack alone; the scores must be identical at every
concurrency.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import uvicorn

from labelleak.oracle.http import HttpOracle
from labelleak.pipeline import make_config, run_audit
from labelleak.pipeline.setup import prepare
from labelleak.serve import FaultConfig, ServeLimits, create_app


def _serve(local, batch: int, latency: float = 0.0) -> tuple[uvicorn.Server, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(
        local.model,
        input_shape=local.input_shape,
        n_classes=local.n_classes,
        limits=ServeLimits(max_batch=batch),
        faults=FaultConfig(latency=latency) if latency > 0 else None,
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server, port


class _ServerProcess:
    """``labelleak serve`` on a free loopback port in its own process; ``should_exit = True`` stops it."""

    def __init__(self, model_dir: str, batch: int, latency: float) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        command = [sys.executable, "-m", "labelleak.cli", "serve", "--model", model_dir, "--port", str(self.port)]
        command += ["--max-batch", str(batch), "--latency", str(latency)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("labelleak serve did not start") from None
                time.sleep(0.1)

    @property
    def should_exit(self) -> bool:
        return self.process.poll() is not None

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        if value:
            self.process.terminate()
            self.process.wait(timeout=30)


def _start(args: argparse.Namespace, setup, latency: float = 0.0) -> tuple[object, int]:
    if args.server == "process":
        proc = _ServerProcess(str(setup.target["model_dir"]), args.batch, latency)
        return proc, proc.port
    return _serve(setup.oracle, args.batch, latency)


def bench_audit(args: argparse.Namespace) -> None:
    """Wall time of one remote audit per concurrency, against the served digits target with injected latency."""
    import tempfile
    from pathlib import Path

    setup = prepare(make_config(progress=False))
    server, port = _start(args, setup, args.latency)
    n = args.candidates
    rows, reference = [], None
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, part in (("members", slice(0, n)), ("nonmembers", slice(len(setup.x) - n, len(setup.x)))):
            files[name] = str(Path(tmp) / f"{name}.npz")
            np.savez(files[name], x=setup.x[part], y=setup.y[part])
        sd = setup.shadow_data
        files["shadow"] = str(Path(tmp) / "shadow.npz")
        np.savez(files["shadow"], x=np.concatenate([sd.x_train, sd.x_test]), y=np.concatenate([sd.y_train, sd.y_test]))
        for k in args.concurrency:
            cfg = make_config(
                target=f"http://127.0.0.1:{port}",
                **files,
                attacks=["boundary-hsja"],
                queries=args.queries,
                concurrency=k,
                thresholds=False,
                checkpoint=False,
                n_boot=10,
                progress=False,
                out=str(Path(tmp) / f"out-{k}"),
            )
            run_audit(cfg.replace(concurrency=1, queries=1, attacks=["gap"]))  # shadow model trained and cached
            start = time.perf_counter()
            results = run_audit(cfg)
            seconds = time.perf_counter() - start
            scores = np.load(Path(cfg.out) / "arrays.npz")["boundary-hsja/scores"]
            reference = scores if reference is None else reference
            rows.append(
                {
                    "concurrency": k,
                    "seconds": round(seconds, 2),
                    "attack_seconds": round(results["attacks"]["boundary-hsja"]["seconds"], 2),
                    "requests": results["remote"]["requests"],
                    "queries": results["remote"]["queries_sent"],
                    "same_scores": bool(np.array_equal(scores, reference)),
                }
            )
    server.should_exit = True
    base = rows[0]["seconds"] * rows[0]["concurrency"]
    base_attack = rows[0]["attack_seconds"] * rows[0]["concurrency"]
    for r in rows:
        r["speedup"] = round(base / r["seconds"], 2)
        r["speedup_per_k"] = round(r["speedup"] / r["concurrency"], 2)
        r["attack_speedup"] = round(base_attack / r["attack_seconds"], 2)
    summary = {"server": args.server, "latency_s": args.latency, "batch": args.batch, "candidates": 2 * n}
    print(json.dumps({**summary, "runs": rows}, indent=2))
    print("| concurrency | audit s | attack s | requests | speed-up | per K | attack speed-up | same scores |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['concurrency']} | {r['seconds']} | {r['attack_seconds']} | {r['requests']} | {r['speedup']} "
            f"| {r['speedup_per_k']} | {r['attack_speedup']} | {r['same_scores']} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--audit", action="store_true", help="time remote audits at several concurrencies instead")
    ap.add_argument("--latency", type=float, default=0.02, help="--audit: seconds added to every prediction")
    ap.add_argument("--concurrency", type=lambda s: [int(v) for v in s.split(",")], default=[1, 4, 16])
    ap.add_argument("--candidates", type=int, default=100, help="--audit: members and non-members each")
    ap.add_argument("--queries", type=int, default=500, help="--audit: per-candidate budget")
    ap.add_argument("--server", choices=("process", "thread"), default="process", help="where the server runs")
    args = ap.parse_args()
    if args.audit:
        bench_audit(args)
        return
    setup = prepare(make_config(progress=False))
    local = setup.oracle
    server, port = _start(args, setup)
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
