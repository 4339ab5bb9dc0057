"""Remote protocols (v2, REST spec), concurrency, retries, the spend cap and --estimate. In-process or loopback."""

from __future__ import annotations

import email.utils
import importlib
import json
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
import yaml
from conftest import LinearModel
from fastapi import FastAPI, Request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from labelleak.attacks import ShadowData, create_attack
from labelleak.cli import app as cli_app
from labelleak.errors import (
    BudgetExhaustedError,
    DataFileError,
    InvalidInputError,
    RemoteOracleError,
    RemoteOutageError,
)
from labelleak.oracle import CallableOracle
from labelleak.oracle.remote.rest import RestOracle, RestSpec, follow, parse_path
from labelleak.oracle.remote.transport import (
    RetryPolicy,
    Transport,
    retry_after_seconds,
)
from labelleak.oracle.remote.v2 import V2Oracle
from labelleak.pipeline import make_config, run_audit
from labelleak.pipeline.setup import AuditSetup

FEATURES, CLASSES = 6, 3
audit_module = importlib.import_module("labelleak.pipeline.audit")  # the package re-exports a function "audit"
NO_WAIT = RetryPolicy(backoff=0.0, max_wait=0.0, retries=30)


class V2App:
    """A tiny Open Inference Protocol server as an httpx handler: metadata, and scores or labels as outputs."""

    def __init__(self, model: LinearModel, *, scores: bool = True, jitter: float = 0.0, fault_rate: float = 0.0):
        self.model, self.scores, self.jitter, self.fault_rate = model, scores, jitter, fault_rate
        self.rng = np.random.default_rng(0)
        self.lock = threading.Lock()
        self.answered = 0  # samples answered with 200: what a paying client is billed for
        self.in_flight = self.peak = 0

    def metadata(self) -> dict:
        return {
            "name": "lin",
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, FEATURES]}],
            "outputs": [{"name": "probs", "datatype": "FP64", "shape": [-1, CLASSES]}],
        }

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path == "/v2/models/lin":
            return httpx.Response(200, json=self.metadata())
        if request.url.path != "/v2/models/lin/infer":
            return httpx.Response(404, json={"error": "no such model"})
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            delay, fault = self.rng.uniform(0, self.jitter), self.rng.random()
        try:
            time.sleep(delay)  # answers finish in random order when several are in flight
            if fault < self.fault_rate / 2:
                return httpx.Response(503, json={"error": "injected"})
            if fault < self.fault_rate:
                return httpx.Response(429, headers={"Retry-After": "0"}, json={"error": "slow down"})
            tensor = json.loads(request.content)["inputs"][0]
            x = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
            logits = self.model.logits(x)
            with self.lock:
                self.answered += len(x)
            if self.scores:
                p = np.exp(logits - logits.max(1, keepdims=True))
                out = {"name": "probs", "shape": list(p.shape), "datatype": "FP64", "data": p.ravel().tolist()}
            else:
                out = {"name": "label", "shape": [len(x), 1], "datatype": "INT64", "data": logits.argmax(1).tolist()}
            return httpx.Response(200, json={"model_name": "lin", "outputs": [out]})
        finally:
            with self.lock:
                self.in_flight -= 1


def v2_oracle(app: V2App, *, concurrency: int = 1, batch_size: int = 16, **kw) -> V2Oracle:
    transport = Transport("http://v2.test", policy=NO_WAIT, concurrency=concurrency, transport=httpx.MockTransport(app))
    return V2Oracle(transport, model_name="lin", bounds=(0.0, 1.0), batch_size=batch_size, **kw)


def _x(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, FEATURES)).astype(np.float32)


@pytest.mark.parametrize("scores", [True, False])
def test_v2_labels_match_the_model_from_scores_or_labels(linear_model, scores):
    app = V2App(linear_model, scores=scores)
    oracle = v2_oracle(app)
    assert oracle.input_shape == (FEATURES,) and oracle.n_classes == CLASSES
    x = _x(50)
    np.testing.assert_array_equal(oracle.predict_labels(x), linear_model(x))
    assert oracle.stats()["requests"] == 5 and oracle.queries == 50  # metadata, then 50 samples in chunks of 16


