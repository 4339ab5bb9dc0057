"""``labelleak serve``: a trained model behind a label-only HTTP API (FastAPI).

Routes: ``GET /info`` (input shape, bounds, classes, limits), ``POST /predict`` (a batch as JSON
``{"inputs": [...]}`` or as a ``.npy`` body with ``Content-Type: application/x-npy``; answers ``{"labels": [...]}``
and nothing else), ``GET /stats`` (samples served per client: ``api-key`` when a key is required, else the client's
address; a key is never echoed). Bad input always gets a 4xx with a message (400 malformed, 401 key, 408 body too
slow, 413 too large, 415 content type, 422 shape/range/NaN, 429 rate limit), never a 500.

A fault-injection mode (``faults``) answers a configurable fraction of predictions with 500 or 429, or delays
them, and can add a fixed latency to every prediction, so clients can be tested for resilience and concurrency.

The event loop only moves bytes: a body is read as a stream within ``body_timeout`` seconds and refused with 413 as
soon as it passes the limit (whether or not it declared a Content-Length). A JSON body has its own, smaller limit and
its nesting is checked on the raw bytes before it is parsed (a 50 MB JSON batch cost 1.8 GB and held the
interpreter for seconds; large batches go as ``.npy``). Parsing, validation and the forward pass run in a worker
thread, at most ``parse_workers`` at once. The rate limit counts samples per client (the API key when one is
required, else the address: a made-up ``X-API-Key`` no longer opens a new bucket). The OpenAPI schema
(``/openapi.json``) describes the ``/predict`` body, so schema-driven fuzzers exercise it.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import json
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from torch import nn


@dataclass
class ServeLimits:
    max_batch: int = 4096
    max_body_bytes: int = 64 << 20  # any body (.npy)
    max_json_bytes: int = 4 << 20  # a JSON body: parsing costs ~40x its size in memory
    rate_limit: float | None = None  # samples per second per client (a token bucket; a served batch may overdraw it)
    body_timeout: float = 30.0  # seconds to receive a whole body
    header_timeout: float = 10.0  # seconds to receive a request's headers (enforced by serve.guards)
    max_connections: int = 256  # open connections and requests at once; more get 503 (serve.guards)
    log_per_second: int = 20  # server log lines per second, then a count of what was dropped
    parse_workers: int = 2  # bodies parsed and predicted at once


@dataclass
class FaultConfig:
    rate: float = 0.0  # fraction of /predict requests that fail or are delayed
    delay: float = 0.05
    seed: int = 0
    latency: float = 0.0  # seconds added to every /predict answer (a slow remote service, without blocking)


@dataclass
class _State:
    served: dict[str, int] = field(default_factory=dict)
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class BadRequest(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}


def _check_npy_header(body: bytes) -> None:
    """Refuse a ``.npy`` body whose header declares more data than the body holds, before anything is allocated
    (``np.load`` would otherwise allocate the declared size first)."""
    fp = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(fp)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"unsupported .npy format version {version}")
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(fp, max_header_size=10_000)
    except Exception as exc:  # any malformed header is the client's fault
        raise BadRequest(400, f"malformed .npy body: {type(exc).__name__}: {exc}") from None
    if dtype.kind not in "biuf":
        raise BadRequest(422, f"inputs must be numeric, got dtype {dtype}")
    declared = math.prod(shape) * dtype.itemsize
    if declared != len(body) - fp.tell():
        raise BadRequest(
            400, f"malformed .npy body: header declares {declared} bytes of data, body holds {len(body) - fp.tell()}"
        )


def _json_depth(body: bytes) -> int:
    """The deepest bracket nesting of a JSON body, read from its bytes without parsing it."""
    raw = np.frombuffer(body, dtype=np.uint8)
    steps = (raw == ord("[")).astype(np.int32) - (raw == ord("]")) + (raw == ord("{")) - (raw == ord("}"))
    return int(np.cumsum(steps).max(initial=0))


def _parse(body: bytes, content_type: str, limits: ServeLimits | None = None, ndim: int = 64) -> np.ndarray:
    if content_type.startswith("application/x-npy") or content_type.startswith("application/octet-stream"):
        _check_npy_header(body)
        try:
            arr = np.load(io.BytesIO(body), allow_pickle=False)
        except Exception as exc:  # any malformed .npy is the client's fault
            raise BadRequest(400, f"malformed .npy body: {type(exc).__name__}: {exc}") from None
    elif content_type.startswith("application/json") or not content_type:
        max_json = (limits or ServeLimits()).max_json_bytes
        if len(body) > max_json:
            raise BadRequest(413, f"JSON body of {len(body)} bytes exceeds {max_json}; send large batches as .npy")
        if _json_depth(body) > ndim + 2:
            raise BadRequest(400, f"malformed JSON body: nested deeper than {ndim + 2} levels")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(400, f"malformed JSON body: {exc}") from None
        except RecursionError:  # "[[[[...": nested deeper than the parser's stack
            raise BadRequest(400, "malformed JSON body: nested too deeply") from None
        if not isinstance(payload, dict) or "inputs" not in payload:
            raise BadRequest(400, 'JSON body must be an object with key "inputs"')
        try:
            arr = np.asarray(payload["inputs"], dtype=np.float64)
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            raise BadRequest(422, f"inputs must be a rectangular array of numbers ({exc})") from None
    else:
        raise BadRequest(415, f"unsupported content type {content_type!r}; use application/json or application/x-npy")
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise BadRequest(422, f"inputs must be numeric, got dtype {getattr(arr, 'dtype', type(arr))}")
    return arr


def _validate(arr: np.ndarray, shape: tuple[int, ...], bounds: tuple[float, float], max_batch: int) -> np.ndarray:
    if arr.ndim != len(shape) + 1 or tuple(arr.shape[1:]) != shape:
        raise BadRequest(422, f"inputs must have shape (N, {', '.join(map(str, shape))}), got {tuple(arr.shape)}")
    if len(arr) == 0:
        raise BadRequest(422, "inputs must hold at least one sample")
    if len(arr) > max_batch:
        raise BadRequest(413, f"batch of {len(arr)} samples exceeds max_batch={max_batch}")
    with np.errstate(over="ignore", invalid="ignore"):  # values beyond float32 become inf, refused just below
        x = arr.astype(np.float32)
    if not np.isfinite(x).all():
        raise BadRequest(422, "inputs contain NaN or infinite values")
    lo, hi = bounds
    if x.min() < lo - 1e-5 or x.max() > hi + 1e-5:
        raise BadRequest(422, f"inputs must lie in [{lo}, {hi}], got [{x.min():.4g}, {x.max():.4g}]")
    return x


async def _read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The body, streamed and refused with 413 as soon as it passes ``limit`` bytes: a declared Content-Length is
    checked first, and a chunked body without one is never held beyond the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"body of {declared} bytes exceeds {limit}")
    parts: list[bytes] = []

    async def collect() -> None:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BadRequest(413, f"body of more than {limit} bytes")
            parts.append(chunk)

    try:
        await asyncio.wait_for(collect(), timeout)
    except asyncio.TimeoutError:
        raise BadRequest(408, f"body not received within {timeout:g} s") from None
    return b"".join(parts)


def predict_openapi(input_shape: tuple[int, ...], bounds: tuple[float, float], max_batch: int) -> dict[str, Any]:
    """The OpenAPI description of ``POST /predict`` (the route reads its body itself, so it is spelled out)."""
    sample: dict[str, Any] = {"type": "number", "minimum": bounds[0], "maximum": bounds[1]}
    for dim in reversed(input_shape):
        sample = {"type": "array", "items": sample, "minItems": dim, "maxItems": dim}
    detail = {
        "content": {
            "application/json": {
                "schema": {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}}
            }
        }
    }
    errors = {
        "400": "malformed body",
        "401": "missing or wrong API key",
        "408": "body not received in time",
        "413": "body or batch too large",
        "415": "unsupported content type",
        "422": "wrong shape, range, NaN or dtype",
        "429": "rate limit exceeded",
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["inputs"],
                        "properties": {
                            "inputs": {"type": "array", "items": sample, "minItems": 1, "maxItems": max_batch}
                        },
                    }
                },
                "application/x-npy": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        "responses": {
            "200": {
                "description": "one label per sample, nothing else",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["labels"],
                            "properties": {"labels": {"type": "array", "items": {"type": "integer"}}},
                        }
                    }
                },
            },
            **{code: {"description": text, **detail} for code, text in errors.items()},
        },
    }


def create_app(
    model: nn.Module,
    *,
    input_shape: tuple[int, ...],
    n_classes: int,
    bounds: tuple[float, float] = (0.0, 1.0),
    api_key: str | None = None,
    limits: ServeLimits | None = None,
    faults: FaultConfig | None = None,
) -> FastAPI:
    """Build the label-only API around ``model`` (put in eval mode)."""
    limits = limits or ServeLimits()
    model = model.eval()
    state = _State()
    fault_rng = np.random.default_rng(faults.seed if faults else 0)
    app = FastAPI(title="labelleak label-only target", docs_url=None, redoc_url=None)

    @app.exception_handler(BadRequest)
    async def _bad(_: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    expected_key = api_key.encode() if api_key is not None else None
    parsing = threading.BoundedSemaphore(max(1, limits.parse_workers))

    def _key(request: Request) -> str:
        """Who is asking: ``api-key`` once the key matches (compared in constant time), else the address."""
        if expected_key is not None:
            given = request.headers.get("x-api-key", "").encode()
            if not hmac.compare_digest(given, expected_key):
                raise BadRequest(401, "missing or wrong API key (header X-API-Key)")
            return "api-key"
        return request.client.host if request.client else "unknown"

    def _refill(key: str, rate: float) -> float:
        now = time.monotonic()
        tokens, last = state.buckets.get(key, (rate, now))
        tokens = min(rate, tokens + (now - last) * rate)
        state.buckets[key] = (tokens, now)
        return tokens

    def _throttle(key: str) -> None:
        """429 while the client's bucket holds less than one sample; Retry-After says when it will."""
        rate = limits.rate_limit
        if rate is None:
            return
        with state.lock:
            tokens = _refill(key, rate)
        if tokens < 1.0:
            raise BadRequest(429, "rate limit exceeded", {"Retry-After": f"{max((1.0 - tokens) / rate, 0.001):.3f}"})

    def _charge(key: str, samples: int) -> None:
        rate = limits.rate_limit
        with state.lock:
            state.served[key] = state.served.get(key, 0) + samples
            if rate is not None:
                state.buckets[key] = (_refill(key, rate) - samples, time.monotonic())

    @app.get("/info")
    def info() -> dict:
        return {
            "input_shape": list(input_shape),
            "bounds": list(bounds),
            "n_classes": n_classes,
            "max_batch": limits.max_batch,
            "max_body_bytes": limits.max_body_bytes,
            "output": "labels",
        }

    @app.get("/stats")
    def stats(request: Request) -> dict:
        _key(request)
        with state.lock:
            return {"samples_served": dict(state.served)}

    def _answer(body: bytes, content_type: str) -> list[int]:
        with parsing:
            arr = _parse(body, content_type, limits, ndim=len(input_shape) + 1)
            x = _validate(arr, input_shape, bounds, limits.max_batch)
            with torch.no_grad():
                return model(torch.from_numpy(x)).argmax(1).tolist()

    @app.post("/predict", openapi_extra=predict_openapi(input_shape, bounds, limits.max_batch))
    async def predict(request: Request) -> JSONResponse:
        key = _key(request)
        _throttle(key)
        body = await _read_body(request, limits.max_body_bytes, limits.body_timeout)
        if faults is not None and faults.rate > 0:
            r = float(fault_rng.random())
            if r < faults.rate / 3:
                return JSONResponse({"detail": "injected fault"}, status_code=500)
            if r < 2 * faults.rate / 3:
                return JSONResponse({"detail": "injected rate limit"}, status_code=429, headers={"Retry-After": "0"})
            if r < faults.rate:
                await asyncio.sleep(faults.delay)
        if faults is not None and faults.latency > 0:
            await asyncio.sleep(faults.latency)
        labels = await run_in_threadpool(_answer, body, request.headers.get("content-type", ""))
        _charge(key, len(labels))
        return JSONResponse({"labels": labels})

    return app
