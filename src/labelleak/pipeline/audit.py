"""The audit: setup -> attacks -> thresholds -> metrics -> files. Orchestration only; no attack math here."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labelleak._version import __version__
from labelleak.attacks import Attack, AttackResult, ShadowData, create_attack
from labelleak.attacks.registry import attack_names, audit_params
from labelleak.counts import resolution
from labelleak.data.cache import DatasetCache
from labelleak.distributed import Executor, LocalExecutor, make_executor
from labelleak.errors import BudgetExhaustedError, InvalidInputError, LabelleakError, UnknownNameError
from labelleak.logs import get_logger
from labelleak.metrics import (
    auc,
    bootstrap_auc,
    summarize,
    threshold_best_balanced_accuracy,
    threshold_from_percentile,
    threshold_sweep,
    tpr_at_fpr,
)
from labelleak.oracle import LabelOracle
from labelleak.oracle.budget import AuditBudget
from labelleak.oracle.cache import CachedOracle
from labelleak.pipeline.checkpoint import Checkpoint, Interrupted
from labelleak.pipeline.config import AuditConfig
from labelleak.pipeline.setup import AuditSetup, OwnData, prepare, prepare_oracle
from labelleak.pipeline.utility import accuracy_from_status, measure_utility, with_warning
from labelleak.report.outputs import write_audit_outputs
from labelleak.report.provenance import provenance
from labelleak.report.verdict import add_verdict

log = get_logger(__name__)


def attack_params(name: str, cfg: AuditConfig, setup: AuditSetup) -> dict[str, Any]:
    """Constructor arguments the audit passes to the attack registered as ``name`` (as its registration declares)."""
    return audit_params(
        name,
        {
            **cfg.to_dict(),
            "adversary_arch": setup.arch,
            "reference_size": setup.reference_size,
            "adversary_defense": setup.adversary_defense,
            "adversary_init": setup.adversary_init,
        },
    )


def by_queries(result: AttackResult, is_member: np.ndarray) -> list[dict[str, float | None]]:
    """AUC and TPR at 0.1% / 1% FPR of the best scores within each query milestone (one run, many budgets); a
    TPR is ``None`` where the non-members cannot resolve its FPR (:func:`labelleak.counts.resolution`)."""
    rows: list[dict[str, float | None]] = []
    spent = int(result.queries.max()) if len(result.queries) else 0
    last = spent
    for m, scores in sorted(result.extras.get("milestone_scores", {}).items()):
        if m > spent and rows:
            break  # later milestones repeat the final scores
        rows.append(_budget_row(int(m), is_member, scores))
        last = int(m)
    if rows and last < spent:
        rows.append(_budget_row(spent, is_member, result.scores))  # the whole budget
    return rows


def _budget_row(queries: int, is_member: np.ndarray, scores: np.ndarray) -> dict[str, float | None]:
    n_non = int((~np.asarray(is_member, bool)).sum())
    row: dict[str, float | None] = {"queries": queries, "auc": auc(is_member, scores)}
    for f in (0.001, 0.01):
        row[f"tpr_at_{f:g}"] = tpr_at_fpr(is_member, scores, f) if resolution(n_non, f).point else None
    return row


DATA_FREE_TS = (0, 1, 2, 5, *range(10, 101, 10))  # percentiles swept (finer near 0, where it matters most)


def data_free_threshold(
    attack: Attack,
    result: AttackResult,
    is_member: np.ndarray,
    oracle: LabelOracle,
    cfg: AuditConfig,
    *,
    max_total_queries: int | None = None,
    shadow: ShadowData | None = None,
    executor: Executor | None = None,
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
    noise_result = (executor or LocalExecutor()).run_attack(
        attack, oracle, noise, labels, shadow=shadow, max_queries_per_sample=cfg.queries, max_total_queries=left
    )
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


def _calibrate(
    attack: Attack, result: AttackResult, setup: AuditSetup, cfg: AuditConfig, executor: Executor | None = None
) -> tuple[float, str]:
    """Threshold by best balanced accuracy on data whose membership the adversary knows.

    Attacks that train their own shadow model report its members/non-members scores (``extras["calibration"]``);
    the others are run once more against the adversary's shadow model, whose members are shadow-train (sharded
    like the attack itself, but never journaled: the target's journal holds only the target's answers).
    """
    cal = result.extras.get("calibration")
    if cal is not None:
        m_s, n_s = np.asarray(cal["member_scores"]), np.asarray(cal["nonmember_scores"])
        source = "shadow-model-calibration"
    else:
        n = int(setup.is_member.sum())
        sd = setup.shadow_data
        n_in = min(n, len(sd.x_train))  # a small shadow pool may hold fewer members than there are candidates
        x = np.concatenate([sd.x_train[:n], sd.x_test[:n]])
        y = np.concatenate([sd.y_train[:n], sd.y_test[:n]])
        cal_result = (
            (executor or LocalExecutor())
            .unjournaled()
            .run_attack(
                attack, _oracle_for(attack, setup, shadow=True), x, y, shadow=sd, max_queries_per_sample=cfg.queries
            )
        )
        m_s, n_s = cal_result.scores[:n_in], cal_result.scores[n_in:]
        source = "shadow-model-attack"
    is_member = np.r_[np.ones(len(m_s), bool), np.zeros(len(n_s), bool)]
    return threshold_best_balanced_accuracy(is_member, np.concatenate([m_s, n_s])), source


def _oracle_for(attack: Attack, setup: AuditSetup, *, shadow: bool = False) -> LabelOracle:
    """Label-only attacks get the label oracle; score-based baselines the (stronger) score oracle."""
    if attack.threat_model == "scores":
        oracle = setup.shadow_score_oracle if shadow else setup.score_oracle
        if oracle is None:
            raise InvalidInputError(f"{attack.name}: needs the target's class scores, which {setup.kind} does not give")
        return oracle
    return setup.shadow_oracle if shadow else setup.oracle


def check_requirements(cfg: AuditConfig, setup: AuditSetup, names: list[str]) -> None:
    """Every problem of every attack in ``names`` with this target, in one error, before the first query: an
    attack that needs scores or shadow data the audit does not have used to fail after the others had run."""
    problems = []
    for name in names:
        attack = create_attack(name, **attack_params(name, cfg, setup))
        try:
            _oracle_for(attack, setup)
        except InvalidInputError as exc:
            problems.append(str(exc))
    if problems:
        raise InvalidInputError("; ".join(problems) + "; drop these from --attacks")


def _operating_points(points: dict[str, np.ndarray], is_member: np.ndarray) -> list[dict[str, float]]:
    """TPR and FPR of each one-query operating point (e.g. each OSLO threshold)."""
    return [
        {"strength": float(k), "tpr": float(v[is_member].mean()), "fpr": float(v[~is_member].mean())}
        for k, v in points.items()
    ]


def _attack_entry(
    result: AttackResult,
    is_member: np.ndarray,
    threshold: float | None,
    source: str | None,
    cfg: AuditConfig,
    keys: np.ndarray | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"threat_model": result.threat_model}
    # the candidates' content keys: the intervals' random halves and resamples do not depend on their order
    metrics = summarize(is_member, result.scores, threshold=threshold, n_boot=cfg.n_boot, seed=cfg.seed, keys=keys)
    entry.update(metrics)
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
        by_norm = {nm: np.nan_to_num(d, nan=0.0) for nm, d in result.extras["distances"].items()}
        entry["auc_by_norm"] = {nm: auc(is_member, d) for nm, d in by_norm.items()}
        entry["auc_ci_by_norm"] = {  # each norm's interval, so a claim about norms is judged on intervals
            nm: bootstrap_auc(is_member, d, n_boot=cfg.n_boot, seed=cfg.seed, keys=keys).as_list()
            for nm, d in by_norm.items()
        }
    if "operating_points" in result.extras:
        entry["operating_points"] = _operating_points(result.extras["operating_points"], is_member)
    skip = {"calibration", "milestone_scores", "distances", "operating_points", "per_sample"}
    entry.update({k: v for k, v in result.extras.items() if k not in skip})
    return entry


def _run_one(
    name: str,
    cfg: AuditConfig,
    setup: AuditSetup,
    oracle: LabelOracle,
    executor: Executor | None = None,
    budget: AuditBudget | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Run one attack on the candidates, choose its threshold, and return its entry and raw arrays.

    With ``cfg.thresholds`` off, no threshold is calibrated (the attack runs once): AUC and TPR@FPR do not need
    one, and the balanced accuracy is then the best one on the evaluation data, labelled as such. ``budget`` is
    the audit's (what its total cap leaves to this attack); ``entry["target_queries"]`` is what it asked of the
    target.
    """
    left = None if budget is None else budget.left()
    attack = create_attack(name, **attack_params(name, cfg, setup))
    # label-only attacks go through the journaling oracle; score and white-box ones need the target itself
    target = oracle if attack.threat_model == "label-only" else _oracle_for(attack, setup)
    # the executor runs it here or splits the candidates over workers (--backend ray): the same result either way
    result = (executor or LocalExecutor()).run_attack(
        attack,
        target,
        setup.x,
        setup.y,
        shadow=setup.shadow_data,
        max_queries_per_sample=cfg.queries,
        max_total_queries=left,
        progress=cfg.progress,
    )
    spent = int(result.queries.sum()) + result.setup_queries
    threshold, source = _calibrate(attack, result, setup, cfg, executor) if cfg.thresholds else (None, None)
    entry = _attack_entry(result, setup.is_member, threshold, source, cfg, setup.keys)
    arrays = {"scores": result.scores, "queries": result.queries, "status": result.status}
    if attack.capabilities().gives_distances and cfg.thresholds:
        rest = None if budget is None else budget.left(after=spent)
        try:
            entry["data_free"] = data_free_threshold(
                attack,
                result,
                setup.is_member,
                oracle,
                cfg,
                max_total_queries=rest,
                shadow=setup.shadow_data,
                executor=executor,
            )
            spent += entry["data_free"]["noise_queries"]
        except BudgetExhaustedError as exc:
            entry["data_free_skipped"] = f"--max-total-queries: {exc}"
    entry["target_queries"] = spent
    if left is not None:  # the audit's total cap: the same allowance for every candidate
        entry["total_cap"] = {"given": left, "allowance": result.allowance, "cut_short": result.cut_short}
    if attack.capabilities().reports_accuracy:
        entry["candidate_accuracy"] = accuracy_from_status(setup.is_member, result.status)
    if "distances" in result.extras:
        arrays.update({f"distance_{k}": v for k, v in result.extras["distances"].items()})
    arrays.update({k: np.asarray(v) for k, v in result.extras.get("per_sample", {}).items()})
    return entry, arrays


