"""``labelleak reproduce EXPERIMENT``: run the audits of a packaged experiment plan and summarise them.

Orchestration only: the plan (:mod:`labelleak.pipeline.plan`) says which audits to run, :func:`run_audit` runs
each one into its own folder (checkpointed, so ``--resume`` skips finished audits and continues an interrupted
one), and :mod:`labelleak.report.summaries` turns their results into tables and figures, which
:mod:`labelleak.report.outputs` writes as ``summary.{json,md}``, one CSV per table and ``report.html``.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labelleak._version import __version__
from labelleak.attacks import attack_names
from labelleak.data.cache import DatasetCache
from labelleak.errors import DataFileError, UnknownNameError
from labelleak.logs import get_logger
from labelleak.pipeline.audit import run_audit
from labelleak.pipeline.checkpoint import finished_audit
from labelleak.pipeline.config import AuditConfig
from labelleak.pipeline.parallel import executor_for, train_in_parallel
from labelleak.pipeline.plan import fit_to_pool, load_plan
from labelleak.report.outputs import write_reproduce_outputs
from labelleak.report.summaries import SUMMARIES, RunRecord

log = get_logger(__name__)


def _finished_results(cfg: AuditConfig) -> dict[str, Any] | None:
    """The results of a finished audit in ``cfg.out`` with the same config, or ``None``."""
    return finished_audit(cfg.out, cfg.to_dict())


def _load_arrays(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / "arrays.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def default_out(experiment: str | Path, scale: str) -> Path:
    """``reproduce-out/EXPERIMENT-SCALE`` (a plan file: its name without ``.yaml``)."""
    name = Path(experiment).stem if str(experiment).endswith((".yaml", ".yml")) else str(experiment)
    return Path("reproduce-out") / f"{name}-{scale}"


def run_reproduce(
    experiment: str | Path,
    *,
    scale: str = "cpu",
    out: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every audit of ``experiment`` at ``scale`` and write its summary to ``out``; returns the summary.

    ``overrides`` are audit keys (``dataset``, ``data``, ``epochs``, ...) applied to every run; a key that is
    one of the plan's grid axes (``train_size`` for ``sizes``) replaces that axis.
    """
    out = Path(out) if out is not None else default_out(experiment, scale)
    plan = load_plan(experiment, scale=scale, overrides={**(overrides or {}), "progress": progress}, out=out / "runs")
    # checked before any data is loaded or model trained: otherwise it stops the plan after hours of earlier runs
    unknown = sorted({a for run in plan.runs for a in run.config.attacks} - set(attack_names()))
    if unknown:
        raise UnknownNameError(
            f"experiment {plan.name}: unknown attack(s) {', '.join(unknown)}; choose from {', '.join(attack_names())}"
        )
    first = plan.runs[0].config
    datasets = DatasetCache()  # every run reads the same file: load it once, for this call only
    dataset, _, _ = datasets.load(first.dataset, first.data)
    fit_to_pool(plan, len(dataset), fixed=set(overrides or {}))
    if SUMMARIES.get(plan.kind) is None:
        raise DataFileError(f"experiment {plan.name}: unknown kind {plan.kind!r}; known: {sorted(SUMMARIES)}")
    started = time.perf_counter()
    records = []
    read_back = attacks_back = 0
    with executor_for(first) as executor:  # --backend ray: every run's target trains in parallel first
        cfgs = [run.config.replace(resume=resume) for run in plan.runs]
        train_in_parallel([c for c in cfgs if not (resume and _finished_results(c))], executor)
        for i, (run, cfg) in enumerate(zip(plan.runs, cfgs), 1):
            results = _finished_results(cfg) if resume else None
            log.info("[%d/%d] %s%s", i, len(plan.runs), run.folder, ": finished earlier" if results else "")
            if results is None:
                results = run_audit(cfg, datasets=datasets)
                attacks_back += len(results.get("attacks_from_checkpoint", []))
            else:
                read_back += 1
                attacks_back += len(results.get("attacks", {}))
            records.append(RunRecord(run.point, run.group, results, _load_arrays(Path(cfg.out))))
    out.mkdir(parents=True, exist_ok=True)
    tables, drawn = SUMMARIES[plan.kind](records, out)
    figures = [f for f in drawn if f is not None]  # None: figures skipped without the plots extra
    device = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s))"
    )
    summary = {
        "labelleak_version": __version__,
        "experiment": plan.name,
        "kind": plan.kind,
        "scale": scale,
        "description": plan.description,
        "claim": plan.claim,
        "dataset": f"{dataset.name} ({dataset.source}, {len(dataset)} samples)",
        "pool": plan.pool,
        "device": device,
        "seconds": time.perf_counter() - started,  # this invocation only
        "runs_read_back": read_back,
        "attacks_read_back": attacks_back,
        # the attacks' own run times (searches, their reference models; not target training or threshold
        # calibration), kept with each attack's results and checkpoint: they add up across resumed invocations
        "attack_seconds": sum(
            float(entry.get("seconds") or 0.0) for r in records for entry in r.results.get("attacks", {}).values()
        ),
        "runs": [
            {"point": r.point, "group": r.group, "folder": r.folder, "config": r.config.to_dict()} for r in plan.runs
        ],
        "tables": tables,
        "figures": [f.name for f in figures],
    }
    write_reproduce_outputs(out, summary, tables, figures)
    return summary
