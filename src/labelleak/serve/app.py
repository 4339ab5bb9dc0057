"""``labelleak serve``: a trained model behind a label-only HTTP API (FastAPI).

Routes: ``GET /info`` (input shape, bounds, classes, limits), ``POST /predict`` (a batch as JSON
``{"inputs": [...]}`` or as a ``.npy`` body with ``Content-Type: application/x-npy``; answers ``{"labels": [...]}``
and nothing else), ``GET /stats`` (samples served per API key). Bad input always gets a 4xx with a message
(400 malformed, 401 key, 413 too large, 415 content type, 422 shape/range/NaN, 429 rate limit), never a 500.

A fault-injection mode (``faults``) answers a configurable fraction of predictions with 500 or 429, or delays
them, so clients can be tested for resilience.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from torch import nn


@dataclass
class ServeLimits:
    max_batch: int = 4096
    max_body_bytes: int = 64 << 20
    rate_limit: float | None = None  # requests per second per key (token bucket with one second of burst)


@dataclass
class FaultConfig:
    rate: float = 0.0  # fraction of /predict requests that fail or are delayed
    delay: float = 0.05
    seed: int = 0


@dataclass
class _State:
    served: dict[str, int] = field(default_factory=dict)
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class BadRequest(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}


def _parse(body: bytes, content_type: str) -> np.ndarray:
    if content_type.startswith("application/x-npy") or content_type.startswith("application/octet-stream"):
        try:
            arr = np.load(io.BytesIO(body), allow_pickle=False)
        except Exception as exc:  # any malformed .npy is the client's fault
            raise BadRequest(400, f"malformed .npy body: {type(exc).__name__}: {exc}") from None
    elif content_type.startswith("application/json") or not content_type:
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(400, f"malformed JSON body: {exc}") from None
        if not isinstance(payload, dict) or "inputs" not in payload:
            raise BadRequest(400, 'JSON body must be an object with key "inputs"')
        try:
            arr = np.asarray(payload["inputs"], dtype=np.float64)
        except (ValueError, TypeError, OverflowError) as exc:
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
    x = arr.astype(np.float32)
    if not np.isfinite(x).all():
        raise BadRequest(422, "inputs contain NaN or infinite values")
    lo, hi = bounds
    if x.min() < lo - 1e-5 or x.max() > hi + 1e-5:
        raise BadRequest(422, f"inputs must lie in [{lo}, {hi}], got [{x.min():.4g}, {x.max():.4g}]")
    return x


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

    def _key(request: Request) -> str:
        given = request.headers.get("x-api-key")
        if api_key is not None and given != api_key:
            raise BadRequest(401, "missing or wrong API key (header X-API-Key)")
        return given or "anonymous"

    def _throttle(key: str) -> None:
        if limits.rate_limit is None:
            return
        with state.lock:
            now = time.monotonic()
            tokens, last = state.buckets.get(key, (limits.rate_limit, now))
            tokens = min(limits.rate_limit, tokens + (now - last) * limits.rate_limit)
            if tokens < 1.0:
                state.buckets[key] = (tokens, now)
                retry = (1.0 - tokens) / limits.rate_limit
                raise BadRequest(429, "rate limit exceeded", {"Retry-After": f"{retry:.3f}"})
            state.buckets[key] = (tokens - 1.0, now)

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

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        key = _key(request)
        _throttle(key)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
            raise BadRequest(413, f"body of {declared} bytes exceeds {limits.max_body_bytes}")
        body = await request.body()
        if len(body) > limits.max_body_bytes:
            raise BadRequest(413, f"body of {len(body)} bytes exceeds {limits.max_body_bytes}")
        if faults is not None and faults.rate > 0:
            r = float(fault_rng.random())
            if r < faults.rate / 3:
                return JSONResponse({"detail": "injected fault"}, status_code=500)
            if r < 2 * faults.rate / 3:
                return JSONResponse({"detail": "injected rate limit"}, status_code=429, headers={"Retry-After": "0"})
            if r < faults.rate:
                await asyncio.sleep(faults.delay)
        x = _validate(_parse(body, request.headers.get("content-type", "")), input_shape, bounds, limits.max_batch)
        with torch.no_grad():
            labels = model(torch.from_numpy(x)).argmax(1).tolist()
        with state.lock:
            state.served[key] = state.served.get(key, 0) + len(labels)
        return JSONResponse({"labels": labels})

    return app