def run_audit(
    cfg: AuditConfig,
    *,
    datasets: DatasetCache | None = None,
    target: LabelOracle | None = None,
    data: OwnData | None = None,
) -> dict[str, Any]:
    """Run the whole audit for ``cfg`` and write ``results.json``, ``scores.csv``, ``roc.png`` and ``report.html``
    to ``cfg.out``.

    With ``cfg.checkpoint`` (the default) finished attacks and the target's answers are saved under
    ``OUT/checkpoint`` as the run goes; ``cfg.resume`` continues an interrupted run from there. A series of
    audits on one dataset passes the same ``datasets`` cache to each, so the file is read once. ``target`` and
    ``data`` audit a label oracle built in Python on the auditor's arrays instead of what ``cfg`` names.
    """
    cfg.validate()
    unknown = [a for a in cfg.attacks if a not in attack_names()]
    if unknown:
        raise UnknownNameError(f"unknown attack(s) {', '.join(unknown)}; choose from {', '.join(attack_names())}")
    started = time.perf_counter()
    if (target is None) != (data is None):
        raise InvalidInputError("run_audit: give both target and data (members, nonmembers, shadow), or neither")
    setup = prepare_oracle(cfg, target, data) if target is not None and data is not None else prepare(cfg, datasets)
    ckpt, oracle, executor = _open_run(cfg, setup)
    answered_before = len(oracle) if isinstance(oracle, CachedOracle) else 0
    spent_before = oracle.spent_before if isinstance(oracle, CachedOracle) else 0  # sent, retries included
    budget = AuditBudget(cfg.queries, cfg.max_total_queries)
    if cfg.max_total_queries is not None:  # the hard cap: the target oracle refuses a batch that would pass it
        setup.oracle.max_queries = budget.oracle_cap(spent_before)
    results: dict[str, Any] = {
        "labelleak_version": __version__,
        "dataset": setup.dataset,
        "config": cfg.to_dict(),
        "split": setup.split,
        "target": setup.target,
        "shadow": setup.shadow,
        "attacks": {},
    }
    own = target is not None or cfg.is_remote or bool(cfg.model)  # a target that comes without its accuracy
    try:
        run = _run_attacks(cfg, setup, oracle, executor, ckpt, budget, results, own=own)
    except KeyboardInterrupt:
        if ckpt:
            raise Interrupted(ckpt.folder) from None
        raise
    finally:
        executor.close()
        if isinstance(oracle, CachedOracle):
            oracle.close()
        for close in setup.closers:
            close()
    if not run.finished:
        if run.failure is not None:
            raise run.failure[1]
        raise BudgetExhaustedError(f"no attack could run: {'; '.join(f'{k}: {v}' for k, v in run.skipped.items())}")
    if run.failure is not None:
        results["failed_attack"] = {"name": run.failure[0], "error": str(run.failure[1])}
    if run.skipped:
        results["skipped_attacks"] = run.skipped
    results["queries_asked"] = budget.spent
    if cfg.max_total_queries is not None:
        results["total_cap"] = cap_summary(cfg, results["attacks"])
    if setup.remote is not None:
        results["remote"] = {**setup.remote.stats(), **_journal_record(oracle, answered_before, spent_before)}
        results["remote"]["max_total_queries"] = cfg.max_total_queries
    # eps_LB, slices, risk, claim; the one-run bound on the canaries when there are some
    add_verdict(results, run.finished, is_member=setup.is_member, labels=setup.y, canary=setup.canary, keys=setup.keys)
    results["seconds_total"] = time.perf_counter() - started
    results["provenance"] = provenance(results)
    write_audit_outputs(
        cfg.out,
        results,
        run.finished,
        sample_index=setup.sample_index,
        is_member=setup.is_member,
        inputs=setup.x,
        canary=setup.canary,
        keys=setup.keys,
    )
    if run.failure is not None:  # the journal stays: --resume runs what is left
        raise _partial_failure(*run.failure, finished=len(run.finished), out=cfg.out) from None
    if ckpt:
        ckpt.clear_journals()  # finished: every attack's results are stored
    return results


