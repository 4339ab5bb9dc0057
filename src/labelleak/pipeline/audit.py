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
from labelleak.errors import BudgetExhaustedError, InvalidInputError, UnknownNameError
from labelleak.metrics import (
    auc,
    summarize,
    threshold_best_balanced_accuracy,
    threshold_from_percentile,
    threshold_sweep,
    tpr_at_fpr,
)
from labelleak.oracle import LabelOracle
from labelleak.oracle.cache import CachedOracle
from labelleak.pipeline.checkpoint import Checkpoint, Interrupted
from labelleak.pipeline.config import AuditConfig, make_config
from labelleak.pipeline.setup import AuditSetup, prepare
from labelleak.report import plot_roc, plot_series, print_audit_table, write_json, write_scores_csv
from labelleak.report.files import write_distances_csv


def attack_params(name: str, cfg: AuditConfig, setup: AuditSetup) -> dict[str, Any]:
    """Constructor arguments the audit passes to the attack registered as ``name``."""
    recipe = {
        "arch": setup.arch,
        "width": cfg.width,
        "epochs": cfg.epochs,
        "lr": cfg.lr,
        "batch_size": cfg.batch_size,
        "lr_schedule": cfg.lr_schedule,
        "cache_dir": cfg.cache_dir,
    }
    if name.startswith("transfer") or name in ("score-nn", "oslo"):
        return {**recipe, "seed": cfg.seed}
    if name.startswith("lira"):
        return {**recipe, "seed": cfg.seed, "n_reference": cfg.lira_models}
    if name in ("augmentation", "noise"):
        return {"seed": cfg.seed, "shadow_recipe": recipe}
    if name == "smoothing":
        return {"sigma": cfg.smoothing_sigma, "n": cfg.smoothing_n, "alpha": cfg.smoothing_alpha, "seed": cfg.seed}
    if name in ("boundary-hsja", "boundary-hsja-linf", "boundary-qeba"):
        return {
            "max_iter": cfg.max_iter,
            "max_eval": cfg.max_eval,
            "init_eval": cfg.init_eval,
            "init_size": cfg.init_size,
            "seed": cfg.seed,
        }
    return {}


def by_queries(result: AttackResult, is_member: np.ndarray) -> list[dict[str, float]]:
    """AUC and TPR at 0.1% / 1% FPR of the best scores within each query milestone (one run, many budgets)."""
    rows = []
    spent = int(result.queries.max()) if len(result.queries) else 0
    for m, scores in sorted(result.extras.get("milestone_scores", {}).items()):
        if m > spent and rows:
            break  # later milestones repeat the final scores
        rows.append(_budget_row(int(m), is_member, scores))
    if rows and rows[-1]["queries"] < spent:
        rows.append(_budget_row(spent, is_member, result.scores))  # the whole budget
    return rows


