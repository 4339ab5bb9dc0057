"""What a remote target answers and how long it may be down: non-JSON and over-nested answers and NaN scores are
one-line errors, never a traceback or a silent class 0; retries last a window of seconds that covers a restart."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from labelleak.errors import RemoteOracleError, RemoteOutageError
from labelleak.oracle.remote.labelleak import LabelleakOracle
from labelleak.oracle.remote.transport import RetryPolicy, Transport
from labelleak.oracle.remote.v2 import V2Oracle

INFO = {"input_shape": [4], "bounds": [0.0, 1.0], "n_classes": 3, "max_batch": 64}
X = np.full((5, 4), 0.5, np.float32)


def _labelleak(predict) -> LabelleakOracle:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=INFO) if request.url.path == "/info" else predict(request)

    return LabelleakOracle(Transport("http://t.test", transport=httpx.MockTransport(handler)))


def test_an_answer_that_is_not_json_is_one_line():
    oracle = _labelleak(lambda r: httpx.Response(200, text="<html>Bad gateway</html>"))
    with pytest.raises(RemoteOracleError, match=r"/predict: the answer is not JSON \('<html>Bad gateway"):
        oracle.predict_labels(X)


def test_an_answer_nested_too_deeply_is_one_line():
    oracle = _labelleak(lambda r: httpx.Response(200, content=b"[" * 100_000 + b"]" * 100_000))
    with pytest.raises(RemoteOracleError, match="/predict: the answer is JSON nested too deeply"):
        oracle.predict_labels(X)


def test_v2_scores_that_are_nan_are_refused_not_read_as_class_0():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            meta = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}], "outputs": [{"shape": [-1, 3]}]}
            return httpx.Response(200, json=meta)
        n = 5
        out = {"name": "probs", "shape": [n, 3], "datatype": "FP32", "data": [float("nan")] * (3 * n)}
        return httpx.Response(
            200, content=json.dumps({"outputs": [out]}).encode()
        )  # the NaN token, as Python writes it

    oracle = V2Oracle(
        Transport("http://v2.test", transport=httpx.MockTransport(handler)), model_name="m", bounds=(0, 1)
    )
    with pytest.raises(RemoteOracleError, match="the scores of 5 of 5 samples are NaN or infinite"):
        oracle.predict_labels(X)


class _Clock:
    """Fake time: ``sleep`` advances it, so a retry window can be tested without waiting."""

    def __init__(self) -> None:
        self.now, self.sleeps = 0.0, []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _restarting(clock: _Clock, down_for: float) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if clock.now < down_for:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json=INFO)

    return httpx.MockTransport(handler)


@pytest.mark.parametrize("seed", range(5))
def test_the_default_retry_window_outlasts_a_nine_second_restart(seed):
    clock = _Clock()
    transport = Transport("http://t.test", transport=_restarting(clock, 9.0), sleep=clock.sleep, seed=seed)
    assert transport.request("GET", "/info").status_code == 200
    assert 9.0 <= clock.now <= 60.0

    old = _Clock()  # the old default, 8 retries, gives up before the server is back
    eight = Transport(
        "http://t.test", policy=RetryPolicy(retries=8, window=1e9), transport=_restarting(old, 9.0), sleep=old.sleep,
        seed=seed,
    )  # fmt: skip
    with pytest.raises(RemoteOutageError):
        eight.request("GET", "/info")


def test_the_window_bounds_the_waiting_and_the_error_names_the_option():
    clock = _Clock()
    policy = RetryPolicy(retries=1000, backoff=1.0, max_wait=4.0, window=10.0)
    transport = Transport("http://t.test", policy=policy, transport=_restarting(clock, 1e9), sleep=clock.sleep)
    with pytest.raises(RemoteOutageError, match=r"and 10\.0 s of waiting .*--retry-window sets how long to wait"):
        transport.request("GET", "/info")
    assert sum(clock.sleeps) == pytest.approx(10.0)
    with pytest.raises(Exception, match="retry_window: expected a non-negative number of seconds"):
        Transport("http://t.test", policy=RetryPolicy(window=-1))
