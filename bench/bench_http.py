"""Throughput of the label oracle over HTTP (labelleak serve on loopback) against the in-process oracle, and the
wall time of a remote audit at several concurrencies against a server with injected latency.

    .venv/bin/python bench/bench_http.py --samples 200000 --batch 4096
    .venv/bin/python bench/bench_http.py --audit --latency 0.02 --batch 256 --concurrency 1,4,16 --floor
    .venv/bin/python bench/bench_http.py --audit --server mlserver --latency 0.02 --concurrency 1,4,16 --floor

Serves the default audit's digits target (trained or loaded from the cache) on a free loopback port: with
``--server process`` (the default) as ``labelleak serve`` in a process of its own, as a real service runs, so the
server does not share the client's interpreter; with ``--server thread`` in a background thread of this process;
with ``--server mlserver`` as MLServer (``scripts/setup_mlserver.sh`` makes its environment) serving the same
network over the Open Inference Protocol (v2): its weights in a scikit-learn ``MLPClassifier`` under MLServer's
scikit-learn runtime, with the latency added on MLServer's event loop.
The first form reports samples per second for both oracles on the same
inputs, plus the ratio. ``--audit`` instead serves the target with ``--latency`` seconds added to every
prediction (not blocking the server: it waits on the event loop) and ``--batch`` samples per request at most, runs
the same remote boundary-hsja audit at each concurrency, and reports its wall time, the speed-up over
concurrency 1 and the speed-up per request in flight (goal: at least 0.8 until the server saturates), for the whole
audit (setup, thresholds off, outputs) and for the attack alone; the scores must be identical at every
concurrency. ``rounds`` counts the rounds of requests in flight that the audit's oracle calls take at that
concurrency (a call of m requests takes ceil(m / K), and the search's calls follow one another), so
``latency_bound``, concurrency 1's rounds over these, is the speed-up that a client and a server that took no time
of their own would reach against a fixed latency per request. ``--floor`` also runs the audit against a server
*without* latency, at the smallest and the largest concurrency, and keeps the faster: the time that is not waiting
for the target (the client's and the server's own work on these cores), which no concurrency removes, so
``ceiling`` (concurrency 1's time over that floor) is about the most any concurrency can give on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import uvicorn

from labelleak.oracle.http import HttpOracle
from labelleak.oracle.remote.transport import Transport
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


ROOT = Path(__file__).resolve().parents[1]
MLSERVER = ROOT / ".venv-mlserver" / "bin" / "mlserver"
MLSERVER_NAME = "digits-mlp"
# MLServer's scikit-learn runtime with a fixed latency waited on its event loop (as labelleak serve's --latency)
MLSERVER_RUNTIME = """import asyncio

from mlserver_sklearn import SKLearnModel


