"""Audit setup for a target labelleak did not train: a model file, a remote URL or any label oracle.

The candidates and the adversary's shadow pool come from the auditor (files, or arrays from Python). Members are
candidates ``0..M-1`` in the order of their file, non-members ``M..M+N-1``: those are the ``sample_index`` values of
``scores.csv``. The shadow pool is cut in two halves (seeded) to train the adversary's shadow model, with the
architecture ``shadow_arch`` (default: chosen from the input shape, as ``arch=auto`` does).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from labelleak.attacks.base import ShadowData
from labelleak.data.candidates import KINDS, load_labelled
from labelleak.errors import InvalidInputError
from labelleak.models import ModelSpec, ModelStore, build_model
from labelleak.oracle import LabelOracle, TorchOracle
from labelleak.oracle.probe import probe_oracle
from labelleak.pipeline.config import AuditConfig
from labelleak.pipeline.setup import AuditSetup, _settings, auto_arch, train_or_load

Labelled = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class OwnData:
    """The auditor's labelled samples: member and non-member candidates, and the adversary's shadow pool."""

    members: Labelled
    nonmembers: Labelled
    shadow: Labelled

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for x, y in (self.members, self.nonmembers, self.shadow):
            h.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
            h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
        return h.hexdigest()[:16]


def load_own_data(cfg: AuditConfig, shape: tuple[int, ...], bounds: tuple[float, float]) -> OwnData:
    """Members, non-members and shadow pool from the files named in ``cfg``."""
    parts = []
    for what in ("members", "nonmembers", "shadow"):
        path = getattr(cfg, what)
        if not path:
            raise InvalidInputError(f"this audit needs --{what} FILE ({KINDS})")
        parts.append(load_labelled(path, what, shape, bounds))
    return OwnData(*parts)


def check_own_data(data: OwnData, oracle: LabelOracle) -> OwnData:
    """Arrays as float32/int64, of the oracle's sample shape, within its bounds, with labels in its classes."""
    clean = []
    lo, hi = oracle.bounds
    for what, (x, y) in zip(("members", "nonmembers", "shadow"), (data.members, data.nonmembers, data.shadow)):
        x, y = np.ascontiguousarray(x, dtype=np.float32), np.asarray(y)
        if tuple(x.shape[1:]) != oracle.input_shape or len(x) != len(y) or len(x) == 0:
            raise InvalidInputError(
                f"{what}: expected (x, y) with x of shape (N, {', '.join(map(str, oracle.input_shape))}) and one "
                f"label per sample, got x {x.shape} and y {y.shape}"
            )
        if y.dtype.kind not in "iu":
            raise InvalidInputError(f"{what}: labels must be integers, got dtype {y.dtype}")
        if not np.isfinite(x).all() or x.min() < lo - 1e-5 or x.max() > hi + 1e-5:
            raise InvalidInputError(f"{what}: values must be finite and lie within the target's bounds [{lo}, {hi}]")
        if y.min() < 0 or y.max() >= oracle.n_classes:
            raise InvalidInputError(
                f"{what}: labels lie in {int(y.min())}..{int(y.max())}, but the target has {oracle.n_classes} "
                f"classes (0..{oracle.n_classes - 1})"
            )
        clean.append((x, y.astype(np.int64)))
    return OwnData(*clean)


def setup_from_oracle(
    cfg: AuditConfig,
    oracle: LabelOracle,
    data: OwnData,
    *,
    dataset: dict[str, Any],
    target: dict[str, Any],
    closers: list | None = None,
) -> AuditSetup:
    """Train (or load) the adversary's shadow model on the shadow pool and lay out the candidates."""
    data = check_own_data(data, oracle)
    (xm, ym), (xn, yn), (xs, ys) = data.members, data.nonmembers, data.shadow
    shape = oracle.input_shape
    order = np.random.default_rng(cfg.seed).permutation(len(xs))
    half = len(xs) // 2
    tr, te = order[:half], order[half:]
    spec = ModelSpec(cfg.shadow_arch or auto_arch(cfg, shape), shape, oracle.n_classes, cfg.width)
    build_model(spec)
    fingerprint = hashlib.sha256(xs.tobytes() + ys.tobytes()).hexdigest()[:16]
    shadow = train_or_load(
        ModelStore(cfg.cache_dir),
        xs,
        ys,
        fingerprint,
        spec,
        _settings(cfg),
        tr,
        te,
        role="shadow",
        progress=cfg.progress,
    )
    x, y = np.concatenate([xm, xn]), np.concatenate([ym, yn])
    return AuditSetup(
        dataset={**dataset, "n_pool": len(x) + len(xs), "n_classes": oracle.n_classes, "input_shape": list(shape)},
        split={"members": len(xm), "nonmembers": len(xn), "shadow_train": len(tr), "shadow_test": len(te)},
        target={"train_accuracy": None, "test_accuracy": None, **target},
        shadow={"train_accuracy": shadow.train_accuracy, "test_accuracy": shadow.test_accuracy},
        arch=spec.arch,
        oracle=oracle,
        shadow_oracle=TorchOracle(shadow.model, input_shape=shape, n_classes=oracle.n_classes, bounds=oracle.bounds),
        sample_index=np.arange(len(x)),
        x=x,
        y=y,
        is_member=np.r_[np.ones(len(xm), bool), np.zeros(len(xn), bool)],
        shadow_data=ShadowData(xs[tr], ys[tr], xs[te], ys[te]),
        closers=list(closers or []),
        inputs_fingerprint=data.fingerprint(),
    )


def target_from_config(cfg: AuditConfig) -> LabelOracle:
    """The label oracle for ``cfg.model``, with the declared shape, bounds and preprocessing."""
    from labelleak.oracle.files import load_target
    from labelleak.oracle.preprocess import Preprocessing

    preprocess = Preprocessing(
        mean=tuple(cfg.mean) if cfg.mean else None,
        std=tuple(cfg.std) if cfg.std else None,
        layout=cfg.layout,  # type: ignore[arg-type]  # validated by AuditConfig
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
    from labelleak.pipeline.config import _from_mapping

    cfg = _from_mapping({k: v for k, v in options.items() if v is not None}, source="options")
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
