"""Strength sweeps of ``labelleak defend --sweep``: each defense family at a grid of strengths.

A sweep is a list of defense specifications (``none`` first, the undefended and no-DP point, then
``l2=1e-05``, ``l2=0.0001``, ...), each audited into its own checkpointed folder by :func:`run_audits`, the one
place that runs a batch of audits (a parallel backend replaces its loop). Models come from the model cache, and
with ``resume`` a point whose ``results.json`` matches its config is read back instead of audited again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from labelleak.data.cache import DatasetCache
from labelleak.errors import InvalidInputError
from labelleak.logs import get_logger
from labelleak.pipeline.audit import run_audit
from labelleak.pipeline.config import AuditConfig
from labelleak.pipeline.defenses import parse_defense
from labelleak.pipeline.parallel import executor_for, train_in_parallel

log = get_logger(__name__)

# strengths per family, weakest first; ``None``: the defense takes no strength
DEFAULT_GRIDS: dict[str, tuple[float | int | None, ...]] = {
    "l2": (1e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2),
    "l1": (1e-6, 1e-5, 1e-4, 1e-3),
    "dropout": (0.1, 0.25, 0.5, 0.75),
    "label-smoothing": (0.05, 0.1, 0.2, 0.4),
    "early-stopping": (10, 5, 2, 1),  # patience in epochs: less patience, stronger defense
    "relaxloss": (0.25, 0.5, 1.0, 1.5),
    "advreg": (0.1, 0.3, 1.0, 3.0),
    "dp": (32, 16, 8, 4, 2, 1),  # epsilon: smaller is stronger; "no DP" is the sweep's "none" point
    "memguard": (0.5, 1.0, 2.0),
    "top1": (None,),
    "round": (3, 2, 1),  # decimals kept: fewer is stronger
}
FAMILIES = tuple(DEFAULT_GRIDS)
_GRID = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=\s*\[([^\[\]]*)\]\s*$")


def _family(name: str) -> str:
    family = name.strip()
    if family not in DEFAULT_GRIDS:
        raise InvalidInputError(f"unknown defense family {family!r} for a sweep; choose from {', '.join(FAMILIES)}")
    return family


def point_spec(family: str, strength: float | int | None) -> str:
    """The defense specification of one point, e.g. ``l2=0.0001`` or ``top1``."""
    return family if strength is None else f"{family}={strength:g}"


def parse_grid(text: str) -> tuple[str, tuple[float, ...]]:
    """``FAMILY=[v1,v2,...]`` (e.g. ``l2=[1e-4,5e-4,1e-3]``) into the family and its strengths, each checked."""
    match = _GRID.match(text)
    if match is None:
        raise InvalidInputError(f"--grid: expected FAMILY=[v1,v2,...] such as l2=[1e-4,5e-4], got {text!r}")
    family = _family(match.group(1))
    if DEFAULT_GRIDS[family] == (None,):
        raise InvalidInputError(f"--grid {family}: this defense takes no strength")
    raw = [v.strip() for v in match.group(2).split(",") if v.strip()]
    if not raw:
        raise InvalidInputError(f"--grid {family}: expected at least one strength, got {text!r}")
    values = []
    for v in raw:
        try:
            values.append(float(v))
        except ValueError:
            raise InvalidInputError(f"--grid {family}: expected numbers, got {v!r}") from None
        parse_defense(point_spec(family, values[-1]))  # the defense's own checks (e.g. integer patience)
    return family, tuple(values)


def sweep_defenses(families: Iterable[str] | None = None, grids: Iterable[str] = ()) -> list[str]:
    """``none`` and one specification per (family, strength): ``families`` (default all) at their default
    strengths, each ``grids`` entry (``FAMILY=[...]``) replacing its family's strengths (and adding the family)."""
    chosen = [_family(f) for f in families] if families is not None else list(FAMILIES)
    if not chosen:
        raise InvalidInputError(f"--defenses: expected family names for a sweep; choose from {', '.join(FAMILIES)}")
    strengths: dict[str, tuple[Any, ...]] = {f: DEFAULT_GRIDS[f] for f in chosen}
    for text in grids:
        family, values = parse_grid(text)
        strengths[family] = values
    specs = ["none"] + [point_spec(f, v) for f, values in strengths.items() for v in values]
    return list(dict.fromkeys(specs))


_VOLATILE = ("progress", "resume", "fresh", "out")


def _comparable(config: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in config.items() if k not in _VOLATILE}, sort_keys=True, default=str)


def finished_results(cfg: AuditConfig) -> dict[str, Any] | None:
    """The results of a finished audit in ``cfg.out`` made with the same config, or ``None``."""
    out = Path(cfg.out)
    if not (out / "results.json").is_file() or not (out / "arrays.npz").is_file():
        return None
    try:
        results = json.loads((out / "results.json").read_text())
    except json.JSONDecodeError:
        return None
    same = _comparable(results.get("config", {})) == _comparable(json.loads(json.dumps(cfg.to_dict())))
    return results if same else None


def run_audits(
    configs: list[AuditConfig], *, resume: bool = False, datasets: DatasetCache | None = None
) -> list[dict[str, Any]]:
    """Run a batch of independent audits and return their results in order: THE call site for an executor.

    With ``--backend ray`` every target still to audit is trained first, in parallel, as Ray tasks sharing the model
    cache; the audits then load them. Each audit writes into its own ``cfg.out`` (checkpointed). With ``resume``,
    finished audits are read back and interrupted ones continue from their checkpoint.
    """
    if not configs:
        return []
    datasets = datasets or DatasetCache()
    todo = [cfg for cfg in configs if not (resume and finished_results(cfg))]
    with executor_for(configs[0]) as executor:
        train_in_parallel(todo, executor)
    results = []
    for i, cfg in enumerate(configs, 1):
        done = finished_results(cfg) if resume else None
        log.info("[%d/%d] %s%s", i, len(configs), cfg.out, ": finished earlier" if done else "")
        results.append(done if done is not None else run_audit(cfg.replace(resume=resume), datasets=datasets))
    return results
