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
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from torch import nn

from labelleak.serve.access import BadRequest, Gate
from labelleak.serve.bodies import parse_batch, read_body, validate_batch


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


LabelsFn = Callable[[np.ndarray], Any]  # (N, *input_shape) float32 -> N integer labels


def _labels_fn(model: nn.Module | LabelsFn) -> LabelsFn:
    if not isinstance(model, nn.Module):
        return model
    net = model.eval()

    def labels(x: np.ndarray) -> Any:
        with torch.no_grad():
            return net(torch.from_numpy(x)).argmax(1).numpy()

    return labels


async def _inject(faults: FaultConfig, rng: np.random.Generator) -> JSONResponse | None:
    """The answer a chaos test asked for instead of the labels (a 500 or a 429, a third of ``rate`` each), after
    any delay (the last third) and the constant ``latency``; None: answer normally."""
    if faults.rate > 0:
        r = float(rng.random())
        if r < faults.rate / 3:
            return JSONResponse({"detail": "injected fault"}, status_code=500)
        if r < 2 * faults.rate / 3:
            return JSONResponse({"detail": "injected rate limit"}, status_code=429, headers={"Retry-After": "0"})
        if r < faults.rate:
            await asyncio.sleep(faults.delay)
    if faults.latency > 0:
        await asyncio.sleep(faults.latency)
    return None


def create_app(
    model: nn.Module | LabelsFn,
    *,
    input_shape: tuple[int, ...],
    n_classes: int,
    bounds: tuple[float, float] = (0.0, 1.0),
    api_key: str | None = None,
    limits: ServeLimits | None = None,
    faults: FaultConfig | None = None,
    v2_name: str | None = None,
) -> FastAPI:
    """Build the label-only API around ``model``: a torch module (put in eval mode) or a function from a float32
    batch to its labels (a model file's oracle). ``v2_name`` also serves it under the Open Inference Protocol
    (:mod:`labelleak.serve.v2`) with that model name."""
    limits = limits or ServeLimits()
    predict_labels = _labels_fn(model)
    gate = Gate(api_key=api_key, rate_limit=limits.rate_limit)
    fault_rng = np.random.default_rng(faults.seed if faults else 0)
    app = FastAPI(title="labelleak label-only target", docs_url=None, redoc_url=None)

    @app.exception_handler(BadRequest)
    async def _bad(request: Request, exc: BadRequest) -> JSONResponse:
        key = "error" if request.url.path.startswith("/v2/") else "detail"  # each protocol's error field
        return JSONResponse({key: exc.detail}, status_code=exc.status, headers=exc.headers)

    parsing = threading.BoundedSemaphore(max(1, limits.parse_workers))

    def answer(arr: np.ndarray) -> list[int]:
        """Validate a parsed batch and label it (in a worker thread, at most ``parse_workers`` at once)."""
        x = validate_batch(arr, input_shape, bounds, limits.max_batch)
        return [int(v) for v in np.asarray(predict_labels(x)).reshape(-1)]

    def _answer(body: bytes, content_type: str) -> list[int]:
        with parsing:
            return answer(
                parse_batch(body, content_type, max_json_bytes=limits.max_json_bytes, ndim=len(input_shape) + 1)
            )

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
        gate.who(request)
        return {"samples_served": gate.counts()}

    @app.post("/predict", openapi_extra=predict_openapi(input_shape, bounds, limits.max_batch))
    async def predict(request: Request) -> JSONResponse:
        client = gate.who(request)
        gate.throttle(client)
        body = await read_body(request, limits.max_body_bytes, limits.body_timeout)
        fault = await _inject(faults, fault_rng) if faults is not None else None
        if fault is not None:
            return fault
        labels = await run_in_threadpool(_answer, body, request.headers.get("content-type", ""))
        gate.charge(client, len(labels))
        return JSONResponse({"labels": labels})

    if v2_name is not None:
        from labelleak.serve.v2 import add_v2_routes, v2_batch

        def _answer_v2(body: bytes) -> list[int]:
            with parsing:
                return answer(v2_batch(body, max_json_bytes=limits.max_json_bytes, input_shape=input_shape))

        add_v2_routes(app, name=v2_name, gate=gate, limits=limits, input_shape=input_shape, answer=_answer_v2)
    return app
