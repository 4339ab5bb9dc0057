"""Label oracles behind HTTP: the labelleak protocol, the Open Inference Protocol (v2) and REST specs."""

from labelleak.errors import RemoteOracleError, RemoteOutageError
from labelleak.oracle.remote.base import RemoteOracle
from labelleak.oracle.remote.transport import RetryPolicy, Transport

__all__ = ["RemoteOracle", "RemoteOracleError", "RemoteOutageError", "RetryPolicy", "Transport"]
