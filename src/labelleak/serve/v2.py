"""The Open Inference Protocol (KServe v2) routes of ``labelleak serve --v2-name NAME``, labels only.

``GET /v2/health/live`` and ``/v2/health/ready``; ``GET /v2/models/NAME`` (one FP32 input ``[-1, *shape]``, one
INT64 output ``label`` of shape ``[-1]``); ``POST /v2/models/NAME/infer`` with
``{"inputs": [{"name", "shape", "datatype", "data"}]}`` (``data`` flat, row-major, or nested) answers
``{"model_name", "outputs": [{"name": "label", "shape": [N], "datatype": "INT64", "data": [...]}]}``. The same
key, rate limit, body limits and validation as ``/predict`` apply; errors are ``{"error": "..."}`` with a 4xx.
So an audit can read the served model with ``--protocol v2`` exactly as it reads KServe, Triton or MLServer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from labelleak.serve.access import BadRequest, Gate
from labelleak.serve.bodies import load_json, read_body

NUMERIC = {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "BOOL"}


def v2_batch(body: bytes, *, max_json_bytes: int, input_shape: tuple[int, ...]) -> np.ndarray:
    """The batch of an infer request: its first input, reshaped to its declared ``shape``."""
    payload = load_json(body, max_json_bytes, len(input_shape) + 5)
    inputs = payload.get("inputs") if isinstance(payload, dict) else None
    if not isinstance(inputs, list) or not inputs or not isinstance(inputs[0], dict):
        raise BadRequest(400, 'infer request must be an object with a non-empty list "inputs"')
    tensor = inputs[0]
    shape, datatype = tensor.get("shape"), str(tensor.get("datatype", "")).upper()
    if datatype not in NUMERIC:
        raise BadRequest(422, f"inputs[0].datatype must be numeric, got {datatype or 'nothing'!r}")
    if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise BadRequest(422, f"inputs[0].shape must be a list of sizes, got {shape!r}")
    try:
        data = np.asarray(tensor.get("data"), dtype=np.float64).reshape(-1)
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadRequest(422, f"inputs[0].data must be numbers ({exc})") from None
    if data.size != math.prod(shape):
        raise BadRequest(422, f"inputs[0].data holds {data.size} values, its shape {shape} needs {math.prod(shape)}")
    if math.prod(shape[1:]) != math.prod(input_shape):
        raise BadRequest(422, f"inputs[0].shape {shape} does not hold samples of shape {list(input_shape)}")
    return data.reshape(shape[0], *input_shape)


def add_v2_routes(
    app: FastAPI,
    *,
    name: str,
    gate: Gate,
    limits: Any,
    input_shape: tuple[int, ...],
    answer: Callable[[bytes], list[int]],
) -> None:
    """Add the v2 routes for model ``name``; ``answer`` parses, validates and labels an infer body."""
    metadata = {
        "name": name,
        "platform": "labelleak",
        "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, *input_shape]}],
        "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}],
    }

    def _known(model: str) -> None:
        if model != name:
            raise BadRequest(404, f"unknown model {model!r}; this server serves {name!r}")

    @app.get("/v2/health/live")
    def live() -> dict:
        return {"live": True}

    @app.get("/v2/health/ready")
    def ready() -> dict:
        return {"ready": True}

    @app.get("/v2/models/{model}")
    def model_metadata(model: str, request: Request) -> dict:
        gate.who(request)
        _known(model)
        return metadata

    @app.post("/v2/models/{model}/infer")
    async def infer(model: str, request: Request) -> JSONResponse:
        client = gate.who(request)
        _known(model)
        gate.throttle(client)
        body = await read_body(request, limits.max_body_bytes, limits.body_timeout)
        labels = await run_in_threadpool(answer, body)
        gate.charge(client, len(labels))
        output = {"name": "label", "shape": [len(labels)], "datatype": "INT64", "data": labels}
        return JSONResponse({"model_name": name, "outputs": [output]})
