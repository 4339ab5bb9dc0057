"""Open a remote target by its protocol: the one place that turns where a target answers into its oracle."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from labelleak.oracle.remote.base import RemoteOracle
from labelleak.oracle.remote.labelleak import LabelleakOracle
from labelleak.oracle.remote.rest import RestOracle, RestSpec
from labelleak.oracle.remote.transport import RetryPolicy, Transport
from labelleak.oracle.remote.v2 import V2Oracle

RemoteProtocol = Literal["labelleak", "v2", "rest"]
PROTOCOLS: tuple[RemoteProtocol, ...] = get_args(RemoteProtocol)


@dataclass(frozen=True)
class Endpoint:
    """Where a remote target answers and how to ask it.

    ``url`` for the labelleak and v2 protocols; ``rest_spec`` (a YAML file with the URL, headers, body and labels
    path) for ``rest``. ``model_name``, ``input_shape``, ``bounds`` and ``n_classes`` describe a v2 model whose
    metadata does not say them.
    """

    protocol: RemoteProtocol = "labelleak"
    url: str | None = None
    rest_spec: str | None = None
    model_name: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None
    bounds: tuple[float, float] | None = None
    n_classes: int | None = None


def connect(endpoint: Endpoint, *, policy: RetryPolicy, concurrency: int = 1) -> RemoteOracle:
    """The oracle of ``endpoint``, sending up to ``concurrency`` requests at once under ``policy``; the connection
    is closed again when the target's metadata cannot be read."""
    if endpoint.protocol == "rest":
        assert endpoint.rest_spec is not None
        return RestOracle.from_spec(RestSpec.load(endpoint.rest_spec), policy=policy, concurrency=concurrency)
    assert endpoint.url is not None
    transport = Transport(endpoint.url, policy=policy, headers=endpoint.headers, concurrency=concurrency)
    try:
        if endpoint.protocol == "v2":
            assert endpoint.model_name is not None
            return V2Oracle(
                transport,
                model_name=endpoint.model_name,
                input_shape=endpoint.input_shape,
                bounds=endpoint.bounds,
                n_classes=endpoint.n_classes,
            )
        return LabelleakOracle(transport)
    except BaseException:
        transport.close()
        raise