class DelayedSKLearn(SKLearnModel):
    async def predict(self, payload):
        await asyncio.sleep(float(getattr(self.settings.parameters, "latency", 0.0)))
        return await super().predict(payload)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_sklearn(model, x: np.ndarray):
    """The served MLP (Linear/ReLU layers) as a scikit-learn ``MLPClassifier`` with the same weights, checked to
    give the same labels on ``x``."""
    import warnings

    import torch
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    kinds = {type(m).__name__ for m in model.modules()} - {
        "Linear",
        "ReLU",
        "Flatten",
        "Sequential",
        type(model).__name__,
    }
    if kinds or len(layers) < 2:
        raise SystemExit(f"--server mlserver serves an MLP of Linear and ReLU layers, not {sorted(kinds) or 'this'}")
    n_classes = layers[-1].out_features
    clf = MLPClassifier(hidden_layer_sizes=tuple(m.out_features for m in layers[:-1]), max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # fitted only to set its shapes and classes
        clf.fit(np.zeros((n_classes, layers[0].in_features)), np.arange(n_classes))
    clf.coefs_ = [m.weight.detach().double().numpy().T.copy() for m in layers]
    clf.intercepts_ = [m.bias.detach().double().numpy().copy() for m in layers]
    flat = x.reshape(len(x), -1)
    with torch.no_grad():
        same = float(np.mean(clf.predict(flat) == model(torch.from_numpy(x)).argmax(1).numpy()))
    print(f"mlserver model: scikit-learn MLP with the target's weights, same labels on {same:.2%} of {len(x)} samples")
    return clf


class _MLServerProcess:
    """MLServer (``.venv-mlserver``) serving ``clf`` as ``MLSERVER_NAME`` over v2 with ``latency`` seconds added."""

    def __init__(self, clf, latency: float, folder: Path) -> None:
        import joblib

        if not MLSERVER.exists():
            raise SystemExit(f"{MLSERVER} missing: run scripts/setup_mlserver.sh")
        n_features = clf.coefs_[0].shape[0]
        joblib.dump(clf, folder / "model.joblib")
        (folder / "runtime.py").write_text(MLSERVER_RUNTIME)
        settings = {
            "name": MLSERVER_NAME,
            "implementation": "runtime.DelayedSKLearn",
            "parameters": {"uri": "./model.joblib", "version": "v1", "latency": latency},
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, n_features]}],
            "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1, 1]}],
        }
        (folder / "model-settings.json").write_text(json.dumps(settings))
        self.port = _free_port()
        server = {"host": "127.0.0.1", "http_port": self.port, "grpc_port": _free_port()}
        server |= {"metrics_port": _free_port(), "metrics_endpoint": None, "parallel_workers": 0}
        (folder / "settings.json").write_text(json.dumps(server))
        self.log = (folder / "mlserver.log").open("w")
        self.process = subprocess.Popen(
            [str(MLSERVER), "start", str(folder)],
            cwd=folder,
            env={**os.environ, "PATH": f"{MLSERVER.parent}:{os.environ['PATH']}"},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/v2/models/{MLSERVER_NAME}/ready", timeout=1).is_success:
                    break
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlserver did not start: {(folder / 'mlserver.log').read_text()[-2000:]}")
            time.sleep(0.5)

    @property
    def should_exit(self) -> bool:
        return self.process.poll() is not None

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        if value:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.log.close()


def _start(args: argparse.Namespace, setup, latency: float = 0.0, folder: Path | None = None) -> tuple[object, int]:
    if args.server == "process":
        proc = _ServerProcess(str(setup.target["model_dir"]), args.batch, latency)
        return proc, proc.port
    if args.server == "mlserver":
        assert folder is not None
        folder.mkdir(parents=True, exist_ok=True)
        ml = _MLServerProcess(_as_sklearn(setup.oracle.model, setup.x), latency, folder)
        return ml, ml.port
    return _serve(setup.oracle, args.batch, latency)


def _target_options(args: argparse.Namespace, port: int, setup) -> dict:
    """The audit settings that point it at the served target."""
    options: dict = {"target": f"http://127.0.0.1:{port}"}
    if args.server == "mlserver":  # v2 metadata names neither the value range nor (here) the classes
        options |= {"protocol": "v2", "model_name": MLSERVER_NAME, "bounds": list(setup.oracle.bounds)}
        options |= {"n_classes": setup.oracle.n_classes}
    return options


class _Calls:
    """The requests of each oracle call (each ``Transport.map``) while an audit runs: ``rounds(k)`` is how many
    rounds of at most ``k`` requests in flight they take, so how many latencies any client has to wait."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def __enter__(self) -> _Calls:
        original = self._original = Transport.map
        sizes = self.sizes

        def counted(transport, fn, items):
            sizes.append(len(items))
            return original(transport, fn, items)

        Transport.map = counted  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        Transport.map = self._original  # type: ignore[method-assign]

    def rounds(self, k: int) -> int:
        return sum(-(-n // k) for n in self.sizes)


def _audit_once(cfg) -> tuple[dict, float, np.ndarray, _Calls]:
    with _Calls() as calls:
        start = time.perf_counter()
        results = run_audit(cfg)
        seconds = time.perf_counter() - start
    return results, seconds, np.load(Path(cfg.out) / "arrays.npz")["boundary-hsja/scores"], calls


def bench_audit(args: argparse.Namespace) -> None:
    """Wall time of one remote audit per concurrency, against the served digits target with injected latency."""
    setup = prepare(make_config(progress=False))
    n = args.candidates
    rows, reference, floor = [], None, None
    with tempfile.TemporaryDirectory() as tmp:
        server, port = _start(args, setup, args.latency, Path(tmp) / "mlserver")
        flat = args.server == "mlserver"  # the v2 model takes flat rows of features
        files = {}
        for name, part in (("members", slice(0, n)), ("nonmembers", slice(len(setup.x) - n, len(setup.x)))):
            files[name] = str(Path(tmp) / f"{name}.npz")
            x = setup.x[part]
            np.savez(files[name], x=x.reshape(len(x), -1) if flat else x, y=setup.y[part])
        sd = setup.shadow_data
        files["shadow"] = str(Path(tmp) / "shadow.npz")
        x_shadow = np.concatenate([sd.x_train, sd.x_test])
        x_shadow = x_shadow.reshape(len(x_shadow), -1) if flat else x_shadow
        np.savez(files["shadow"], x=x_shadow, y=np.concatenate([sd.y_train, sd.y_test]))

        def config(k: int, port: int, out: str):
            return make_config(
                **_target_options(args, port, setup),
                **files,
                attacks=["boundary-hsja"],
                queries=args.queries,
                concurrency=k,
                thresholds=False,
                checkpoint=False,
                n_boot=10,
                progress=False,
                out=str(Path(tmp) / out),
            )

        for k in args.concurrency:
            cfg = config(k, port, f"out-{k}")
            run_audit(cfg.replace(concurrency=1, queries=1, attacks=["gap"]))  # shadow model trained and cached
            results, seconds, scores, calls = _audit_once(cfg)
            reference = scores if reference is None else reference
            rows.append(
                {
                    "concurrency": k,
                    "seconds": round(seconds, 2),
                    "attack_seconds": round(results["attacks"]["boundary-hsja"]["seconds"], 2),
                    "requests": results["remote"]["requests"],
                    "queries": results["remote"]["queries_sent"],
                    "oracle_calls": len(calls.sizes),
                    "rounds": calls.rounds(k),  # rounds of requests in flight: latencies waited one after another
                    "same_scores": bool(np.array_equal(scores, reference)),
                }
            )
        server.should_exit = True
        if args.floor:  # the work that is not waiting, alone at K = 1 and overlapped at the largest K
            server, port = _start(args, setup, 0.0, Path(tmp) / "mlserver-floor")
            same = True
            for k in sorted({min(args.concurrency), max(args.concurrency)}):
                results, seconds, scores, _ = _audit_once(config(k, port, f"out-floor-{k}"))
                attack = results["attacks"]["boundary-hsja"]["seconds"]
                if floor is None or seconds < floor["seconds"]:
                    floor = {"concurrency": k, "seconds": round(seconds, 2), "attack_seconds": round(attack, 2)}
                same = same and bool(np.array_equal(scores, reference))
            server.should_exit = True
            assert floor is not None
            floor["same_scores"] = same
    base = rows[0]["seconds"] * rows[0]["concurrency"]
    base_attack = rows[0]["attack_seconds"] * rows[0]["concurrency"]
    for r in rows:
        r["speedup"] = round(base / r["seconds"], 2)
        r["speedup_per_k"] = round(r["speedup"] / r["concurrency"], 2)
        r["attack_speedup"] = round(base_attack / r["attack_seconds"], 2)
        # where only the latency cost time (no CPU): concurrency 1's rounds over these
        r["latency_bound"] = round(rows[0]["rounds"] / r["rounds"], 2)
    summary = {"server": args.server, "latency_s": args.latency, "batch": args.batch, "candidates": 2 * n}
    if floor is not None:
        floor["ceiling"] = round(base / floor["seconds"], 2)
        floor["attack_ceiling"] = round(base_attack / floor["attack_seconds"], 2)
        summary["no_latency"] = floor
    print(json.dumps({**summary, "runs": rows}, indent=2))
    print(
        "| concurrency | audit s | attack s | requests | rounds | speed-up | per K | attack speed-up "
        "| latency-bound speed-up | same scores |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['concurrency']} | {r['seconds']} | {r['attack_seconds']} | {r['requests']} | {r['rounds']} "
            f"| {r['speedup']} | {r['speedup_per_k']} | {r['attack_speedup']} | {r['latency_bound']} "
            f"| {r['same_scores']} |"
        )
    if floor is not None:
        print(
            f"| {floor['concurrency']}, no latency | {floor['seconds']} | {floor['attack_seconds']} | | "
            f"| {floor['ceiling']} (ceiling) | | {floor['attack_ceiling']} (ceiling) | | {floor['same_scores']} |"
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
    ap.add_argument("--server", choices=("process", "thread", "mlserver"), default="process", help="which server")
    ap.add_argument("--floor", action="store_true", help="--audit: also time the audit with no latency")
    args = ap.parse_args()
    if args.server == "mlserver" and (not args.audit or args.batch != 256):
        ap.error("--server mlserver: only with --audit and --batch 256 (what the v2 client sends per request)")
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
