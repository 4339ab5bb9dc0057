"""Seed variance: the audits of ``--repeats N`` pooled into ``OUT/repeats.json``, a terminal table and the
page ``OUT/report.html``.

Each seed's audit is a complete folder ``OUT/seed-<s>/`` with its own ``results.json``; this module reads those
results only (never the pipeline) and pools each attack's AUC and TPR at each FPR with Rubin's rules
(:mod:`labelleak.seeds`). A TPR is pooled only where every seed resolves it and gives its exact interval;
otherwise it is ``None`` with the reason under ``tpr_at_fpr_na``, as in one audit's ``results.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from labelleak._version import __version__
from labelleak.report.files import write_json, write_table_csv
from labelleak.report.lowfpr import held_out_point
from labelleak.report.markdown import fmt_number
from labelleak.report.outputs import write_report_if_available
from labelleak.seeds import RULE, combine_seeds

REPEATS_FILE = "repeats.json"
SEED_CHANGES = {
    True: (
        "labelleak trained the target: each seed draws its own split (members, non-members, shadow data), trains "
        "its own target, shadow and reference models, and drives the attacks' random draws, the bootstrap and "
        "the exact intervals' calibration half"
    ),
    False: (
        "the target and the candidates are fixed (a model file or a remote target): each seed changes only the "
        "halves of the shadow pool and the shadow and reference models trained on them, the attacks' random draws "
        "(e.g. HopSkipJump's directions, the data-free threshold's noise), the bootstrap and the exact intervals' "
        "calibration half; never the target or which candidates are members"
    ),
}

Run = tuple[int, str, dict[str, Any]]  # (seed, folder relative to OUT, that seed's results.json)


def seed_folder(seed: int) -> str:
    """The folder of one seed's audit inside OUT."""
    return f"seed-{seed}"


def _pool(pairs: list[tuple[float | None, list[float] | None]], level: float) -> dict[str, Any] | None:
    """Rubin's pooling of (value, interval) pairs, ``None`` if a seed lacks either."""
    values, intervals = [], []
    for v, ci in pairs:
        if v is None or ci is None or None in ci:
            return None
        values.append(float(v))
        intervals.append((float(ci[0]), float(ci[1])))
    return combine_seeds(values, intervals, level=level).to_dict()


def _tpr(entries: list[dict[str, Any]], seeds: list[int], key: str, level: float) -> tuple[Any, str | None]:
    """The pooled TPR at FPR ``key``, or ``None`` and why (the first seed's own reason, else which seed)."""
    # each seed's held-out TPR with its own exact interval (the ROC reading is another estimator's number)
    pairs = [(held_out_point(e, key), (e.get("tpr_at_fpr_ci") or {}).get(key)) for e in entries]
    pooled = _pool(pairs, level)
    if pooled is not None:
        return pooled, None
    for seed, e, (v, ci) in zip(seeds, entries, pairs):
        if v is None or ci is None:
            reason = (e.get("tpr_at_fpr_na") or {}).get(key) or "no value or no exact interval"
            return None, f"seed {seed}: {reason}"
    return None, "a seed's interval is incomplete"


def _attack(name: str, runs: list[Run]) -> dict[str, Any]:
    """One attack pooled over the seeds it ran under; every metric ``None`` with a reason unless it ran in all."""
    entries = [r[2]["attacks"][name] for r in runs if name in r[2].get("attacks", {})]
    seeds = [r[0] for r in runs if name in r[2].get("attacks", {})]
    first = entries[0]
    level = float((first.get("intervals") or {}).get("level", 0.95))
    pooled: dict[str, Any] = {"threat_model": first.get("threat_model"), "seeds": seeds}
    keys = list(dict.fromkeys(k for e in entries for k in (e.get("tpr_at_fpr") or {})))
    if len(entries) < len(runs):
        missing = [r[0] for r in runs if r[0] not in seeds]
        reason = f"ran under {len(entries)} of {len(runs)} seeds (not {', '.join(map(str, missing))})"
        return {**pooled, "auc": None, "auc_na": reason, "tpr_at_fpr": dict.fromkeys(keys), "tpr_at_fpr_na":
                dict.fromkeys(keys, reason)}  # fmt: skip
    pooled["auc"] = _pool([(e.get("auc"), e.get("auc_ci")) for e in entries], level)
    if pooled["auc"] is None:
        pooled["auc_na"] = "a seed's AUC or its interval is undefined (one class only?)"
    pooled["tpr_at_fpr"], pooled["tpr_at_fpr_na"] = {}, {}
    for key in keys:
        pooled["tpr_at_fpr"][key], why = _tpr(entries, seeds, key, level)
        if why is not None:
            pooled["tpr_at_fpr_na"][key] = why
    return pooled