def _journal_record(oracle: LabelOracle, answered_before: int, spent_before: int) -> dict[str, int]:
    """What the journal saved a remote audit: answers it looked up, and what an earlier run had bought."""
    return {
        "journal_hits": oracle.hits if isinstance(oracle, CachedOracle) else 0,
        "answered_before_resume": answered_before,
        "sent_before_resume": spent_before,
    }


def _open_run(cfg: AuditConfig, setup: AuditSetup) -> tuple[Checkpoint | None, LabelOracle, Executor]:
    """The checkpoint, the oracle the attacks query (through the journal when there is one) and the executor;
    the setup's resources are closed when any of them cannot be opened."""
    try:
        check_requirements(cfg, setup, list(cfg.attacks))
        identity = {**cfg.to_dict(), "inputs": setup.inputs_fingerprint} if setup.inputs_fingerprint else cfg.to_dict()
        ckpt = Checkpoint(cfg.out, identity, resume=cfg.resume, fresh=cfg.fresh) if cfg.checkpoint else None
        oracle: LabelOracle = setup.oracle
        if ckpt:  # remote queries are worth looking up even in a fresh run; local ones only when resuming
            shards = sorted(ckpt.shard_journals.glob("*.bin"))  # a distributed run's journals: replayed on resume
            oracle = CachedOracle(setup.oracle, ckpt.journal, lookup=cfg.is_remote or cfg.resume, seed=shards)
        executor = make_executor(
            cfg.backend,
            address=cfg.ray_address,
            workers=cfg.workers,
            worker_cpus=cfg.worker_cpus,
            worker_gpus=cfg.worker_gpus,
            journal_dir=ckpt.shard_journals if ckpt else None,
        )
    except BaseException:
        for close in setup.closers:
            close()
        raise
    return ckpt, oracle, executor