def test_v2_metadata_gaps_are_named_at_once(linear_model):
    app = V2App(linear_model)
    app.metadata = lambda: {"name": "lin", "inputs": [], "outputs": []}  # type: ignore[method-assign]
    transport = Transport("http://v2.test", policy=NO_WAIT, transport=httpx.MockTransport(app))
    with pytest.raises(InvalidInputError, match=r"input shape \(--input-shape.*--bounds.*--n-classes"):
        V2Oracle(transport, model_name="lin")
    with pytest.raises(InvalidInputError, match="does not match the served input shape"):
        v2_oracle(V2App(linear_model), input_shape=(2, 4))
    with pytest.raises(InvalidInputError, match="404 no such model"):
        V2Oracle(Transport("http://v2.test", transport=httpx.MockTransport(app)), model_name="other")


def test_concurrency_changes_no_answer_and_no_score(linear_model):
    x, y = _x(12, seed=3), linear_model(_x(12, seed=3))
    attack = create_attack("boundary-hsja", max_iter=4, max_eval=60, init_eval=10, seed=1)
    results, peaks = {}, {}
    for k in (1, 4):
        app = V2App(linear_model, jitter=0.003)
        oracle = v2_oracle(app, concurrency=k, batch_size=8)
        results[k] = attack(oracle, x, y, max_queries_per_sample=300)
        peaks[k] = app.peak
        oracle.close()
    assert peaks[1] == 1 and peaks[4] > 1  # requests really were in flight together
    np.testing.assert_array_equal(results[1].scores, results[4].scores)
    np.testing.assert_array_equal(results[1].queries, results[4].queries)


def test_retry_after_seconds_and_http_dates_with_a_ceiling():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    later = email.utils.format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds("2.5") == 2.5 and retry_after_seconds(later, now=now) == 30.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    in_an_hour = email.utils.format_datetime(datetime.now(timezone.utc) + timedelta(hours=1), usegmt=True)
    answers = iter(
        [httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(503, headers={"Retry-After": in_an_hour})]
    )
    waits: list[float] = []
    transport = Transport(
        "http://x.test",
        policy=RetryPolicy(retries=3, max_wait=5.0),
        transport=httpx.MockTransport(lambda r: next(answers, httpx.Response(200, json={}))),
        sleep=waits.append,
    )
    transport.request("GET", "/")
    assert waits == [5.0, 5.0]  # 7 s and an hour asked, both held to the 5 s ceiling
    assert transport.stats.to_dict() == {"requests": 1, "retries": 2, "retry_wait_seconds": 10.0}


def test_jittered_backoff_stays_under_its_exponential_ceiling():
    waits: list[float] = []
    transport = Transport(
        "http://x.test",
        policy=RetryPolicy(retries=6, backoff=0.1, max_wait=1.0),
        transport=httpx.MockTransport(lambda r: httpx.Response(502)),
        sleep=waits.append,
        seed=0,
    )
    with pytest.raises(RemoteOutageError, match="gave up after 7 attempts and [0-9.]+ s of waiting \\(HTTP 502\\)"):
        transport.request("GET", "/")
    ceilings = [min(0.1 * 2**k, 1.0) for k in range(6)]
    assert all(0 <= w <= c for w, c in zip(waits, ceilings)) and len(set(waits)) == 6


def test_bad_transport_options_are_reported_together():
    with pytest.raises(InvalidInputError, match="timeout: .*retries: .*concurrency: "):
        Transport("http://x.test", policy=RetryPolicy(timeout=0, retries=-1), concurrency=0)


def test_hard_cap_refuses_before_sending(linear_model):
    app = V2App(linear_model)
    oracle = v2_oracle(app, max_queries=30)
    oracle.predict_labels(_x(25))
    with pytest.raises(BudgetExhaustedError, match="would exceed max_queries=30"):
        oracle.predict_labels(_x(6))
    assert app.answered == 25


# ---- REST specs ---------------------------------------------------------------------------------------------

SPEC = {
    "url": "http://rest.test/v1/predict",
    "headers": {"Authorization": "Bearer ${LABELLEAK_TEST_TOKEN}"},
    "body": {"model": "lin", "instances": "$inputs"},
    "labels": "predictions[*].label",
    "batch_size": 10,
    "input_shape": [FEATURES],
    "bounds": [0, 1],
    "n_classes": CLASSES,
}


def rest_handler(model: LinearModel, token: str | None):
    def handle(request: httpx.Request) -> httpx.Response:
        if token is not None and request.headers.get("authorization") != f"Bearer {token}":
            return httpx.Response(401, json={"error": "bad token"})
        x = np.asarray(json.loads(request.content)["instances"], dtype=np.float64)
        return httpx.Response(200, json={"predictions": [{"label": int(c)} for c in model(x)]})

    return handle