def aggregate_repeats(runs: list[Run], *, config: dict[str, Any], trains_target: bool) -> dict[str, Any]:
    """``repeats.json``: each attack's metrics pooled over the seeds' results, with the per-seed folders.

    ``runs`` are ``(seed, folder, results)`` in seed order (at least two); ``config`` is the audit's own (its
    ``seed`` the first, ``repeats`` N); ``trains_target`` says what a seed changes (:data:`SEED_CHANGES`)."""
    names = list(dict.fromkeys(n for _, _, res in runs for n in res.get("attacks", {})))
    first = runs[0][2]
    return {
        "labelleak_version": __version__,
        "repeats": len(runs),
        "seeds": [s for s, _, _ in runs],
        "folders": [f for _, f, _ in runs],
        "trains_target": trains_target,
        "seed_changes": SEED_CHANGES[trains_target],
        "rule": RULE,
        "dataset": first.get("dataset", {}),
        "config": config,
        "attacks": {n: _attack(n, runs) for n in names},
        "per_seed": [
            {
                "seed": s,
                "folder": f,
                "target": res.get("target", {}),
                "attacks": {n: {"auc": e.get("auc"), "auc_ci": e.get("auc_ci")} for n, e in res["attacks"].items()},
            }
            for s, f, res in runs
        ],
        "queries_asked": sum(int(res.get("queries_asked") or 0) for _, _, res in runs),
        "seconds_total": sum(float(res.get("seconds_total") or 0.0) for _, _, res in runs),
    }


def _interval(values: list[Any] | None) -> str:
    return "n/a" if not values else f"[{fmt_number(values[0])}, {fmt_number(values[1])}]"


def repeats_rows(aggregate: dict[str, Any]) -> list[dict[str, str]]:
    """One row per attack as display text: mean AUC, its spread over seeds (sd, min-max), the mean per-seed
    interval width, the combined interval, and the same for TPR at 1% FPR (``n/a`` where not pooled)."""
    rows = []
    for name, a in aggregate.get("attacks", {}).items():
        auc = a.get("auc") or {}
        tpr = (a.get("tpr_at_fpr") or {}).get("0.01") or {}
        rows.append(
            {
                "attack": name,
                "threat": a.get("threat_model") or "?",
                "auc": fmt_number(auc.get("mean")),
                "sd": fmt_number(auc.get("sd")),
                "range": f"{fmt_number(auc.get('min'))}-{fmt_number(auc.get('max'))}" if auc else "n/a",
                "width": fmt_number(auc.get("mean_ci_width")),
                "combined": _interval(auc.get("combined_ci")),
                "tpr": fmt_number(tpr.get("mean")),
                "tpr_sd": fmt_number(tpr.get("sd")),
                "tpr_combined": _interval(tpr.get("combined_ci")),
            }
        )
    return rows


def _caption(aggregate: dict[str, Any]) -> str:
    reasons = sorted(
        {
            reason
            for a in aggregate.get("attacks", {}).values()
            for reason in [a.get("auc_na"), (a.get("tpr_at_fpr_na") or {}).get("0.01")]
            if reason
        }
    )
    text = f"{RULE}."
    return text + (" n/a: " + "; ".join(reasons) if reasons else "")


def repeats_table(aggregate: dict[str, Any]) -> Table:
    """The terminal table of a ``--repeats`` audit."""
    seeds = aggregate.get("seeds") or []
    table = Table(
        title=f"labelleak audit over {len(seeds)} seeds ({', '.join(map(str, seeds))}): mean, spread, combined 95%",
        caption=_caption(aggregate),
    )
    heads = ("attack", "threat", "AUC mean", "sd", "min-max", "seed CI width", "combined CI", "TPR@1%", "sd",
             "combined CI")  # fmt: skip
    for col in heads:
        table.add_column(col, justify="left" if col in ("attack", "threat") else "right")
    for r in repeats_rows(aggregate):
        table.add_row(*r.values())
    return table


