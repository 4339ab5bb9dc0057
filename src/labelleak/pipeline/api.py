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
from labelleak.pipeline.config import AuditConfig, from_mapping, load_config
from labelleak.pipeline.fields import NOT_GIVEN, NotGiven
from labelleak.pipeline.sections import Layout
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


def _listed(values: Sequence[Any] | None | NotGiven) -> list[Any] | str | None | NotGiven:
    """A sequence as a list; text (``"gap,transfer"``) is read by the configuration."""
    return list(values) if isinstance(values, Sequence) and not isinstance(values, str) else values


def _text(value: str | Path | None | NotGiven) -> str | None | NotGiven:
    return str(value) if isinstance(value, Path) else value


_NOT_CONFIG_KEYS = frozenset({"config_file", "target", "members", "nonmembers", "shadow", "config", "print_table"})


def _as_config(key: str, value: Any) -> Any:
    """An argument of :func:`audit` as its configuration key holds it: sequences as lists, paths as text."""
    if key in ("attacks", "input_shape", "bounds", "mean", "std"):
        return _listed(value)
    return _text(value) if key in ("out", "cache_dir") else value


def audit(
    config_file: str | Path | None = None,
    *,
    target: LabelOracle | str | Path | None = None,
    members: DataArg = None,
    nonmembers: DataArg = None,
    shadow: DataArg = None,
    dataset: str | NotGiven = NOT_GIVEN,
    data: str | None | NotGiven = NOT_GIVEN,
    attacks: Sequence[str] | NotGiven = NOT_GIVEN,
    queries: int | None | NotGiven = NOT_GIVEN,
    max_total_queries: int | None | NotGiven = NOT_GIVEN,
    lira_models: int | NotGiven = NOT_GIVEN,
    n_boot: int | NotGiven = NOT_GIVEN,
    claimed_epsilon: float | None | NotGiven = NOT_GIVEN,
    claimed_delta: float | NotGiven = NOT_GIVEN,
    seed: int | NotGiven = NOT_GIVEN,
    out: str | Path | NotGiven = NOT_GIVEN,
    input_shape: Sequence[int] | None | NotGiven = NOT_GIVEN,
    bounds: tuple[float, float] | None | NotGiven = NOT_GIVEN,
    mean: Sequence[float] | None | NotGiven = NOT_GIVEN,
    std: Sequence[float] | None | NotGiven = NOT_GIVEN,
    layout: Layout | NotGiven = NOT_GIVEN,
    output: str | None | NotGiven = NOT_GIVEN,
    n_classes: int | None | NotGiven = NOT_GIVEN,
    shadow_arch: str | None | NotGiven = NOT_GIVEN,
    arch: str | NotGiven = NOT_GIVEN,
    width: float | NotGiven = NOT_GIVEN,
    epochs: int | NotGiven = NOT_GIVEN,
    train_size: int | NotGiven = NOT_GIVEN,
    eval_size: int | None | NotGiven = NOT_GIVEN,
    canaries: int | NotGiven = NOT_GIVEN,
    noise_samples: int | NotGiven = NOT_GIVEN,
    thresholds: bool | NotGiven = NOT_GIVEN,
    checkpoint: bool | NotGiven = NOT_GIVEN,
    resume: bool | NotGiven = NOT_GIVEN,
    cache_dir: str | Path | NotGiven = NOT_GIVEN,
    progress: bool | NotGiven = NOT_GIVEN,
    config: AuditConfig | None = None,
    print_table: bool = False,
) -> AuditResults:
    """Run a membership audit and write ``results.json``, ``scores.csv`` and the plots to ``out``.

    Example (labelleak trains the target): ``labelleak.audit(dataset="digits", attacks=["gap"], out="out")``;
    your own model: ``labelleak.audit(target=TorchOracle(net, input_shape=(1, 8, 8), n_classes=10),
    members=(xm, ym), nonmembers=(xn, yn), shadow=(xs, ys), attacks=["gap", "boundary-hsja"])``.

    An argument left out takes its value from ``config`` or ``config_file``, else the default; ``None`` is a value
    where the key allows nothing (``queries=None``: no per-candidate cap; ``eval_size=None``: every candidate).
    """
    options = {k: _as_config(k, v) for k, v in locals().items() if k not in _NOT_CONFIG_KEYS}  # the keys given here
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
    if not in_memory:
        options.update({k: str(v) if v is not None else None for k, v in files.items()})
    base = config.to_dict() if config is not None else {}
    given = {**base, **{k: v for k, v in options.items() if v is not NOT_GIVEN}}  # None is a value: "nothing"
    cfg = (load_config(config_file, **given) if config_file else from_mapping(given, source="audit")).validate()
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