def test_labels_paths():
    answer = {"a": {"b": [{"c": 1}, {"c": 2}]}, "rows": [[0.1, 0.9], [0.8, 0.2]]}
    assert follow(answer, parse_path("a.b[*].c")) == [1, 2]
    assert follow(answer, parse_path("a.b[-1].c")) == 2
    assert follow(answer, parse_path("rows")) == [[0.1, 0.9], [0.8, 0.2]]
    for bad in ("", ".a", "a[x]", "a..b"):
        with pytest.raises(ValueError):
            parse_path(bad)
    with pytest.raises(TypeError, match="expects a list"):
        follow(answer, parse_path("a[0]"))


def test_rest_spec_problems_are_all_reported():
    bad = {"url": "ftp://x", "method": "DELETE", "body": {"a": 1}, "labels": "a[", "batch_size": 0, "extra": 1}
    with pytest.raises(InvalidInputError) as err:
        RestSpec.from_mapping(bad, source="spec.yaml")
    message = str(err.value)
    assert "\n" not in message
    for part in (
        "unknown key(s) ['extra']",
        "url:",
        "method:",
        'holding the string "$inputs"',
        "labels:",
        "batch_size:",
        "input_shape:",
        "bounds:",
        "n_classes:",
    ):
        assert part in message


def test_rest_oracle_reads_secrets_from_the_environment_only(linear_model, monkeypatch):
    spec = RestSpec.from_mapping(SPEC, source="spec")
    monkeypatch.delenv("LABELLEAK_TEST_TOKEN", raising=False)
    with pytest.raises(InvalidInputError, match="LABELLEAK_TEST_TOKEN not set"):
        RestOracle.from_spec(spec)
    monkeypatch.setenv("LABELLEAK_TEST_TOKEN", "t0ps3cret")
    oracle = RestOracle.from_spec(spec, transport=httpx.MockTransport(rest_handler(linear_model, "t0ps3cret")))
    x = _x(25)
    np.testing.assert_array_equal(oracle.predict_labels(x), linear_model(x))
    assert "t0ps3cret" not in repr(spec) and oracle.stats()["requests"] == 3
    monkeypatch.setenv("LABELLEAK_TEST_TOKEN", "wrong")
    with pytest.raises(InvalidInputError, match="401 bad token") as err:
        RestOracle.from_spec(
            spec, transport=httpx.MockTransport(rest_handler(linear_model, "t0ps3cret"))
        ).predict_labels(x)
    assert "wrong" not in str(err.value)


def test_rest_labels_missing_from_the_answer(linear_model):
    spec = RestSpec.from_mapping({**SPEC, "headers": {}, "labels": "results"}, source="spec")
    oracle = RestOracle.from_spec(spec, transport=httpx.MockTransport(rest_handler(linear_model, None)))
    with pytest.raises(RemoteOracleError, match="labels not found at 'results'"):
        oracle.predict_labels(_x(3))


