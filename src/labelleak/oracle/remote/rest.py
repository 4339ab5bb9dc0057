"""Any JSON prediction API, described by a small YAML spec (``--rest-spec FILE``).

.. code-block:: yaml

    url: https://api.example.com/v1/models/digits:predict
    method: POST                      # POST (default) or PUT
    headers:
      Authorization: "Bearer ${EXAMPLE_API_TOKEN}"   # ${NAME}: read from the environment, never written out
    body:                             # the request body; the string "$inputs" is replaced by the batch
      instances: "$inputs"
    inputs: nested                    # nested (each sample as nested lists, default) or flat (one list each)
    labels: predictions[*].label      # where the labels are in the answer (see below)
    batch_size: 32                    # samples per request
    input_shape: [64]
    bounds: [0, 16]
    n_classes: 10

The ``labels`` path is read left to right: ``name`` takes a key of an object, ``[3]`` an item of a list
(``[-1]`` the last), ``[*]`` every item of a list (what follows applies to each); steps are joined by dots, e.g.
``outputs[0].data`` or ``predictions[*].label``. It must lead to one label per sample, or to one row of
scores per sample (reduced to labels by argmax here, never stored). Header values may hold ``${NAME}``
placeholders, filled from the environment when the oracle is built: the secrets stay out of results.json, logs
and error messages.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
import yaml

from labelleak.errors import DataFileError, InvalidInputError, RemoteOracleError
from labelleak.oracle.remote.base import RemoteOracle, decode_json, labels_from_output
from labelleak.oracle.remote.transport import RetryPolicy, Transport

PLACEHOLDER = "$inputs"
KEYS = ("url", "method", "headers", "body", "inputs", "labels", "batch_size", "input_shape", "bounds", "n_classes")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_STEP = re.compile(r"\.?([^.\[\]]+)|\[(-?\d+|\*)\]")

Step = tuple[str, Any]  # ("key", name) | ("index", i) | ("each", None)


def parse_path(path: str) -> list[Step]:
    """The steps of a labels path (``predictions[*].label``); raises ``ValueError`` on bad syntax."""
    steps: list[Step] = []
    pos = 0
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None or (pos == 0 and path.startswith(".")):
            raise ValueError(f"cannot read {path!r} at character {pos + 1}")
        if m.group(1) is not None:
            steps.append(("key", m.group(1)))
        elif m.group(2) == "*":
            steps.append(("each", None))
        else:
            steps.append(("index", int(m.group(2))))
        pos = m.end()
    if not steps:
        raise ValueError("empty path")
    return steps


def follow(value: Any, steps: list[Step]) -> Any:
    """The part of ``value`` that ``steps`` lead to; raises ``LookupError``/``TypeError`` when it is not there."""
    for i, (kind, arg) in enumerate(steps):
        if kind == "each":
            if not isinstance(value, list):
                raise TypeError(f"[*] expects a list, got {type(value).__name__}")
            return [follow(item, steps[i + 1 :]) for item in value]
        if kind == "key":
            if not isinstance(value, dict):
                raise TypeError(f"{arg!r} expects an object, got {type(value).__name__}")
            value = value[arg]
        else:
            if not isinstance(value, list):
                raise TypeError(f"[{arg}] expects a list, got {type(value).__name__}")
            value = value[arg]
    return value


def _count_placeholders(template: Any) -> int:
    if isinstance(template, dict):
        return sum(_count_placeholders(v) for v in template.values())
    if isinstance(template, list):
        return sum(_count_placeholders(v) for v in template)
    return int(template == PLACEHOLDER)


def _fill(template: Any, batch: list) -> Any:
    if isinstance(template, dict):
        return {k: _fill(v, batch) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, batch) for v in template]
    return batch if template == PLACEHOLDER else template


def _positive_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


@dataclass(frozen=True)
class RestSpec:
    """A validated spec; ``headers`` still hold their ``${NAME}`` placeholders (see :meth:`resolved_headers`)."""

    url: str
    method: str
    headers: dict[str, str]
    body: Any
    inputs: str
    labels: str
    batch_size: int
    input_shape: tuple[int, ...]
    bounds: tuple[float, float]
    n_classes: int

    @classmethod
    def from_mapping(cls, raw: Any, *, source: str) -> RestSpec:
        """Check every key at once; one ``InvalidInputError`` lists all the problems."""
        if not isinstance(raw, dict):
            raise InvalidInputError(f"{source}: expected a mapping of keys to values, got {type(raw).__name__}")
        found = []
        unknown = sorted(set(map(str, raw)) - set(KEYS))
        if unknown:
            found.append(f"unknown key(s) {unknown}; valid keys are {list(KEYS)}")
        url = raw.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            found.append(f"url: expected an http(s) URL, got {url!r}")
        method = str(raw.get("method", "POST")).upper()
        if method not in ("POST", "PUT"):
            found.append(f"method: expected POST or PUT, got {raw.get('method')!r}")
        headers = raw.get("headers") or {}
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            found.append("headers: expected a mapping of header names to strings")
            headers = {}
        body = raw.get("body")
        if _count_placeholders(body) != 1:
            found.append(f'body: expected a template holding the string "{PLACEHOLDER}" exactly once')
        inputs = raw.get("inputs", "nested")
        if inputs not in ("nested", "flat"):
            found.append(f"inputs: expected nested or flat, got {inputs!r}")
        labels = raw.get("labels")
        try:
            parse_path(labels) if isinstance(labels, str) else parse_path("")
        except ValueError as exc:
            found.append(f"labels: expected a path such as predictions[*].label ({exc})")
        batch_size = raw.get("batch_size", 32)
        if not _positive_int(batch_size):
            found.append(f"batch_size: expected a positive integer, got {batch_size!r}")
        shape = raw.get("input_shape")
        if not isinstance(shape, list) or not shape or not all(_positive_int(d) for d in shape):
            found.append(f"input_shape: expected a list of positive integers, got {shape!r}")
        bounds = raw.get("bounds")
        if (
            not isinstance(bounds, list)
            or len(bounds) != 2
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
            or not bounds[0] < bounds[1]
        ):
            found.append(f"bounds: expected [low, high] with low < high, got {bounds!r}")
        n_classes = raw.get("n_classes")
        if not _positive_int(n_classes) or n_classes < 2:
            found.append(f"n_classes: expected an integer of at least 2, got {n_classes!r}")
        if found:
            raise InvalidInputError(f"{source}: " + "; ".join(found))
        assert isinstance(shape, list) and isinstance(bounds, list)
        return cls(
            url=str(url),
            method=method,
            headers={str(k): v for k, v in headers.items()},
            body=body,
            inputs=str(inputs),
            labels=str(labels),
            batch_size=int(batch_size),
            input_shape=tuple(int(d) for d in shape),
            bounds=(float(bounds[0]), float(bounds[1])),
            n_classes=int(n_classes),  # type: ignore[arg-type]
        )

    @classmethod
    def load(cls, path: str | Path) -> RestSpec:
        p = Path(path)
        if not p.is_file():
            raise DataFileError(f"REST spec not found: {p}")
        try:
            raw = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise DataFileError(f"REST spec {p} is not valid YAML: {str(exc).splitlines()[0]}") from None
        return cls.from_mapping(raw, source=str(p))

    def resolved_headers(self, environ: dict[str, str] | None = None) -> dict[str, str]:
        """Headers with each ``${NAME}`` filled from the environment; names of unset variables in one error."""
        env = os.environ if environ is None else environ
        wanted = sorted({n for v in self.headers.values() for n in _ENV.findall(v)})
        unset = [n for n in wanted if not env.get(n)]
        if unset:
            raise InvalidInputError(f"REST spec headers: environment variable(s) {', '.join(unset)} not set")
        return {k: _ENV.sub(lambda m: env[m.group(1)], v) for k, v in self.headers.items()}


class RestOracle(RemoteOracle):
    """Labels from a JSON API described by a :class:`RestSpec`."""

    protocol = "rest"

    def __init__(self, transport: Transport, spec: RestSpec, *, max_queries: int | None = None) -> None:
        self.spec = spec
        self._steps = parse_path(spec.labels)
        super().__init__(
            transport,
            input_shape=spec.input_shape,
            n_classes=spec.n_classes,
            bounds=spec.bounds,
            request_batch=spec.batch_size,
            max_queries=max_queries,
        )

    @classmethod
    def from_spec(
        cls,
        spec: RestSpec,
        *,
        policy: RetryPolicy | None = None,
        concurrency: int = 1,
        max_queries: int | None = None,
        transport: Any = None,
    ) -> RestOracle:
        http = Transport(
            spec.url, policy=policy, headers=spec.resolved_headers(), concurrency=concurrency, transport=transport
        )
        return cls(http, spec, max_queries=max_queries)

    def _send(self, chunk: np.ndarray) -> np.ndarray:
        rows = chunk.reshape(len(chunk), -1) if self.spec.inputs == "flat" else chunk
        body = _fill(self.spec.body, rows.tolist())
        answer = self._request(len(chunk), self.spec.method, self.spec.url, json=body)
        try:
            values = follow(decode_json(answer, self.url), self._steps)
        except (LookupError, TypeError, ValueError) as exc:
            raise RemoteOracleError(f"{self.url}: labels not found at {self.spec.labels!r} ({exc})") from None
        return labels_from_output(values, len(chunk), where=self.url)
