"""The label-only HTTP API, the HTTP oracle, faults, the query journal, and kill-and-resume. Loopback only."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import schemathesis
import torch
from _loopback import Server, free_port
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig

from labelleak.attacks import create_attack
from labelleak.errors import InvalidInputError
from labelleak.oracle import TorchOracle
from labelleak.oracle.cache import CachedOracle, row_digests
from labelleak.oracle.http import HttpOracle, RemoteOracleError, encode_npy
from labelleak.serve import FaultConfig, ServeLimits, create_app

SHAPE = (1, 8, 8)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)
    ).eval()


class FlakyTransport(httpx.BaseTransport):
    """A test double that drops a fraction of connections before the request reaches the server."""

    def __init__(self, rate: float, seed: int = 0) -> None:
        self.inner = httpx.HTTPTransport()
        self.rng = np.random.default_rng(seed)
        self.rate, self.dropped = rate, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.rng.random() < self.rate:
            self.dropped += 1
            raise httpx.ConnectError("injected connection drop", request=request)
        return self.inner.handle_request(request)


@pytest.fixture(scope="module")
def model():
    return _model()


@pytest.fixture(scope="module")
def server(model):
    with Server(create_app(model, input_shape=SHAPE, n_classes=4)) as s:
        yield s


def _x(n, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, *SHAPE)).astype(np.float32)


def test_http_oracle_matches_in_process_and_counts_samples(server, model):
    oracle = HttpOracle(server.url, batch_size=64)
    assert oracle.input_shape == SHAPE and oracle.n_classes == 4 and oracle.bounds == (0.0, 1.0)
    x = _x(150)
    local = TorchOracle(model, input_shape=SHAPE, n_classes=4).predict_labels(x)
    np.testing.assert_array_equal(oracle.predict_labels(x), local)
    assert oracle.queries == 150
    with pytest.raises(InvalidInputError, match="values must lie in"):
        oracle.predict_labels(x + 2)  # refused on the client, never sent


def test_api_key_rate_limit_and_stats(model):
    app = create_app(model, input_shape=SHAPE, n_classes=4, api_key="s3cret", limits=ServeLimits(rate_limit=5.0))
    with Server(app) as s:
        with pytest.raises(InvalidInputError, match="401 missing or wrong API key"):
            HttpOracle(s.url, api_key="wrong").predict_labels(_x(1))
        oracle = HttpOracle(s.url, api_key="s3cret", batch_size=1)
        labels = oracle.predict_labels(_x(12))  # 12 requests at 5/s: some get 429 and are retried
        assert len(labels) == 12 and oracle.retried > 0
        stats = httpx.get(f"{s.url}/stats", headers={"X-API-Key": "s3cret"})
        assert stats.json()["samples_served"] == {"api-key": 12} and "s3cret" not in stats.text


def test_faults_do_not_change_scores(model):
    x = _x(20, seed=1)
    local = TorchOracle(model, input_shape=SHAPE, n_classes=4)
    y = local.predict_labels(x)
    attack = create_attack("boundary-hsja", max_iter=5, max_eval=200, init_eval=20, seed=2)
    clean = attack(local, x, y)
    app = create_app(model, input_shape=SHAPE, n_classes=4, faults=FaultConfig(rate=0.2, delay=0.01, seed=3))
    with Server(app) as s:
        flaky = FlakyTransport(rate=0.2, seed=4)
        remote = HttpOracle(s.url, transport=flaky, backoff=0.001, retries=30)
        faulty = attack(remote, x, y)
    assert flaky.dropped > 0 and remote.retried > flaky.dropped  # server faults were retried too
    np.testing.assert_array_equal(faulty.scores, clean.scores)
    np.testing.assert_array_equal(faulty.queries, clean.queries)


def test_gives_up_cleanly_when_the_server_is_gone():
    with pytest.raises(RemoteOracleError, match="gave up after 3 attempts"):
        HttpOracle(f"http://127.0.0.1:{free_port()}", retries=2, backoff=0.001)


def test_cached_oracle_answers_repeats_from_disk(tmp_path, model):
    inner = TorchOracle(model, input_shape=SHAPE, n_classes=4)
    cached = CachedOracle(inner, tmp_path / "j.bin")
    x = _x(50)
    first = cached.predict_labels(x)
    again = cached.predict_labels(np.concatenate([x[::-1], _x(5, seed=9)]))
    assert inner.queries == 55 and cached.queries == 105 and cached.hits == 50
    np.testing.assert_array_equal(again[:50], first[::-1])
    cached.close()
    reopened = CachedOracle(TorchOracle(model, input_shape=SHAPE, n_classes=4), tmp_path / "j.bin")
    assert len(reopened) == 55
    np.testing.assert_array_equal(reopened.predict_labels(x), first)
    assert reopened.inner.queries == 0
    assert len(set(row_digests(torch.from_numpy(_x(2000))).tolist())) == 2000


# ---- fuzzing the server: every bad request gets a 4xx with a message, and no scores ever leave -------------


@pytest.fixture(scope="module")
def client(model):
    app = create_app(model, input_shape=SHAPE, n_classes=4, limits=ServeLimits(max_batch=64, max_body_bytes=1 << 16))
    return TestClient(app)


FUZZ_COUNTER = {"requests": 0, "4xx": 0, "200": 0}
json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=20,
)


def _check_answer(response) -> None:
    FUZZ_COUNTER["requests"] += 1
    body = response.json()
    assert response.status_code < 500, body
    if response.status_code == 200:
        FUZZ_COUNTER["200"] += 1
        assert set(body) == {"labels"} and all(isinstance(v, int) for v in body["labels"])
    else:
        FUZZ_COUNTER["4xx"] += 1
        assert set(body) == {"detail"} and isinstance(body["detail"], str) and body["detail"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=json_values)
def test_fuzz_json_bodies(client, payload):
    for body in ({"inputs": payload}, payload):  # NaN and Infinity are sent as JavaScript literals
        _check_answer(client.post("/predict", content=json.dumps(body), headers={"Content-Type": "application/json"}))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw=st.binary(max_size=300),
    kind=st.sampled_from(["application/x-npy", "application/json", "text/plain", "application/octet-stream"]),
)
def test_fuzz_raw_bodies(client, raw, kind):
    _check_answer(client.post("/predict", content=raw, headers={"Content-Type": kind}))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    # at most 20,000 elements (160 kB as float64, past the 64 KiB body limit): 5 free dimensions up to 70 once
    # asked numpy for 70**5 elements, 13 GB per array, and took the suite to 17.7 GB of resident memory
    shape=st.lists(st.integers(0, 70), min_size=1, max_size=5).map(
        lambda dims: dims if math.prod(dims) <= 20_000 else [min(d, 6) for d in dims]
    ),
    fill=st.sampled_from([0.5, np.nan, np.inf, -1.0, 3.0]),
    dtype=st.sampled_from(["float32", "float64", "int64", "bool", "complex64", "U2"]),
)
def test_fuzz_npy_arrays(client, shape, fill, dtype):
    try:
        arr = np.full(shape, fill).astype(dtype)
    except (ValueError, OverflowError):
        arr = np.zeros(shape, dtype=dtype)
    buf = __import__("io").BytesIO()
    np.save(buf, arr, allow_pickle=False)
    _check_answer(client.post("/predict", content=buf.getvalue(), headers={"Content-Type": "application/x-npy"}))


def test_fuzz_summary_and_server_still_serves(client):
    huge = client.post("/predict", content=encode_npy(_x(65)), headers={"Content-Type": "application/x-npy"})
    assert huge.status_code == 413
    big = client.post("/predict", content=b"0" * (1 << 17), headers={"Content-Type": "application/x-npy"})
    assert big.status_code == 413
    ok = client.post("/predict", content=encode_npy(_x(3)), headers={"Content-Type": "application/x-npy"})
    assert ok.status_code == 200 and len(ok.json()["labels"]) == 3
    assert FUZZ_COUNTER["requests"] >= 200 and FUZZ_COUNTER["4xx"] > 0
    print(f"fuzzed requests: {FUZZ_COUNTER}")


# ---- audits over HTTP, and kill-and-resume ----------------------------------------------------------------


def _labelleak(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labelleak.cli", *args], capture_output=True, text=True, **kw)


def test_remote_audit_from_files(tmp_path, server, model):
    rng = np.random.default_rng(0)
    for name, n in (("members", 30), ("nonmembers", 30), ("shadow", 80)):
        x = rng.uniform(0, 1, (n, *SHAPE)).astype(np.float32)
        y = TorchOracle(model, input_shape=SHAPE, n_classes=4).predict_labels(x)
        np.savez(tmp_path / f"{name}.npz", x=x, y=y)
    args = [
        "audit",
        "--target",
        server.url,
        "--members",
        str(tmp_path / "members.npz"),
        "--nonmembers",
        str(tmp_path / "nonmembers.npz"),
        "--shadow",
        str(tmp_path / "shadow.npz"),
        "--attacks",
        "gap,transfer,boundary-hsja",
        "--epochs",
        "3",
        "--queries",
        "200",
        "--noise-samples",
        "10",
        "--out",
        str(tmp_path / "out"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--quiet",
    ]
    proc = _labelleak(*args)
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["target"]["url"] == server.url and res["attacks"]["gap"]["n_members"] == 30
    assert res["attacks"]["boundary-hsja"]["max_queries_per_sample"] <= 200
    bad = _labelleak(*args[:-5], "--attacks", "score-loss", "--out", str(tmp_path / "o2"), "--quiet")
    assert bad.returncode == 2
    assert "needs the target's class scores, which a remote label-only target does not give" in bad.stderr


RESUMABLE = [
    "audit",
    "--train-size",
    "120",
    "--epochs",
    "5",
    "--attacks",
    "gap,boundary-hsja",
    "--queries",
    "4000",
    "--noise-samples",
    "20",
    "--quiet",
]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The RESUMABLE audit run once without interruption (its model cache beside it), shared by both signals."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    reference = _labelleak(*RESUMABLE, "--cache-dir", str(folder / "cache"), "--out", str(folder / "ref"))
    assert reference.returncode == 0, reference.stderr
    return folder


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_audit_resumes_to_identical_scores(tmp_path, sig, uninterrupted):
    cache = ["--cache-dir", str(uninterrupted / "cache")]  # the target is loaded, not trained again
    out = tmp_path / "run"
    # a shell that starts jobs in the background sets SIGINT to "ignore", which the child would inherit
    restore = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    proc = subprocess.Popen(
        [sys.executable, "-m", "labelleak.cli", *RESUMABLE, *cache, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=restore,
    )
    _wait_for(out / "checkpoint" / "done" / "gap.json", proc)  # the boundary attack is now under way
    time.sleep(0.4)  # into the attack, which takes about 1 s on 2 cores here (a fixed 1.5 s missed it once it sped up)
    assert not (out / "checkpoint" / "done" / "boundary-hsja.json").exists(), "the attack ended before the signal"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "--resume" in err
    assert not (out / "scores.csv").exists()
    resumed = _labelleak(*RESUMABLE, *cache, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "scores.csv").read_bytes() == (uninterrupted / "ref" / "scores.csv").read_bytes()
    ref = json.loads((uninterrupted / "ref" / "results.json").read_text())["attacks"]["boundary-hsja"]
    got = json.loads((out / "results.json").read_text())["attacks"]["boundary-hsja"]
    assert got["queries_per_sample"] == ref["queries_per_sample"] and got["auc"] == ref["auc"]


def test_resume_with_different_options_is_refused(tmp_path):
    first = _labelleak(
        "audit",
        "--train-size",
        "40",
        "--epochs",
        "2",
        "--attacks",
        "gap",
        "--quiet",
        "--cache-dir",
        str(tmp_path / "c"),
        "--out",
        str(tmp_path / "o"),
    )
    assert first.returncode == 0
    again = _labelleak(
        "audit",
        "--train-size",
        "40",
        "--epochs",
        "3",
        "--attacks",
        "gap",
        "--quiet",
        "--resume",
        "--cache-dir",
        str(tmp_path / "c"),
        "--out",
        str(tmp_path / "o"),
    )
    assert again.returncode == 2 and "options differ" in again.stderr


# ---- the hardened server: streamed bodies, off-loop model, schema-driven fuzzing ---------------------------------


def test_chunked_body_without_length_is_cut_at_the_limit(client):
    sent = {"bytes": 0}

    def chunks():
        for _ in range(64):
            sent["bytes"] += 1 << 12
            yield b"\x93NUMPY" + b"0" * ((1 << 12) - 6)

    response = client.post("/predict", content=chunks(), headers={"Content-Type": "application/x-npy"})
    assert response.status_code == 413 and "more than 65536 bytes" in response.json()["detail"]


def test_npy_header_declaring_more_than_the_body_is_refused_before_allocating(client):
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 1, 8, 8)})
    response = client.post(
        "/predict", content=buf.getvalue() + b"\0" * 256, headers={"Content-Type": "application/x-npy"}
    )
    assert response.status_code == 400 and "header declares 256000000000 bytes" in response.json()["detail"]


@pytest.mark.parametrize("body", ["[" * 5000 + "]" * 5000, '{"inputs": ' + "[" * 5000 + "]" * 5000 + "}"])
def test_deeply_nested_json_is_a_400_not_a_500(client, body):
    response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "nested deeper than" in response.json()["detail"]


class SlowModel(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(1.5)  # a heavy forward pass
        return torch.zeros(len(x), 4)


def test_a_slow_forward_pass_does_not_block_other_requests():
    with Server(create_app(SlowModel(), input_shape=SHAPE, n_classes=4)) as s:
        slow = threading.Thread(
            target=httpx.post,
            args=(f"{s.url}/predict",),
            kwargs={"content": encode_npy(_x(2)), "headers": {"Content-Type": "application/x-npy"}, "timeout": 30},
        )
        slow.start()
        time.sleep(0.3)  # the forward pass is under way
        start = time.monotonic()
        assert httpx.get(f"{s.url}/info", timeout=30).status_code == 200
        waited = time.monotonic() - start
        slow.join()
    assert waited < 1.0  # with the model on the event loop, /info waited for the whole 1.5 s pass


def _schema_app():
    app = create_app(_model(), input_shape=SHAPE, n_classes=4, limits=ServeLimits(max_batch=64, max_body_bytes=1 << 16))
    return app


# positive and negative bodies from the schema; the coverage phase is off (it enumerates every combination of the
# nested 8x8 arrays' bounds, which never ends), the fuzzing phase is bounded by max_examples below
SCHEMA = schemathesis.openapi.from_asgi(
    "/openapi.json",
    _schema_app(),
    config=SchemathesisConfig.from_dict(
        {"phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}}, "generation": {"mode": "all"}}
    ),
)
SCHEMA_COUNTS: dict[str, int] = {}


def test_openapi_schema_describes_the_predict_body():
    spec = _schema_app().openapi()["paths"]["/predict"]["post"]
    body = spec["requestBody"]["content"]
    assert set(body) == {"application/json", "application/x-npy"}
    sample = body["application/json"]["schema"]["properties"]["inputs"]["items"]
    assert [sample["maxItems"], sample["items"]["maxItems"], sample["items"]["items"]["maxItems"]] == [1, 8, 8]
    assert {"200", "400", "413", "415", "422"} <= set(spec["responses"])


@SCHEMA.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_schemathesis_finds_no_5xx(case):
    response = case.call()
    kind = f"{case.operation.method.upper()} {case.operation.path} {response.status_code}"
    SCHEMA_COUNTS[kind] = SCHEMA_COUNTS.get(kind, 0) + 1
    assert response.status_code < 500, response.text


def test_schemathesis_summary():
    total = sum(SCHEMA_COUNTS.values())
    print(f"schemathesis requests: {total} {dict(sorted(SCHEMA_COUNTS.items()))}")
    if total:  # run in the same session as the fuzzer: it must have reached /predict with valid bodies
        assert any(k.startswith("POST /predict 200") for k in SCHEMA_COUNTS)


def test_journal_batches_layout_replays_a_run_and_refuses_old_journals(tmp_path, model):
    from labelleak.errors import DataFileError

    path = tmp_path / "j.bin"
    fresh = CachedOracle(TorchOracle(model, input_shape=SHAPE, n_classes=4), path, lookup=False)
    batches = [_x(30, seed=s) for s in range(3)]
    first = [fresh.predict_labels(b) for b in batches]
    assert fresh.layout == "batches" and fresh.hits == 0 and len(fresh) == 90
    fresh.close()
    with path.open("ab") as fh:
        fh.write(b"\x01" * 50)  # a torn record, as a hard kill leaves it
    inner = TorchOracle(model, input_shape=SHAPE, n_classes=4)
    resumed = CachedOracle(inner, path, lookup=False)  # an existing journal is always read back
    assert resumed.layout == "batches" and len(resumed) == 90
    for b, labels in zip(batches, first):
        np.testing.assert_array_equal(resumed.predict_labels(b), labels)
    assert inner.queries == 0 and resumed.hits == 90
    resumed.predict_labels(batches[0][:29])  # a different batch: asked, not misread
    assert inner.queries == 29
    resumed.close()
    old = tmp_path / "old.bin"
    old.write_bytes(np.zeros(4, dtype=[("hash", "<i8"), ("label", "<i8")]).tobytes())
    with pytest.raises(DataFileError, match="older format \\(64-bit keys\\)"):
        CachedOracle(inner, old)