@dataclass
class _AttackRun:
    """What the attack loop ends with: each finished attack's arrays, the skipped ones and why, the first failure."""

    finished: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    failure: tuple[str, LabelleakError] | None = None


def _run_attacks(
    cfg: AuditConfig,
    setup: AuditSetup,
    oracle: LabelOracle,
    executor: Executor,
    ckpt: Checkpoint | None,
    budget: AuditBudget,
    results: dict[str, Any],
    *,
    own: bool,
) -> _AttackRun:
    """Each attack of ``cfg.attacks`` in turn (loaded from the checkpoint where it finished before), charged to the
    budget; stops at the first failure, keeping what finished. ``results`` gains the attacks' entries and, for a
    target that comes without its accuracy, the utility read from the first attack that labelled the candidates."""
    run = _AttackRun()
    for name in cfg.attacks:
        saved = ckpt.load(name) if ckpt else None
        if saved is None:
            left = budget.left()
            if left is not None and left < len(setup.x):
                run.skipped[name] = (
                    f"--max-total-queries {cfg.max_total_queries} leaves {max(left, 0)} queries for "
                    f"{len(setup.x)} candidates, less than one each"
                )
                log.warning("%s: skipped, %s", name, run.skipped[name])
                continue
            log.info("running %s on %d candidates", name, len(setup.x))
            try:
                saved = _run_one(name, cfg, setup, oracle, executor, budget)
            except BudgetExhaustedError as exc:
                if cfg.max_total_queries is None:
                    run.failure = (name, exc)
                    break
                run.skipped[name] = f"--max-total-queries {cfg.max_total_queries}: {exc}"
                log.warning("%s: stopped, %s", name, run.skipped[name])
                continue
            except LabelleakError as exc:  # the attacks finished before it are still written
                run.failure = (name, exc)
                break
            if ckpt:
                ckpt.save(name, *saved)
        else:
            log.info("%s: loaded from the checkpoint", name)
            results.setdefault("attacks_from_checkpoint", []).append(name)
        results["attacks"][name], run.finished[name] = saved
        # counted from the finished attacks' entries, not from the journal, so a resumed run gives each attack
        # the same allowance as the first run did, and replays it to the same scores
        budget.charge(int(saved[0].get("target_queries", 0)))
        if own and "utility" not in results and "candidate_accuracy" in saved[0]:  # warned at once
            results["utility"] = with_warning(measure_utility({name: saved[0]}, oracle, setup, left=None))
    if own and "utility" not in results:  # no attack labelled the candidates: one query each
        results["utility"] = with_warning(measure_utility({}, oracle, setup, left=budget.left()))
        budget.charge(int(results["utility"].get("queries", 0)))
    return run


def _partial_failure(name: str, error: LabelleakError, *, finished: int, out: str) -> LabelleakError:
    """The failure of attack ``name``, of its own type, saying that the ``finished`` attacks before it are written
    and that ``--resume`` continues."""
    message = (
        f"{error}; the {finished} attack(s) finished before {name} are written to {out}/ "
        "(fix the cause and rerun with --resume to continue)"
    )
    try:
        return type(error)(message)
    except TypeError:  # an error class with another signature
        return LabelleakError(message)


def cap_summary(cfg: AuditConfig, attacks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What the total cap did: each attack's even per-candidate allowance (beside ``--queries``) and how many
    candidates it cut short."""
    per = {n: e["total_cap"] for n, e in attacks.items() if "total_cap" in e}
    return {
        "max_total_queries": cfg.max_total_queries,
        "queries_per_candidate": cfg.queries,
        "attacks": per,
        "cut_short": sum(int(p.get("cut_short") or 0) for p in per.values()),
    }
