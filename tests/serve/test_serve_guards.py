"""``labelleak serve`` under hostile clients, on loopback: half-sent requests time out, connections are capped,
JSON is bounded before it is parsed, the rate limit counts samples per client, keys are never echoed, the log
cannot be flooded, and bad options are refused in one line."""

from __future__ import annotations

import json
import logging
import socket
import time

import httpx
import numpy as np
import pytest
import torch
from _loopback import Server, free_port
from typer.testing import CliRunner

from labelleak.cli import app as cli
from labelleak.serve import ServeLimits, create_app
from labelleak.serve.guards import LogRateLimit, server_config

SHAPE = (4,)


def _app(**limits):
    torch.manual_seed(0)
    return create_app(torch.nn.Linear(4, 3), input_shape=SHAPE, n_classes=3, limits=ServeLimits(**limits))


def _guarded(app, *, header_timeout=0.5, max_connections=256):
    config = server_config(
        app, host="127.0.0.1", port=free_port(), header_timeout=header_timeout, max_connections=max_connections,
        log_per_second=20,
    )  # fmt: skip
    return Server(app, config)


def _one(url, n=1, **headers):
    return httpx.post(f"{url}/predict", json={"inputs": [[0.5] * 4] * n}, headers=headers, timeout=10)


def _half_sent(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")  # the headers never end
    return s


def test_a_half_sent_request_is_closed_after_the_header_deadline():
    with _guarded(_app(), header_timeout=0.5) as s:
        sock = _half_sent(s.port)
        sock.settimeout(5)
        start = time.monotonic()
        assert sock.recv(100) == b""  # closed by the server, not by our timeout
        assert 0.3 < time.monotonic() - start < 3
        assert _one(s.url).status_code == 200


def test_idle_connections_cannot_lock_the_server_out():
    with _guarded(_app(), header_timeout=0.5, max_connections=4) as s:
        idle = [_half_sent(s.port) for _ in range(8)]
        time.sleep(0.2)
        assert _one(s.url).status_code == 503  # capped while they hold their slots
        time.sleep(1.0)
        assert _one(s.url).status_code == 200  # their deadline passed: the server is reachable again
        for sock in idle:
            sock.close()


def test_a_slow_body_gets_408():
    with _guarded(_app(body_timeout=0.5), header_timeout=5) as s:
        sock = socket.create_connection(("127.0.0.1", s.port))
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        sock.settimeout(5)
        assert b" 408 " in sock.recv(1000).split(b"\r\n")[0] + b" "
        sock.close()


def test_json_is_bounded_in_size_and_depth_before_it_is_parsed():
    with Server(_app(max_json_bytes=10_000)) as s:
        big = httpx.post(f"{s.url}/predict", content=b'{"inputs": [' + b"0.5," * 5000 + b"0.5]}", timeout=10)
        assert big.status_code == 413 and "send large batches as .npy" in big.json()["detail"]
        deep = httpx.post(f"{s.url}/predict", content=b'{"inputs": ' + b"[" * 4000 + b"]" * 4000 + b"}", timeout=10)
        assert deep.status_code == 400 and "nested deeper than 4 levels" in deep.json()["detail"]
        assert _one(s.url, 3).json()["labels"] and len(_one(s.url, 3).json()["labels"]) == 3


def test_the_rate_limit_counts_samples_per_client_and_ignores_made_up_keys():
    with Server(_app(rate_limit=5.0)) as s:
        start = time.monotonic()
        answers = [_one(s.url, **{"X-API-Key": f"made-up-{i}"}).status_code for i in range(40)]
        refill = 5.0 * (time.monotonic() - start)
        assert answers.count(200) <= 5 + refill + 1 < 40  # one bucket for this address, whatever key it sends
        time.sleep(1.2)
        assert _one(s.url, 10).status_code == 200  # a batch of 10 overdraws 5 samples/s
        refused = _one(s.url)
        assert refused.status_code == 429 and float(refused.headers["Retry-After"]) > 0.5
        stats = httpx.get(f"{s.url}/stats", headers={"X-API-Key": "made-up-3"})
        assert "made-up" not in stats.text and list(stats.json()["samples_served"]) == ["127.0.0.1"]


def test_keys_are_compared_and_never_echoed():
    torch.manual_seed(0)
    app = create_app(torch.nn.Linear(4, 3), input_shape=SHAPE, n_classes=3, api_key="t0ps3cret")
    with Server(app) as s:
        assert _one(s.url, **{"X-API-Key": "t0ps3cre"}).status_code == 401
        assert _one(s.url, **{"X-API-Key": "t0ps3cret"}).status_code == 200
        stats = httpx.get(f"{s.url}/stats", headers={"X-API-Key": "t0ps3cret"})
        assert stats.json() == {"samples_served": {"api-key": 1}} and "t0ps3cret" not in stats.text


def test_the_log_is_rate_limited_and_says_what_it_dropped():
    logger = logging.getLogger("labelleak-test-flood")
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger.addHandler(Keep())
    logger.propagate = False
    logger.addFilter(LogRateLimit(5))
    for _ in range(1000):
        logger.warning("invalid HTTP request")
    assert len(records) <= 10
    time.sleep(1.05)
    logger.warning("next")
    assert records[-1].startswith("[") and "log lines dropped" in records[-1]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--rate-limit", "0"], "--rate-limit: expected a positive number of samples per second, got 0.0"),
        (["--rate-limit", "-2"], "--rate-limit: expected a positive number"),
        (["--max-batch", "0"], "--max-batch: expected at least 1, got 0"),
        (["--port", "99999"], "--port: expected 1..65535, got 99999"),
        (["--fault-rate", "1.5"], "--fault-rate: expected a fraction in [0, 1]"),
        (["--max-connections", "0"], "--max-connections: expected at least 1"),
    ],
)
def test_bad_serve_options_get_one_line(tmp_path, option, message):
    result = CliRunner().invoke(cli, ["serve", "--model", str(tmp_path), *option])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_npy_batches_beyond_the_json_limit_still_work():
    from labelleak.oracle.http import encode_npy

    with Server(_app(max_json_bytes=1_000)) as s:
        x = np.full((200, 4), 0.5, np.float32)
        answer = httpx.post(
            f"{s.url}/predict", content=encode_npy(x), headers={"Content-Type": "application/x-npy"}, timeout=10
        )
        assert answer.status_code == 200 and len(answer.json()["labels"]) == 200
        assert len(json.dumps({"inputs": x.tolist()})) > 1_000
