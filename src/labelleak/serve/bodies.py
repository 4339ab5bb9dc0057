"""Reading and checking request bodies: streamed within a deadline and a size, JSON bounded before it is parsed,
``.npy`` headers checked before anything is allocated, and batches validated against the served model's shape
and bounds. Every failure is a :class:`~labelleak.serve.access.BadRequest` (a 4xx), never a 500."""

from __future__ import annotations

import asyncio
import io
import json
import math
from typing import Any

import numpy as np
from starlette.requests import Request

from labelleak.serve.access import BadRequest


def check_npy_header(body: bytes) -> None:
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


def json_depth(body: bytes) -> int:
    """The deepest bracket nesting of a JSON body, read from its bytes without parsing it."""
    raw = np.frombuffer(body, dtype=np.uint8)
    steps = (raw == ord("[")).astype(np.int32) - (raw == ord("]")) + (raw == ord("{")) - (raw == ord("}"))
    return int(np.cumsum(steps).max(initial=0))


def load_json(body: bytes, max_bytes: int, max_depth: int) -> Any:
    """A JSON body parsed only after its size and bracket depth are checked on the bytes."""
    if len(body) > max_bytes:
        raise BadRequest(413, f"JSON body of {len(body)} bytes exceeds {max_bytes}; send large batches as .npy")
    if json_depth(body) > max_depth:
        raise BadRequest(400, f"malformed JSON body: nested deeper than {max_depth} levels")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(400, f"malformed JSON body: {exc}") from None
    except RecursionError:
        raise BadRequest(400, "malformed JSON body: nested too deeply") from None


def parse_batch(body: bytes, content_type: str, *, max_json_bytes: int, ndim: int) -> np.ndarray:
    """The batch of a ``/predict`` body: ``.npy`` bytes, or JSON ``{"inputs": [...]}`` nested ``ndim`` deep."""
    if content_type.startswith("application/x-npy") or content_type.startswith("application/octet-stream"):
        check_npy_header(body)
        try:
            arr = np.load(io.BytesIO(body), allow_pickle=False)
        except Exception as exc:  # any malformed .npy is the client's fault
            raise BadRequest(400, f"malformed .npy body: {type(exc).__name__}: {exc}") from None
    elif content_type.startswith("application/json") or not content_type:
        payload = load_json(body, max_json_bytes, ndim + 2)
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


def validate_batch(arr: np.ndarray, shape: tuple[int, ...], bounds: tuple[float, float], max_batch: int) -> np.ndarray:
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


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
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
