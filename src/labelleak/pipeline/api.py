"""The Python front door: ``labelleak.audit(...)`` with a real signature, returning a typed result.

A target is any :class:`~labelleak.oracle.LabelOracle` (torch, sklearn, callable, ONNX, HTTP), a model file, a
URL, or nothing (labelleak trains one on ``dataset``). Members, non-members and the shadow pool are ``(x, y)``
arrays or files. Everything else is an audit key (:class:`~labelleak.pipeline.config.AuditConfig`); the common ones
are spelled out here, the rest come through ``config`` (an ``AuditConfig`` or a YAML file).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labelleak.data.candidates import load_labelled
from labelleak.errors import InvalidInputError
from labelleak.oracle import LabelOracle
from labelleak.pipeline.audit import run_audit
from labelleak.pipeline.config import AuditConfig, make_config
from labelleak.pipeline.setup import OwnData, target_from_config

Labelled = tuple[np.ndarray, np.ndarray]
DataArg = Labelled | str | Path | None


@dataclass(frozen=True)
class AuditResults:
    """The content of ``results.json`` with typed top-level fields; ``results["attacks"]`` works as on a dict."""

    attacks: dict[str, dict[str, Any]]
    dataset: dict[str, Any]
    config: dict[str, Any]
    split: dict[str, Any]
    target: dict[str, Any]
    shadow: dict[str, Any]
    labelleak_version: str
    seconds_total: float
    out: Path
    extra: dict[str, Any] = field(default_factory=dict)  # keys beyond the typed ones: provenance, remote spend, ...
    keys: tuple[str, ...] = ()  # results.json's key order

    @classmethod
    def from_dict(cls, results: dict[str, Any], out: str | Path) -> AuditResults:
        names = {f.name for f in dataclasses.fields(cls)} - {"out", "extra", "keys"}
        extra = {k: v for k, v in results.items() if k not in names}
        return cls(**{k: results[k] for k in names}, out=Path(out), extra=extra, keys=tuple(results))

    def to_dict(self) -> dict[str, Any]:
        """Exactly what ``results.json`` holds (same keys, same order)."""
        typed = ("labelleak_version", "dataset", "config", "split", "target", "shadow", "attacks", "seconds_total")
        values = {**{k: getattr(self, k) for k in typed}, **self.extra}
        return {k: values[k] for k in (self.keys or tuple(values))}

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def auc(self, attack: str) -> float:
        return float(self.attacks[attack]["auc"])

    def __str__(self) -> str:
        lines = [f"labelleak audit of {self.dataset.get('name')} ({self.out}/results.json)"]
        for name, e in self.attacks.items():
            tpr = e.get("tpr_at_fpr", {}).get("0.01")
            shown = "n/a" if tpr is None else f"{tpr:.3f}"  # None: too few non-members to resolve 1% FPR
            lines.append(
                f"  {name:<20} AUC {e['auc']:.3f}  TPR@1%FPR {shown}  ({e['queries_per_sample']:.0f} q/sample)"
            )
        return "\n".join(lines)


def _labelled(part: DataArg, what: str, oracle: LabelOracle) -> Labelled:
    if part is None:
        raise InvalidInputError(f"audit: a target needs {what}=(x, y) or a file")
    if isinstance(part, (str, Path)):
        return load_labelled(part, what, oracle.input_shape, oracle.bounds)
    if not isinstance(part, tuple) or len(part) != 2:
        raise InvalidInputError(f"audit: {what} must be (x, y) or a file path, got {type(part).__name__}")
    return np.asarray(part[0]), np.asarray(part[1])


def audit(
    config_file: str | Path | None = None,
    *,
    target: LabelOracle | str | Path | None = None,
    members: DataArg = None,
    nonmembers: DataArg = None,
    shadow: DataArg = None,
    dataset: str | None = None,
    data: str | None = None,
    attacks: Sequence[str] | None = None,
    queries: int | None = None,
    seed: int | None = None,
    out: str | Path | None = None,
    input_shape: Sequence[int] | None = None,
    bounds: tuple[float, float] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    layout: str | None = None,
    output: str | None = None,
    n_classes: int | None = None,
    shadow_arch: str | None = None,
    arch: str | None = None,
    width: float | None = None,
    epochs: int | None = None,
    train_size: int | None = None,
    eval_size: int | None = None,
    noise_samples: int | None = None,
    thresholds: bool | None = None,
    checkpoint: bool | None = None,
    resume: bool | None = None,
    cache_dir: str | Path | None = None,
    progress: bool | None = None,
    config: AuditConfig | None = None,
    print_table: bool = False,
) -> AuditResults:
    """Run a membership audit and write ``results.json``, ``scores.csv`` and the plots to ``out``.

    Example (labelleak trains the target): ``labelleak.audit(dataset="digits", attacks=["gap"], out="out")``;
    your own model: ``labelleak.audit(target=TorchOracle(net, input_shape=(1, 8, 8), n_classes=10),
    members=(xm, ym), nonmembers=(xn, yn), shadow=(xs, ys), attacks=["gap", "boundary-hsja"])``.
    """
    if config is not None and config_file is not None:
        raise InvalidInputError("audit: give config (an AuditConfig) or config_file (YAML), not both")
    in_memory = isinstance(target, LabelOracle) or any(isinstance(p, tuple) for p in (members, nonmembers, shadow))
    where = str(target) if isinstance(target, (str, Path)) else None
    files = {
        "members": members,
        "nonmembers": nonmembers,
        "shadow": shadow,
        "target": where if where and where.startswith(("http://", "https://")) else None,
        "model": where if where and not where.startswith(("http://", "https://")) else None,
    }
    options = {
        "dataset": dataset,
        "data": data,
        "attacks": list(attacks) if attacks is not None else None,
        "queries": queries,
        "seed": seed,
        "out": str(out) if out is not None else None,
        "input_shape": list(input_shape) if input_shape is not None else None,
        "bounds": list(bounds) if bounds is not None else None,
        "mean": list(mean) if mean is not None else None,
        "std": list(std) if std is not None else None,
        "layout": layout,
        "output": output,
        "n_classes": n_classes,
        "shadow_arch": shadow_arch,
        "arch": arch,
        "width": width,
        "epochs": epochs,
        "train_size": train_size,
        "eval_size": eval_size,
        "noise_samples": noise_samples,
        "thresholds": thresholds,
        "checkpoint": checkpoint,
        "resume": resume,
        "cache_dir": str(cache_dir) if cache_dir is not None else None,
        "progress": progress,
    }
    if not in_memory:
        options.update({k: str(v) if v is not None else None for k, v in files.items()})
    base = config.to_dict() if config is not None else {}
    cfg = make_config(config_file, **{**base, **{k: v for k, v in options.items() if v is not None}})
    if in_memory:
        oracle = target if isinstance(target, LabelOracle) else _oracle_for_path(cfg, files)
        own = OwnData(
            *(
                _labelled(p, w, oracle)
                for w, p in (("members", members), ("nonmembers", nonmembers), ("shadow", shadow))
            )
        )
        results = run_audit(cfg, target=oracle, data=own)
    else:
        results = run_audit(cfg)
    if print_table:
        from labelleak.report import print_audit_table

        print_audit_table(results)
    return AuditResults.from_dict(results, cfg.out)


def _oracle_for_path(cfg: AuditConfig, files: dict[str, Any]) -> LabelOracle:
    if files["target"]:
        from labelleak.oracle.http import HttpOracle

        return HttpOracle(files["target"])
    if files["model"]:
        return target_from_config(cfg.replace(model=files["model"]))
    raise InvalidInputError("audit: (x, y) arrays need a target (a LabelOracle, a model file or a URL)")
