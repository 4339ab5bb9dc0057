"""Setup of the auditor's own model: a model file (``cfg.model``) or any label oracle built in Python, with the
candidates and the shadow pool from the auditor (files, or arrays from Python)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

from labelleak.errors import InvalidInputError
from labelleak.oracle import LabelOracle
from labelleak.oracle.probe import probe_oracle
from labelleak.pipeline.config import AuditConfig, from_mapping
from labelleak.pipeline.setup.common import AuditSetup, OwnData, load_own_data, setup_from_oracle


def target_from_config(cfg: AuditConfig) -> LabelOracle:
    """The label oracle for ``cfg.model``, with the declared shape, bounds and preprocessing."""
    from labelleak.oracle.files import load_target
    from labelleak.oracle.preprocess import Preprocessing

    preprocess = Preprocessing(
        mean=tuple(cfg.mean) if cfg.mean else None,
        std=tuple(cfg.std) if cfg.std else None,
        layout=cfg.layout,
    )
    bounds = (float(cfg.bounds[0]), float(cfg.bounds[1])) if cfg.bounds else (0.0, 1.0)
    return load_target(
        str(cfg.model),
        input_shape=tuple(cfg.input_shape) if cfg.input_shape else None,
        n_classes=cfg.n_classes,
        bounds=bounds,
        preprocess=preprocess,
        output=cfg.output,
        trust=tuple(cfg.trust),
    )


def target_from_options(**options: Any) -> LabelOracle:
    """The label oracle of a model file from audit-style options (``model``, ``input_shape="1,28,28"``, ``bounds``,
    ``mean``, ``std``, ``layout``, ``output``, ``n_classes``, ``trust``): ``labelleak serve`` opens a model exactly
    as an audit does, so an audited file and a served one answer alike."""
    cfg = from_mapping({k: v for k, v in options.items() if v is not None}, source="options")
    problems = [p for p in cfg.problems() if p.split(":")[0] in set(options)]
    if problems:
        raise InvalidInputError("; ".join(problems))
    return target_from_config(cfg)


def describe_oracle(oracle: LabelOracle) -> dict[str, Any]:
    """What results.json records about a target given as an oracle."""
    info: dict[str, Any] = {"oracle": type(oracle).__name__, "bounds": list(oracle.bounds)}
    preprocess = getattr(oracle, "preprocess", None)
    if preprocess is not None:
        info["preprocess"] = preprocess.to_dict()
    if getattr(oracle, "output_name", None):
        info["output"] = oracle.output_name  # type: ignore[attr-defined]
    return info


def prepare_model(cfg: AuditConfig) -> AuditSetup:
    """The auditor's model file (``cfg.model``) as the target; candidates and shadow pool from files."""
    oracle = target_from_config(cfg)
    probe_oracle(oracle, seed=cfg.seed)
    data = load_own_data(cfg, oracle.input_shape, oracle.bounds)
    setup = setup_from_oracle(
        cfg,
        oracle,
        data,
        dataset={"name": "own-files", "source": str(cfg.members)},
        target={"model": str(cfg.model), "format": _format(Path(str(cfg.model))), **describe_oracle(oracle)},
    )
    # a changed model file under the same name must not resume from the old one's journal
    return replace(setup, inputs_fingerprint=f"{setup.inputs_fingerprint}-{_file_hash(Path(str(cfg.model)))}")


def _format(path: Path) -> str:
    return "labelleak-folder" if path.is_dir() else path.suffix.lstrip(".").lower() or "torchscript"


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if f.is_file():
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def prepare_oracle(cfg: AuditConfig, oracle: LabelOracle, data: OwnData) -> AuditSetup:
    """Any label oracle built in Python (torch, sklearn, callable, ONNX, HTTP) with arrays from Python."""
    probe_oracle(oracle, seed=cfg.seed)
    return setup_from_oracle(
        cfg, oracle, data, dataset={"name": "own-arrays", "source": "python"}, target=describe_oracle(oracle)
    )
