"""The audit: setup -> attacks -> thresholds -> metrics -> files. Orchestration only; no attack math here."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from labelleak import __version__
from labelleak.attacks import Attack, AttackResult, Status, create_attack
from labelleak.attacks.registry import attack_names
from labelleak.errors import UnknownNameError
from labelleak.metrics import summarize, threshold_best_balanced_accuracy
from labelleak.pipeline.config import AuditConfig, make_config
from labelleak.pipeline.setup import AuditSetup, prepare
from labelleak.report import plot_roc, print_audit_table, write_json, write_scores_csv


def attack_params(name: str, cfg: AuditConfig, setup: AuditSetup) -> dict[str, Any]:
    """Constructor arguments the audit passes to the attack registered as ``name``."""
    if name.startswith("transfer"):
        return {"arch": setup.target.spec.arch, "width": cfg.width, "epochs": cfg.epochs, "seed": cfg.seed}
    return {}


def _calibrate(attack: Attack, result: AttackResult, setup: AuditSetup, cfg: AuditConfig) -> tuple[float, str]:
    """Threshold by best balanced accuracy on data whose membership the adversary knows.

    Attacks that train their own shadow model report its members/non-members scores (``extras["calibration"]``);
    the others are run once more against the adversary's shadow model, whose members are shadow-train.
    """
    cal = result.extras.get("calibration")
    if cal is not None:
        m_s, n_s = np.asarray(cal["member_scores"]), np.asarray(cal["nonmember_scores"])
        source = "shadow-model-calibration"
    else:
        n = len(setup.members)
        sd = setup.shadow_data
        x = np.concatenate([sd.x_train[:n], sd.x_test[:n]])
        y = np.concatenate([sd.y_train[:n], sd.y_test[:n]])
        cal_result = attack(setup.shadow_oracle, x, y, shadow=sd, max_queries_per_sample=cfg.queries)
        m_s, n_s = cal_result.scores[:n], cal_result.scores[n:]
        source = "shadow-model-attack"
    is_member = np.r_[np.ones(len(m_s), bool), np.zeros(len(n_s), bool)]
    return threshold_best_balanced_accuracy(is_member, np.concatenate([m_s, n_s])), source


def _attack_entry(result: AttackResult, is_member: np.ndarray, threshold: float, source: str,
                  cfg: AuditConfig) -> dict[str, Any]:
    entry: dict[str, Any] = {"threat_model": result.threat_model}
    entry.update(summarize(is_member, result.scores, threshold=threshold, n_boot=cfg.n_boot, seed=cfg.seed))
    entry["threshold_source"] = source
    entry.update({
        "queries_per_sample": result.queries_per_sample,
        "max_queries_per_sample": int(result.queries.max()) if len(result.queries) else 0,
        "setup_queries": result.setup_queries,
        "seconds": result.seconds,
        "status_counts": result.status_counts(),
        "params": result.params,
    })
    entry.update({k: v for k, v in result.extras.items() if k != "calibration"})
    return entry


def run_audit(cfg: AuditConfig, *, console: Console | None = None) -> dict[str, Any]:
    """Run the whole audit for ``cfg`` and write ``results.json``, ``scores.csv`` and ``roc.png`` to ``cfg.out``."""
    cfg.validate()
    unknown = [a for a in cfg.attacks if a not in attack_names()]
    if unknown:
        raise UnknownNameError(f"unknown attack(s) {', '.join(unknown)}; choose from {', '.join(attack_names())}")
    console = console or Console(stderr=True, quiet=not cfg.progress)
    started = time.perf_counter()
    setup = prepare(cfg)
    idx, x, y, is_member = setup.candidates()
    results: dict[str, Any] = {
        "labelleak_version": __version__,
        "dataset": {"name": setup.dataset.name, "source": setup.dataset.source, "n_pool": len(setup.dataset),
                    "n_classes": setup.dataset.n_classes, "input_shape": list(setup.dataset.input_shape)},
        "config": cfg.to_dict(),
        "split": setup.split.sizes(),
        "target": {"arch": setup.target.spec.arch, "train_accuracy": setup.target.train_accuracy,
                   "test_accuracy": setup.target.test_accuracy, "model_dir": str(setup.target.path),
                   "loaded_from_cache": setup.target.cached},
        "shadow": {"train_accuracy": setup.shadow.train_accuracy, "test_accuracy": setup.shadow.test_accuracy},
        "attacks": {},
    }
    rows: list[dict[str, Any]] = []
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in cfg.attacks:
        attack = create_attack(name, **attack_params(name, cfg, setup))
        console.print(f"running {name} on {len(x)} candidates")
        result = attack(setup.oracle, x, y, shadow=setup.shadow_data, max_queries_per_sample=cfg.queries,
                        progress=cfg.progress)
        threshold, source = _calibrate(attack, result, setup, cfg)
        results["attacks"][name] = _attack_entry(result, is_member, threshold, source, cfg)
        curves[name] = (is_member, result.scores)
        rows += [{"attack": name, "sample_index": i, "is_member": m, "score": s, "queries": q,
                  "status": Status(st).name.lower()}
                 for i, m, s, q, st in zip(idx, is_member, result.scores, result.queries, result.status)]
    results["seconds_total"] = time.perf_counter() - started
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_scores_csv(out / "scores.csv", rows)
    plot_roc(curves, out / "roc.png", title=f"{setup.dataset.name}: label-only membership inference")
    write_json(out / "results.json", results)
    return results


def audit(config_file: str | Path | None = None, *, print_table: bool = False, **options: Any) -> dict[str, Any]:
    """Python entry point: ``labelleak.audit(dataset="digits", attacks=["gap", "transfer"], out="out")``.

    Takes the same keys as the CLI and YAML configs; returns the content of ``results.json``.
    """
    cfg = make_config(config_file, **options)
    results = run_audit(cfg)
    if print_table:
        print_audit_table(results)
    return results
