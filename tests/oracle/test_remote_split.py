"""A remote call is cut into enough requests to keep ``concurrency`` of them in flight (issue 32, item 10).

A search step of HopSkipJump asks for a few hundred samples; sent as one request of up to ``request_batch`` samples,
it kept one connection busy whatever ``--concurrency`` was. These tests count the requests in flight at a mock
``labelleak serve`` and check that cutting a call differently changes no answer, no score, no count and no journal.
"""

from __future__ import annotations

import io
import math
import threading

import httpx
import numpy as np
import pytest
from conftest import LinearModel

from labelleak.attacks import create_attack
from labelleak.errors import BudgetExhaustedError
from labelleak.oracle.remote.base import MIN_REQUEST, request_size
from labelleak.oracle.remote.labelleak import LabelleakOracle
from labelleak.oracle.remote.transport import RetryPolicy, Transport

FEATURES = 6


class LabelleakApp:
    """``GET /info`` and ``POST /predict`` (a .npy body) as an httpx handler. With ``gather`` set, a request waits
    (up to ``hold`` seconds) until that many are in flight, so the peak counted is what the client really keeps in
    flight and not what thread scheduling happened to overlap."""

    def __init__(self, model: LinearModel, *, gather: int = 0, hold: float = 2.0) -> None:
        self.model, self.gather, self.hold = model, gather, hold
        self.cond = threading.Condition()
        self.in_flight = self.peak = 0
        self.sizes: list[int] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/info":
            info = {"input_shape": [FEATURES], "bounds": [0.0, 1.0], "n_classes": 3, "max_batch": 4096}
            return httpx.Response(200, json=info)
        x = np.load(io.BytesIO(request.content), allow_pickle=False)
        with self.cond:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.sizes.append(len(x))
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.in_flight >= self.gather, timeout=self.hold if self.gather else 0)
        try:
            return httpx.Response(200, json={"labels": self.model(x).tolist()})
        finally:
            with self.cond:
                self.in_flight -= 1


class Journal:
    """Every send and every answer, as a paid oracle reports them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent_total = 0
        self.rows: list[np.ndarray] = []

    def sent(self, n: int) -> None:
        with self.lock:
            self.sent_total += n

    def answered(self, x: np.ndarray, labels: np.ndarray) -> None:
        with self.lock:
            self.rows.append(np.concatenate([x, labels[:, None].astype(np.float32)], axis=1))


def _oracle(app: LabelleakApp, k: int, batch: int, **kw) -> LabelleakOracle:
    transport = Transport("http://serve.test", policy=RetryPolicy(), concurrency=k, transport=httpx.MockTransport(app))
    return LabelleakOracle(transport, batch_size=batch, **kw)


def _x(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, FEATURES)).astype(np.float32)


def test_request_size_fills_the_connections_but_not_below_the_floor():
    assert request_size(200, 256, 1) == 200  # one connection: as few requests as the batch allows
    assert request_size(200, 256, 4) == 50
    assert request_size(200, 256, 16) == 50  # not 13 requests of 16: four, one per 64 samples at most
    assert request_size(5000, 256, 16) == 250  # a large call: 20 equal requests of at most the request batch
    assert request_size(300, 256, 1) == 150  # two requests either way, of equal size
    assert request_size(200, 8, 16) == 8  # a request batch under the floor is still the most per request
    assert request_size(40, 256, 16) == 40  # under the floor: one request
    for n in range(1, 700, 7):
        for batch in (8, 64, 256):
            for k in (1, 4, 16):
                size = request_size(n, batch, k)
                requests = math.ceil(n / size)
                assert size <= batch and requests >= max(math.ceil(n / batch), min(k, n // MIN_REQUEST))
                assert requests <= max(math.ceil(n / batch), math.ceil(n / MIN_REQUEST))


@pytest.mark.parametrize(("n", "k", "batch"), [(200, 4, 256), (200, 16, 256), (1000, 16, 256), (1000, 4, 64)])
def test_a_call_keeps_min_k_requests_in_flight_with_the_same_answers(linear_model, n, k, batch):
    x = _x(n, seed=n + k)
    expected_requests = math.ceil(n / request_size(n, batch, k))
    app = LabelleakApp(linear_model, gather=min(k, expected_requests))
    oracle = _oracle(app, k, batch)
    labels = oracle.predict_labels(x)
    oracle.close()
    assert min(k, math.ceil(n / MIN_REQUEST)) <= app.peak <= k
    assert len(app.sizes) == expected_requests and max(app.sizes) <= batch and sum(app.sizes) == n
    alone = LabelleakApp(linear_model)
    one = _oracle(alone, 1, batch)
    np.testing.assert_array_equal(labels, one.predict_labels(x))
    one.close()
    assert alone.peak == 1 and len(alone.sizes) == math.ceil(n / min(batch, n))
    np.testing.assert_array_equal(labels, linear_model(x))


def test_a_cut_call_changes_no_score_count_or_journal(linear_model):
    """HopSkipJump through the split oracle: scores byte-identical to one connection, the same samples sent and
    journaled (each answer once, as it arrives), at every concurrency."""
    x = _x(150, seed=7)
    y = linear_model(x)
    attack = create_attack("boundary-hsja", max_iter=3, max_eval=60, init_eval=20, seed=2)
    runs = {}
    for k in (1, 4, 16):
        app, journal = LabelleakApp(linear_model), Journal()
        oracle = _oracle(app, k, 256)
        oracle.attach_journal(journal)
        result = attack(oracle, x, y, max_queries_per_sample=200)
        oracle.close()
        rows = np.concatenate(journal.rows)
        order = np.lexsort(rows.T[::-1])
        runs[k] = (result, oracle.sent, journal.sent_total, rows[order], len(app.sizes))
    base, sent, journaled, rows, requests = runs[1]
    assert sent == journaled == int(base.queries.sum()) == len(rows)
    for k in (4, 16):
        result, k_sent, k_journaled, k_rows, k_requests = runs[k]
        np.testing.assert_array_equal(result.scores, base.scores)
        np.testing.assert_array_equal(result.queries, base.queries)
        assert (k_sent, k_journaled) == (sent, journaled)
        np.testing.assert_array_equal(k_rows, rows)  # the same answers journaled, however the calls were cut
        assert k_requests > requests  # the calls really were cut into more requests


def test_the_cap_refuses_a_cut_call_before_any_request(linear_model):
    app = LabelleakApp(linear_model)
    oracle = _oracle(app, 16, 256, max_queries=150)
    oracle.predict_labels(_x(100))
    with pytest.raises(BudgetExhaustedError, match="max_queries=150"):
        oracle.predict_labels(_x(100, seed=1))
    oracle.close()
    assert oracle.sent == 100 and app.sizes == [50, 50]  # the first call, cut in two; none of the second