def print_repeats_table(aggregate: dict[str, Any], console: Console | None = None) -> None:
    """Print :func:`repeats_table`; a console that is not a terminal gets enough width for the columns."""
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=160)
    console.print(repeats_table(aggregate))


def repeats_context(aggregate: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Everything ``repeats.html.j2`` shows: the pooled table, each seed's AUCs with a link to its report."""
    names = list(aggregate.get("attacks", {}))
    seeds = []
    missing = []
    for run in aggregate.get("per_seed", []):
        report = folder / run["folder"] / "report.html"
        if not report.is_file():
            missing.append(f"{run['folder']}/report.html is not in the folder: no link to seed {run['seed']}")
        cells = []
        for n in names:
            e = run["attacks"].get(n)
            cells.append("not run" if e is None else f"{fmt_number(e.get('auc'))} {_interval(e.get('auc_ci'))}")
        link = f"{run['folder']}/report.html" if report.is_file() else None
        seeds.append({"seed": run["seed"], "folder": run["folder"], "link": link, "cells": cells})
    return {
        "kind": "repeats",
        "aggregate": aggregate,
        "dataset_name": (aggregate.get("dataset") or {}).get("name", "?"),
        "rows": repeats_rows(aggregate),
        "names": names,
        "seeds": seeds,
        "caption": _caption(aggregate),
        "missing": missing,
    }


def write_repeats_outputs(out: str | Path, aggregate: dict[str, Any]) -> None:
    """``OUT/repeats.json`` and ``OUT/report.html`` (the seed folders hold everything else)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / REPEATS_FILE, aggregate)
    write_report_if_available(out)


POOLED_FILE = "pooled.json"  # reproduce --repeats: every run of the plan pooled over the seeds


def pooled_rows(pooled: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (plan run, attack) of ``reproduce --repeats``: the run's folder and point, then the attack's
    row of :func:`repeats_rows` (mean AUC, its spread, the combined interval; the same for TPR at 1% FPR)."""
    return [
        {"run": p["folder"], **{k: str(v) for k, v in (p.get("point") or {}).items()}, **row}
        for p in pooled.get("points", [])
        for row in repeats_rows(p["aggregate"])
    ]


def pooled_markdown(pooled: dict[str, Any]) -> str:
    """``pooled.md``: the experiment over its seeds, one table row per plan run and attack, each run's page
    linked."""
    seeds = ", ".join(map(str, pooled.get("seeds", [])))
    lines = [
        f"# {pooled.get('experiment')} ({pooled.get('scale')} scale) over {pooled.get('repeats')} seeds ({seeds})",
        "",
        f"What a seed changes: {pooled.get('seed_changes')}.",
        "",
        "| run | attack | AUC mean | sd | min-max | seed CI width | combined 95% CI | TPR@1% mean | sd "
        "| combined 95% CI |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in pooled.get("points", []):
        link = f"[{p['folder']}](pooled/{p['folder']}/report.html)"
        for r in repeats_rows(p["aggregate"]):
            cells = [link, r["attack"], r["auc"], r["sd"], r["range"], r["width"], r["combined"], r["tpr"]]
            lines.append("| " + " | ".join([*cells, r["tpr_sd"], r["tpr_combined"]]) + " |")
    reasons = sorted({_caption(p["aggregate"]) for p in pooled.get("points", [])})
    return "\n".join([*lines, "", *reasons, ""])


def write_pooled_outputs(out: str | Path, pooled: dict[str, Any]) -> None:
    """``OUT/pooled.{json,md,csv}`` and, per plan run, ``OUT/pooled/<run>/repeats.json`` with its
    ``report.html`` (the page of ``audit --repeats``, linking each seed's audit)."""
    out = Path(out)
    for p in pooled.get("points", []):
        write_repeats_outputs(out / "pooled" / p["folder"], p["aggregate"])
    write_json(out / POOLED_FILE, pooled)
    (out / "pooled.md").write_text(pooled_markdown(pooled))
    write_table_csv(out / "pooled.csv", pooled_rows(pooled))
