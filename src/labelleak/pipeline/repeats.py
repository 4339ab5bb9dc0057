"""``--repeats N``: the same audit (or reproduction) under seeds ``seed .. seed+N-1``, then their pooled numbers.

Orchestration only. Each seed's audit is :func:`run_audit` into ``OUT/seed-<s>/``, a complete audit folder
(results.json, scores.csv, report.html, its own checkpoint), so ``--resume`` continues the interrupted seed and
reads finished ones back. :mod:`labelleak.report.repeats` pools their results (Rubin's rules,
:mod:`labelleak.seeds`) into ``OUT/repeats.json`` and ``OUT/report.html``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from labelleak.data.cache import DatasetCache
from labelleak.errors import InvalidInputError
from labelleak.logs import get_logger
from labelleak.pipeline.audit import run_audit
from labelleak.pipeline.checkpoint import finished_audit
from labelleak.pipeline.config import AuditConfig
from labelleak.pipeline.plan import load_plan
from labelleak.pipeline.reproduce import default_out, run_reproduce
from labelleak.report.files import jsonable
from labelleak.report.repeats import (
    SEED_CHANGES,
    aggregate_repeats,
    seed_folder,
    write_pooled_outputs,
    write_repeats_outputs,
)

log = get_logger(__name__)


def seed_configs(cfg: AuditConfig) -> list[AuditConfig]:
    """One single-seed audit per repeat: seeds ``cfg.seed + i``, each into ``OUT/seed-<s>`` (repeats 1, so each
    folder is what ``labelleak audit --seed s --out OUT/seed-<s>`` writes)."""
    return [
        cfg.replace(seed=cfg.seed + i, repeats=1, out=str(Path(cfg.out) / seed_folder(cfg.seed + i)))
        for i in range(cfg.repeats)
    ]


def _finished(cfg: AuditConfig) -> dict[str, Any] | None:
    """A finished audit in ``cfg.out`` with ``cfg``'s options (its results.json), or ``None``."""
    return finished_audit(cfg.out, cfg.to_dict())


def run_repeats(cfg: AuditConfig, *, datasets: DatasetCache | None = None) -> dict[str, Any]:
    """Run ``cfg.repeats`` (>= 2) audits, one per seed, and write their pooled numbers; returns ``repeats.json``.

    With ``cfg.resume``, a seed whose folder holds finished results with the same options is read back, and an
    interrupted one continues from its checkpoint."""
    cfg.validate()
    if cfg.repeats < 2:
        raise InvalidInputError(f"repeats: pooling needs at least 2 seeds, got {cfg.repeats}; run_audit runs one")
    datasets = datasets or DatasetCache()  # every seed reads the same file: load it once
    runs = []
    for i, one in enumerate(seed_configs(cfg), 1):
        results = _finished(one) if cfg.resume else None
        log.info("[%d/%d] seed %d%s", i, cfg.repeats, one.seed, ": finished earlier" if results else "")
        if results is None:
            run_audit(one, datasets=datasets)
            results = json.loads((Path(one.out) / "results.json").read_text())  # as written: NaN as null
        runs.append((one.seed, seed_folder(one.seed), results))
    trains_target = not (cfg.is_remote or cfg.model)
    aggregate = aggregate_repeats(runs, config=jsonable(cfg.to_dict()), trains_target=trains_target)
    write_repeats_outputs(cfg.out, aggregate)
    return aggregate


def run_reproduce_repeats(
    experiment: str | Path,
    *,
    repeats: int,
    scale: str = "cpu",
    out: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """``labelleak reproduce --repeats N``: the experiment under seeds ``seed .. seed+N-1``, each a complete
    reproduction in ``OUT/seed-<s>/``, then every run of the plan pooled over the seeds (Rubin's rules, as
    ``audit --repeats``) into ``OUT/pooled/<run>/`` and ``OUT/pooled.{json,md,csv}``; returns ``pooled.json``."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 2:
        raise InvalidInputError(f"repeats: pooling needs at least 2 seeds, got {repeats!r}")
    overrides = dict(overrides or {})
    out = Path(out) if out is not None else default_out(experiment, scale)
    first = overrides.get("seed", load_plan(experiment, scale=scale, overrides=overrides).runs[0].config.seed)
    seeds = [int(first) + i for i in range(repeats)]
    summaries = []
    for i, seed in enumerate(seeds, 1):
        log.info("seed %d (%d of %d)", seed, i, repeats)
        summaries.append(
            run_reproduce(
                experiment,
                scale=scale,
                out=out / seed_folder(seed),
                overrides={**overrides, "seed": seed},
                resume=resume,
                progress=progress,
            )
        )
    points = []
    for run in summaries[0]["runs"]:
        folder = run["folder"]
        here = out / "pooled" / folder
        runs = []
        for seed in seeds:
            where = out / seed_folder(seed) / "runs" / folder
            results = json.loads((where / "results.json").read_text())
            runs.append((seed, os.path.relpath(where, here), results))
        config = {**run["config"], "seed": seeds[0], "repeats": repeats}
        aggregate = aggregate_repeats(runs, config=jsonable(config), trains_target=True)
        points.append({"folder": folder, "point": run["point"], "group": run["group"], "aggregate": aggregate})
    pooled = {
        "experiment": summaries[0]["experiment"],
        "scale": scale,
        "repeats": repeats,
        "seeds": seeds,
        "seed_changes": SEED_CHANGES[True],
        "folders": [seed_folder(s) for s in seeds],
        "seconds": sum(float(s.get("seconds") or 0.0) for s in summaries),
        "points": points,
    }
    write_pooled_outputs(out, pooled)
    return pooled