def _budget_row(queries: int, is_member: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    return {
        "queries": queries,
        "auc": auc(is_member, scores),
        "tpr_at_0.001": tpr_at_fpr(is_member, scores, 0.001),
        "tpr_at_0.01": tpr_at_fpr(is_member, scores, 0.01),
    }


DATA_FREE_TS = (0, 1, 2, 5, *range(10, 101, 10))  # percentiles swept (finer near 0, where it matters most)


def data_free_threshold(
    attack: Attack,
    result: AttackResult,
    is_member: np.ndarray,
    oracle: LabelOracle,
    cfg: AuditConfig,
    *,
    max_total_queries: int | None = None,
) -> dict[str, Any]:
    """Li & Zhang's data-free threshold: attack uniform-noise inputs (non-members by construction), labelled by
    the target, and use the ``top_t``-th percentile of their scores; a sweep over t is reported as well.

    ``max_total_queries`` bounds the target queries spent here (labels and attack together)."""
    if max_total_queries is not None and max_total_queries < cfg.noise_samples:
        raise BudgetExhaustedError(
            f"data-free threshold: {cfg.noise_samples} noise inputs to label, {max_total_queries} queries left"
        )
    rng = np.random.default_rng(cfg.seed + 7919)
    lo, hi = oracle.bounds
    noise = rng.uniform(lo, hi, size=(cfg.noise_samples, *oracle.input_shape)).astype(np.float32)
    labels = oracle.predict_labels(noise)
    left = None if max_total_queries is None else max_total_queries - len(noise)
    noise_result = attack(oracle, noise, labels, max_queries_per_sample=cfg.queries, max_total_queries=left)
    reference = noise_result.scores
    threshold = threshold_from_percentile(reference, cfg.top_t)
    sweep = threshold_sweep(is_member, result.scores, reference, ts=DATA_FREE_TS)
    chosen = threshold_sweep(is_member, result.scores, reference, ts=(cfg.top_t,))[0]
    return {
        "top_t": cfg.top_t,
        "threshold": threshold,
        "accuracy": chosen["accuracy"],
        "precision": chosen["precision"],
        "recall": chosen["recall"],
        "noise_samples": cfg.noise_samples,
        "noise_queries": int(noise_result.queries.sum()) + len(noise),
        "sweep": sweep,
    }


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
        n = int(setup.is_member.sum())
        sd = setup.shadow_data
        x = np.concatenate([sd.x_train[:n], sd.x_test[:n]])
        y = np.concatenate([sd.y_train[:n], sd.y_test[:n]])
        cal_result = attack(
            _oracle_for(attack, setup, shadow=True), x, y, shadow=sd, max_queries_per_sample=cfg.queries
        )
        m_s, n_s = cal_result.scores[:n], cal_result.scores[n:]
        source = "shadow-model-attack"
    is_member = np.r_[np.ones(len(m_s), bool), np.zeros(len(n_s), bool)]
    return threshold_best_balanced_accuracy(is_member, np.concatenate([m_s, n_s])), source


def _oracle_for(attack: Attack, setup: AuditSetup, *, shadow: bool = False) -> LabelOracle:
    """Label-only attacks get the label oracle; score-based baselines the (stronger) score oracle."""
    if attack.threat_model == "scores":
        oracle = setup.shadow_score_oracle if shadow else setup.score_oracle
        if oracle is None:
            raise InvalidInputError(
                f"{attack.name}: needs the target's scores, which a remote label-only target does not give"
            )
        return oracle
    return setup.shadow_oracle if shadow else setup.oracle


def _operating_points(points: dict[str, np.ndarray], is_member: np.ndarray) -> list[dict[str, float]]:
    """TPR and FPR of each one-query operating point (e.g. each OSLO threshold)."""
    return [
        {"strength": float(k), "tpr": float(v[is_member].mean()), "fpr": float(v[~is_member].mean())}
        for k, v in points.items()
    ]


def _attack_entry(
    result: AttackResult, is_member: np.ndarray, threshold: float | None, source: str | None, cfg: AuditConfig
) -> dict[str, Any]:
    entry: dict[str, Any] = {"threat_model": result.threat_model}
    entry.update(summarize(is_member, result.scores, threshold=threshold, n_boot=cfg.n_boot, seed=cfg.seed))
    if source is not None:  # otherwise summarize's own label: the best threshold on the evaluation data
        entry["threshold_source"] = source
    entry.update(
        {
            "queries_per_sample": result.queries_per_sample,
            "max_queries_per_sample": int(result.queries.max()) if len(result.queries) else 0,
            "setup_queries": result.setup_queries,
            "seconds": result.seconds,
            "status_counts": result.status_counts(),
            "params": result.params,
        }
    )
    if "milestone_scores" in result.extras:
        entry["by_queries"] = by_queries(result, is_member)
    if "distances" in result.extras:
        entry["auc_by_norm"] = {
            nm: auc(is_member, np.nan_to_num(d, nan=0.0)) for nm, d in result.extras["distances"].items()
        }
    if "operating_points" in result.extras:
        entry["operating_points"] = _operating_points(result.extras["operating_points"], is_member)
    skip = {"calibration", "milestone_scores", "distances", "operating_points", "per_sample"}
    entry.update({k: v for k, v in result.extras.items() if k not in skip})
    return entry


def _run_one(
    name: str, cfg: AuditConfig, setup: AuditSetup, oracle: LabelOracle, left: int | None = None
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Run one attack on the candidates, choose its threshold, and return its entry and raw arrays.

    With ``cfg.thresholds`` off, no threshold is calibrated (the attack runs once): AUC and TPR@FPR do not need
    one, and the balanced accuracy is then the best one on the evaluation data, labelled as such. ``left`` is what
    the audit's total cap leaves to this attack; ``entry["target_queries"]`` is what it asked of the target.
    """
    attack = create_attack(name, **attack_params(name, cfg, setup))
    # label-only attacks go through the journaling oracle; score and white-box ones need the target itself
    target = oracle if attack.threat_model == "label-only" else _oracle_for(attack, setup)
    result = attack(
        target,
        setup.x,
        setup.y,
        shadow=setup.shadow_data,
        max_queries_per_sample=cfg.queries,
        max_total_queries=left,
        progress=cfg.progress,
    )
    spent = int(result.queries.sum()) + result.setup_queries
    threshold, source = _calibrate(attack, result, setup, cfg) if cfg.thresholds else (None, None)
    entry = _attack_entry(result, setup.is_member, threshold, source, cfg)
    arrays = {"scores": result.scores, "queries": result.queries, "status": result.status}
    if "distances" in result.extras and cfg.thresholds:
        rest = None if left is None else left - spent
        try:
            entry["data_free"] = data_free_threshold(
                attack, result, setup.is_member, oracle, cfg, max_total_queries=rest
            )
            spent += entry["data_free"]["noise_queries"]
        except BudgetExhaustedError as exc:
            entry["data_free_skipped"] = f"--max-total-queries: {exc}"
    entry["target_queries"] = spent
    if "distances" in result.extras:
        arrays.update({f"distance_{k}": v for k, v in result.extras["distances"].items()})
    arrays.update({k: np.asarray(v) for k, v in result.extras.get("per_sample", {}).items()})
    return entry, arrays


def run_audit(cfg: AuditConfig, *, console: Console | None = None) -> dict[str, Any]:
    """Run the whole audit for ``cfg`` and write ``results.json``, ``scores.csv`` and ``roc.png`` to ``cfg.out``.

    With ``cfg.checkpoint`` (the default) finished attacks and the target's answers are saved under
    ``OUT/checkpoint`` as the run goes; ``cfg.resume`` continues an interrupted run from there.
    """
    cfg.validate()
    unknown = [a for a in cfg.attacks if a not in attack_names()]
    if unknown:
        raise UnknownNameError(f"unknown attack(s) {', '.join(unknown)}; choose from {', '.join(attack_names())}")
    console = console or Console(stderr=True, quiet=not cfg.progress)
    started = time.perf_counter()
    setup = prepare(cfg)
    try:
        ckpt = Checkpoint(cfg.out, cfg.to_dict(), resume=cfg.resume) if cfg.checkpoint else None
        oracle: LabelOracle = setup.oracle
        if ckpt:  # remote queries are worth looking up even in a fresh run; local ones only when resuming
            oracle = CachedOracle(setup.oracle, ckpt.journal, lookup=cfg.is_remote or cfg.resume)
    except BaseException:
        for close in setup.closers:
            close()
        raise
    answered_before = len(oracle) if isinstance(oracle, CachedOracle) else 0
    if cfg.max_total_queries is not None:  # the hard cap: the target oracle refuses a batch that would pass it
        setup.oracle.max_queries = max(cfg.max_total_queries - answered_before, 0)
    results: dict[str, Any] = {
        "labelleak_version": __version__,
        "dataset": setup.dataset,
        "config": cfg.to_dict(),
        "split": setup.split,
        "target": setup.target,
        "shadow": setup.shadow,
        "attacks": {},
    }
    finished: dict[str, dict[str, np.ndarray]] = {}
    skipped: dict[str, str] = {}
    try:
        for name in cfg.attacks:
            saved = ckpt.load(name) if ckpt else None
            if saved is None:
                left = _left(cfg, results["attacks"])
                if left is not None and left <= 0:
                    skipped[name] = f"--max-total-queries {cfg.max_total_queries} spent before this attack"
                    console.print(f"{name}: skipped, {skipped[name]}")
                    continue
                console.print(f"running {name} on {len(setup.x)} candidates")
                try:
                    saved = _run_one(name, cfg, setup, oracle, left)
                except BudgetExhaustedError as exc:
                    if cfg.max_total_queries is None:
                        raise
                    skipped[name] = f"--max-total-queries {cfg.max_total_queries}: {exc}"
                    console.print(f"{name}: stopped, {skipped[name]}")
                    continue
                if ckpt:
                    ckpt.save(name, *saved)
            else:
                console.print(f"{name}: loaded from the checkpoint")
            results["attacks"][name], finished[name] = saved
    except KeyboardInterrupt:
        if ckpt:
            raise Interrupted(ckpt.folder) from None
        raise
    finally:
        if isinstance(oracle, CachedOracle):
            oracle.close()
        for close in setup.closers:
            close()
    if not finished:
        raise BudgetExhaustedError(f"no attack could run: {'; '.join(f'{k}: {v}' for k, v in skipped.items())}")
    if skipped:
        results["skipped_attacks"] = skipped
    results["queries_asked"] = sum(int(e.get("target_queries", 0)) for e in results["attacks"].values())
    if setup.remote is not None:
        results["remote"] = {
            **setup.remote.stats(),
            "journal_hits": oracle.hits if isinstance(oracle, CachedOracle) else 0,
            "answered_before_resume": answered_before,
            "max_total_queries": cfg.max_total_queries,
        }
    results["seconds_total"] = time.perf_counter() - started
    _write_outputs(cfg, setup, results, finished)
    if ckpt:
        ckpt.journal.unlink(missing_ok=True)  # finished: every attack's results are stored
    return results


def _left(cfg: AuditConfig, done: dict[str, dict[str, Any]]) -> int | None:
    """What the total cap leaves after the attacks already run (their ``target_queries``); ``None`` if no cap.

    Counted from the finished attacks' entries, not from the journal, so a resumed run gives each attack the same
    allowance as the first run did, and replays it to the same scores."""
    if cfg.max_total_queries is None:
        return None
    return cfg.max_total_queries - sum(int(e.get("target_queries", 0)) for e in done.values())


def _write_outputs(
    cfg: AuditConfig, setup: AuditSetup, results: dict[str, Any], finished: dict[str, dict[str, np.ndarray]]
) -> None:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "attack": name,
            "sample_index": i,
            "is_member": m,
            "score": s,
            "queries": q,
            "status": Status(int(st)).name.lower(),
        }
        for name, a in finished.items()
        for i, m, s, q, st in zip(setup.sample_index, setup.is_member, a["scores"], a["queries"], a["status"])
    ]
    write_scores_csv(out / "scores.csv", rows)
    np.savez_compressed(
        out / "arrays.npz",
        sample_index=setup.sample_index,
        is_member=setup.is_member,
        **{f"{name}/{k}": v for name, a in finished.items() for k, v in a.items()},
    )
    distances = {
        name: {k[len("distance_") :]: v for k, v in a.items() if k.startswith("distance_")}
        for name, a in finished.items()
        if "distance_l2" in a
    }
    if distances:
        write_distances_csv(out / "distances.csv", setup.sample_index, setup.is_member, distances)
    curves = {name: (setup.is_member, a["scores"]) for name, a in finished.items()}
    plot_roc(curves, out / "roc.png", title=f"{setup.dataset['name']}: label-only membership inference")
    series = {
        n: ([r["queries"] for r in e["by_queries"]], [r["auc"] for r in e["by_queries"]])
        for n, e in results["attacks"].items()
        if e.get("by_queries")
    }
    if series:
        plot_series(
            series,
            out / "queries.png",
            xlabel="queries per candidate",
            ylabel="ROC AUC",
            title="membership AUC against query budget",
        )
    write_json(out / "results.json", results)


def audit(config_file: str | Path | None = None, *, print_table: bool = False, **options: Any) -> dict[str, Any]:
    """Python entry point: ``labelleak.audit(dataset="digits", attacks=["gap", "transfer"], out="out")``.

    Takes the same keys as the CLI and YAML configs; returns the content of ``results.json``.
    """
    cfg = make_config(config_file, **options)
    results = run_audit(cfg)
    if print_table:
        print_audit_table(results)
    return results