def test_rest_spec_files(tmp_path):
    with pytest.raises(DataFileError, match="REST spec not found"):
        RestSpec.load(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("url: [")
    with pytest.raises(DataFileError, match="not valid YAML"):
        RestSpec.load(tmp_path / "bad.yaml")
    example = Path(__file__).parents[2] / "examples" / "rest-spec.yaml"
    assert RestSpec.load(example).n_classes == 10


# ---- the audit-wide spend cap ----------------------------------------------------------------------------------


def _setup(model: LinearModel, oracle, n: int = 8) -> AuditSetup:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (2 * n, FEATURES)).astype(np.float32)
    xs = rng.uniform(0, 1, (4 * n, FEATURES)).astype(np.float32)
    shadow = CallableOracle(LinearModel(seed=1), input_shape=(FEATURES,), n_classes=CLASSES, bounds=(0.0, 1.0))
    ys = shadow.predict_labels(xs)
    return AuditSetup(
        dataset={"name": "remote", "source": "mock", "n_pool": 6 * n, "n_classes": CLASSES, "input_shape": [FEATURES]},
        split={"members": n, "nonmembers": n},
        target={"url": "mock"},
        shadow={},
        arch="mlp",
        oracle=oracle,
        shadow_oracle=shadow,
        sample_index=np.arange(2 * n),
        x=x,
        y=model(x),
        is_member=np.r_[np.ones(n, bool), np.zeros(n, bool)],
        shadow_data=ShadowData(xs[: 2 * n], ys[: 2 * n], xs[2 * n :], ys[2 * n :]),
        closers=[oracle.close],
        remote=oracle,
    )


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    attacks=st.lists(
        st.sampled_from(["gap", "transfer", "boundary-hsja", "boundary-hsja-linf"]), min_size=1, max_size=3, unique=True
    ),
    queries=st.integers(1, 80),
    cap=st.integers(1, 900),
    fault_rate=st.sampled_from([0.0, 0.2, 0.4]),
    concurrency=st.sampled_from([1, 3]),
)
def test_total_spend_never_passes_the_cap(
    tmp_path_factory, monkeypatch, attacks, queries, cap, fault_rate, concurrency
):
    model = LinearModel(n_features=FEATURES, n_classes=CLASSES)
    app = V2App(model, fault_rate=fault_rate)
    oracle = v2_oracle(app, concurrency=concurrency, batch_size=16)
    monkeypatch.setattr(audit_module, "prepare", lambda cfg, datasets=None: _setup(model, oracle))
    # files and plots are not the point
    monkeypatch.setattr(audit_module, "write_audit_outputs", lambda *args, **kwargs: None)
    tmp = tmp_path_factory.mktemp("cap")
    cfg = make_config(
        target="http://v2.test",
        protocol="v2",
        model_name="lin",
        attacks=attacks,
        queries=queries,
        max_total_queries=cap,
        max_iter=3,
        max_eval=30,
        init_eval=5,
        init_size=5,
        noise_samples=4,
        epochs=1,
        out=str(tmp / "out"),
        cache_dir=str(tmp / "cache"),
        progress=False,
        n_boot=5,
    )
    try:
        results = run_audit(cfg)
    except BudgetExhaustedError as exc:
        assert "no attack could run" in str(exc)
    else:
        # an attack the cap stopped part-way (retries are charged too) was billed for what it got, not reported
        remote = results["remote"]
        assert remote["queries_sent"] <= app.answered <= remote["samples_sent"] <= cap
    assert app.answered <= cap


def test_cap_skips_what_it_cannot_afford_and_records_remote_stats(tmp_path, monkeypatch):
    model = LinearModel(n_features=FEATURES, n_classes=CLASSES)
    app = V2App(model, fault_rate=0.3)
    oracle = v2_oracle(app, concurrency=2)
    monkeypatch.setattr(audit_module, "prepare", lambda cfg, datasets=None: _setup(model, oracle))
    cfg = make_config(
        target="http://v2.test",
        protocol="v2",
        model_name="lin",
        attacks=["gap", "boundary-hsja", "transfer"],
        queries=40,
        max_total_queries=200,
        max_iter=3,
        max_eval=30,
        init_eval=5,
        init_size=5,
        noise_samples=4,
        epochs=1,
        out=str(tmp_path / "out"),
        cache_dir=str(tmp_path / "cache"),
        progress=False,
        n_boot=5,
    )
    results = run_audit(cfg)
    remote = results["remote"]
    # retries are charged too: at 30% faults they may stop boundary-hsja short of what the attacks' ledger planned
    assert "gap" in results["attacks"] and "transfer" in results["skipped_attacks"]
    assert set(results["attacks"]) | set(results["skipped_attacks"]) == {"gap", "boundary-hsja", "transfer"}
    assert results["attacks"]["gap"]["target_queries"] == 16
    assert remote["queries_sent"] <= app.answered <= remote["samples_sent"] <= 200 and remote["retries"] > 0
    assert remote["journal_hits"] > 0  # boundary-hsja asks for the candidates' labels again: answered from disk
    assert remote["protocol"] == "v2" and remote["retry_wait_seconds"] == 0.0


# ---- the command line: --estimate, exit code 3 ------------------------------------------------------------------


