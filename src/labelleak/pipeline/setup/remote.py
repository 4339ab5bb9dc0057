"""Setup of a remote target: the oracle of its protocol (labelleak, v2 or a REST spec), with the candidates and
the shadow pool from the auditor's files."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from labelleak.errors import InvalidInputError
from labelleak.pipeline.config import AuditConfig
from labelleak.pipeline.setup.common import AuditSetup, load_own_data, setup_from_oracle

if TYPE_CHECKING:  # the remote oracles need the serve extra (httpx): imported where a remote audit starts
    from labelleak.oracle.remote import RemoteOracle


def connect_remote(cfg: AuditConfig) -> RemoteOracle:
    """The oracle for ``cfg``'s remote target, with the API key read from ``cfg.api_key_env``."""
    from labelleak.oracle.remote.connect import Endpoint, connect
    from labelleak.oracle.remote.transport import RetryPolicy

    policy = RetryPolicy(timeout=cfg.timeout, retries=cfg.retries, max_wait=cfg.max_retry_wait, window=cfg.retry_window)
    api_key = os.environ.get(cfg.api_key_env) if cfg.api_key_env and cfg.protocol != "rest" else None
    if cfg.api_key_env and cfg.protocol != "rest" and not api_key:
        raise InvalidInputError(f"api_key_env: environment variable {cfg.api_key_env} is not set")
    endpoint = Endpoint(
        protocol=cfg.protocol,
        url=cfg.target,
        rest_spec=cfg.rest_spec,
        model_name=cfg.model_name,
        headers={"X-API-Key": api_key} if api_key else {},
        input_shape=tuple(cfg.input_shape) if cfg.input_shape else None,
        bounds=(float(cfg.bounds[0]), float(cfg.bounds[1])) if cfg.bounds else None,
        n_classes=cfg.n_classes,
    )
    return connect(endpoint, policy=policy, concurrency=cfg.concurrency)


def prepare_remote(cfg: AuditConfig) -> AuditSetup:
    """A target behind ``cfg.target`` (URL) or a REST spec: candidates and the shadow pool come from files."""
    oracle = connect_remote(cfg)
    try:
        data = load_own_data(cfg, oracle.input_shape, oracle.bounds)
        setup = setup_from_oracle(
            cfg,
            oracle,
            data,
            dataset={"name": "remote", "source": oracle.url},
            target={"url": oracle.url, "protocol": oracle.protocol},
            closers=[oracle.close],
        )
    except BaseException:
        oracle.close()
        raise
    setup.remote = oracle
    return setup
