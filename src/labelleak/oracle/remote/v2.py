"""The Open Inference Protocol (KServe v2), spoken by KServe, Triton and MLServer.

``GET /v2/models/{name}`` gives the model's metadata (its inputs and outputs with ``datatype`` and ``shape``,
``-1`` for a variable dimension); ``POST /v2/models/{name}/infer`` takes
``{"inputs": [{"name", "shape", "datatype", "data"}]}`` with the tensor flattened in row-major order and answers
``{"outputs": [{"name", "shape", "datatype", "data"}]}``. The first output is read: one label per sample as it is,
or one row of scores/probabilities per sample, reduced to its argmax here and never kept.

The metadata does not say the value range of the inputs and often not the number of classes or even the input
shape; those come from the caller (``--bounds``, ``--n-classes``, ``--input-shape``), and every missing one is
named in one error.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote

import numpy as np

from labelleak.errors import InvalidInputError, RemoteOracleError
from labelleak.oracle.remote.base import RemoteOracle, decode_json, labels_from_output
from labelleak.oracle.remote.transport import Transport

FLOAT_TYPES = {"FP16", "FP32", "FP64"}
WIRE_TYPES = FLOAT_TYPES | {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}


def _fixed_dims(shape: Any) -> tuple[int, ...] | None:
    """The per-sample dimensions of a metadata shape ``[-1, d1, ...]``, or ``None`` if any is unknown."""
    if not isinstance(shape, list) or len(shape) < 2 or not all(isinstance(d, int) for d in shape):
        return None
    dims = tuple(shape[1:])
    return dims if all(d > 0 for d in dims) else None


class V2Oracle(RemoteOracle):
    """Labels from a model behind the Open Inference Protocol; see the module docstring."""

    protocol = "v2"

    def __init__(
        self,
        transport: Transport,
        *,
        model_name: str,
        input_shape: tuple[int, ...] | None = None,
        bounds: tuple[float, float] | None = None,
        n_classes: int | None = None,
        batch_size: int = 256,
        max_queries: int | None = None,
    ) -> None:
        if not model_name:
            raise InvalidInputError("the v2 protocol needs --model-name NAME (the model's name on the server)")
        self.model_name = model_name
        self.path = f"/v2/models/{quote(model_name, safe='')}"
        meta = decode_json(transport.request("GET", self.path), f"{transport.base_url}{self.path}")
        if not isinstance(meta, dict):
            raise RemoteOracleError(f"{transport.base_url}{self.path}: expected a metadata object")
        inputs = meta.get("inputs") or [{}]
        outputs = meta.get("outputs") or [{}]
        first_in = inputs[0] if isinstance(inputs, list) and isinstance(inputs[0], dict) else {}
        first_out = outputs[0] if isinstance(outputs, list) and isinstance(outputs[0], dict) else {}
        self.input_name = str(first_in.get("name") or "input-0")
        self.datatype = str(first_in.get("datatype") or "FP32").upper()
        served_dims = _fixed_dims(first_in.get("shape"))
        out_dims = _fixed_dims(first_out.get("shape"))
        shape = tuple(input_shape) if input_shape else served_dims
        classes = n_classes or (out_dims[-1] if out_dims and out_dims[-1] > 1 else None)
        missing = []
        if shape is None:
            missing.append("the input shape (--input-shape, e.g. 1,28,28)")
        if bounds is None:
            missing.append("the inputs' value range (--bounds LOW,HIGH)")
        if classes is None:
            missing.append("the number of classes (--n-classes)")
        if self.datatype not in WIRE_TYPES:
            missing.append(f"a numeric input datatype (the server declares {self.datatype})")
        if missing:
            raise InvalidInputError(f"{transport.base_url}{self.path}: the metadata does not give {'; '.join(missing)}")
        assert shape is not None and bounds is not None and classes is not None
        if served_dims is not None and math.prod(served_dims) != math.prod(shape):
            raise InvalidInputError(
                f"--input-shape {','.join(map(str, shape))} does not match the served input shape "
                f"{','.join(map(str, served_dims))} ({math.prod(shape)} against {math.prod(served_dims)} values)"
            )
        self.wire_dims = served_dims or shape  # the samples are reshaped to what the server declared
        super().__init__(
            transport,
            input_shape=shape,
            n_classes=int(classes),
            bounds=bounds,
            request_batch=batch_size,
            max_queries=max_queries,
        )

    def _body(self, chunk: np.ndarray) -> dict[str, Any]:
        data = chunk if self.datatype in FLOAT_TYPES else np.rint(chunk).astype(np.int64)
        return {
            "inputs": [
                {
                    "name": self.input_name,
                    "shape": [len(chunk), *self.wire_dims],
                    "datatype": self.datatype,
                    "data": data.reshape(-1).tolist(),
                }
            ]
        }

    def _send(self, chunk: np.ndarray) -> np.ndarray:
        where = f"{self.url}{self.path}/infer"
        answer = decode_json(self._request(len(chunk), "POST", f"{self.path}/infer", json=self._body(chunk)), where)
        try:
            output = answer["outputs"][0]
            values = np.asarray(output["data"], dtype=np.float64)
            shape = output.get("shape")
            if isinstance(shape, list) and math.prod(shape) == values.size:
                values = values.reshape(shape)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise RemoteOracleError(f"{where}: malformed answer ({exc!r})") from None
        return labels_from_output(values, len(chunk), where=where)