def _labelleak(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labelleak.cli", *args], capture_output=True, text=True, **kw)


def _files(tmp_path: Path, n: int = 10) -> list[str]:
    rng = np.random.default_rng(0)
    for name, rows in (("members", n), ("nonmembers", n), ("shadow", 4 * n)):
        np.savez(
            tmp_path / f"{name}.npz", x=rng.uniform(0, 1, (rows, FEATURES)).astype(np.float32), y=np.zeros(rows, int)
        )
    return [f"--{k}={tmp_path / k}.npz" for k in ("members", "nonmembers", "shadow")]


def test_estimate_prints_bounds_and_sends_nothing(tmp_path):
    dead = "http://127.0.0.1:9"  # discard port: nothing listens, and nothing may be sent
    proc = _labelleak(
        "audit",
        "--target",
        dead,
        *_files(tmp_path),
        "--attacks",
        "gap,transfer,boundary-hsja",
        "--queries",
        "100",
        "--noise-samples",
        "5",
        "--max-total-queries",
        "1000",
        "--estimate",
    )
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line.split() for line in proc.stdout.splitlines() if line.strip()}
    assert lines["gap"][1:] == ["20", "1", "20", "0", "0", "20"]
    assert lines["transfer"][-1] == "40"  # 20 candidates + 20 shadow-train samples relabelled
    # the cap leaves 940: 47 for each candidate (as the audit shares it), none for the data-free threshold
    assert lines["boundary-hsja"][2] == "<=47" and lines["boundary-hsja"][-1] == "940"
    assert "1,000" in proc.stdout and "cuts short boundary-hsja" in proc.stdout


def test_outage_exits_3_with_the_resume_command(tmp_path):
    dead = "http://127.0.0.1:9"
    proc = _labelleak(
        "audit",
        "--target",
        dead,
        *_files(tmp_path),
        "--retries",
        "1",
        "--max-retry-wait",
        "0.01",
        "--out",
        str(tmp_path / "out"),
        "--fresh",
        "--quiet",
    )
    assert proc.returncode == 3, proc.stderr
    assert "remote target unavailable" in proc.stderr and "gave up after 2 attempts" in proc.stderr
    command = proc.stderr.splitlines()[-1]  # continues the run: --fresh again would delete what it journaled
    assert "--resume" in command and "--fresh" not in command and f"--out {tmp_path / 'out'}" in proc.stderr


def test_remote_options_are_validated_together():
    proc = _labelleak("audit", "--protocol", "v3", "--concurrency", "0", "--timeout", "-1", "--bounds", "1,0")
    assert proc.returncode == 2
    for part in ("protocol: expected one of labelleak, v2, rest", "concurrency:", "timeout:", "bounds:"):
        assert part in proc.stderr
    proc = _labelleak("audit", "--protocol", "v2", "--input-shape", "a,b")
    assert proc.returncode == 2 and "input_shape: expected positive integers such as 3,32,32, got 'a,b'" in proc.stderr


# ---- a REST-spec audit end to end, against a FastAPI app on loopback ----------------------------------------------


def test_rest_spec_audit_over_loopback(tmp_path, monkeypatch):
    model = LinearModel(n_features=FEATURES, n_classes=CLASSES)
    api = FastAPI()

    @api.post("/v1/predict")
    async def predict(request: Request) -> dict:
        if request.headers.get("authorization") != "Bearer hunter2":
            return {"error": "unauthorized"}
        x = np.asarray((await request.json())["instances"], dtype=np.float64)
        return {"predictions": [{"label": int(c)} for c in model(x)]}

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        spec = {**SPEC, "url": f"http://127.0.0.1:{port}/v1/predict"}
        (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
        monkeypatch.setenv("LABELLEAK_TEST_TOKEN", "hunter2")
        out = tmp_path / "out"
        proc = CliRunner().invoke(
            cli_app,
            [
                "audit",
                "--protocol",
                "rest",
                "--rest-spec",
                str(tmp_path / "spec.yaml"),
                *_files(tmp_path),
                "--attacks",
                "gap,boundary-hsja",
                "--queries",
                "30",
                "--max-iter",
                "3",
                "--noise-samples",
                "3",
                "--epochs",
                "1",
                "--concurrency",
                "2",
                "--out",
                str(out),
                "--cache-dir",
                str(tmp_path / "c"),
                "--quiet",
            ],
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert proc.exit_code == 0, proc.output
    results = json.loads((out / "results.json").read_text())
    assert results["target"]["protocol"] == "rest" and results["remote"]["concurrency"] == 2
    assert 0 < results["remote"]["queries_sent"] <= results["queries_asked"]
    for f in out.rglob("*"):
        assert not f.is_file() or b"hunter2" not in f.read_bytes()
    assert "hunter2" not in proc.output
