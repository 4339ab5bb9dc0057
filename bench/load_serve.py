"""A bounded load test of ``labelleak serve`` with locust: loopback only, headless, stops by itself.

    .venv/bin/python bench/load_serve.py --users 8 --seconds 10

Starts the server (a small seeded MLP on 1x8x8 inputs) in a child process on a free loopback port, runs locust
headless for ``--seconds`` against it, stops both, and prints one JSON line: requests, failures, requests per
second held, median and p99 latency (ms). Exit status 1 if any request failed.
"""

from __future__ import annotations

import argparse
import csv
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent


def serve(port: int, latency: float) -> None:
    """The child process: the label-only API around a small model."""
    import torch
    import uvicorn

    from labelleak.serve import FaultConfig, create_app

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    faults = FaultConfig(latency=latency) if latency > 0 else None
    app = create_app(model, input_shape=(1, 8, 8), n_classes=10, faults=faults)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(users: int, seconds: float, latency: float = 0.0) -> dict:
    """Serve, load for ``seconds`` with ``users`` locust users, stop; the summary of locust's statistics."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--latency", str(latency)])
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/info", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.2)
        with tempfile.TemporaryDirectory() as tmp:
            prefix = str(Path(tmp) / "load")
            cmd = [sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--headless", "--host", url]
            cmd += ["-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--csv", prefix, "--only-summary"]
            cmd += ["--stop-timeout", "5", "--loglevel", "WARNING"]
            subprocess.run(cmd, check=False, timeout=seconds + 120, capture_output=True)
            with open(f"{prefix}_stats.csv") as fh:
                total = next(r for r in csv.DictReader(fh) if r["Name"] == "Aggregated")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "users": users,
        "seconds": seconds,
        "latency_injected_s": latency,
        "requests": int(total["Request Count"]),
        "failures": int(total["Failure Count"]),
        "requests_per_s": round(float(total["Requests/s"]), 1),
        "median_ms": float(total["50%"]),
        "p99_ms": float(total["99%"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds the server adds to every prediction")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # internal: run the server on this port
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.latency)
        return
    summary = run(args.users, args.seconds, args.latency)
    print(json.dumps(summary))
    sys.exit(1 if summary["failures"] else 0)


if __name__ == "__main__":
    main()
