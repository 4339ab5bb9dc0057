"""Benchmark: TPR at low FPR against the number of reference models K, for LiRA and the label-only LiRAs.

Issue 34, item 5, on the second target of its goals: the digits cnn2 target of ``reproduce sizes --dataset digits
--set arch=cnn2 --set width=1`` at 200 members (its 199-member run), audited with all 200 + 200 candidates, K
reference models each for online LiRA and boundary-LiRA offline (HopSkipJump and the guided search), K = 4, 8, 16
by default, every run in this one process so that the wall times sit side by side. The model cache keeps the
target and the reference models between runs of this script (``--cache-dir``), so a rerun measures only what
it has not trained; the wall times below come from a first run.

    .venv/bin/python bench/bench_k_table.py --k 4 8 16 --queries 500 --cache-dir /tmp/ktable-cache \\
        --out bench/results/k-table/digits-cnn2

Writes ``OUT.json`` (per K and attack: AUC with its bootstrap interval, TPR at 1% FPR and its exact interval,
TPR at 0.1% FPR where 200 non-members resolve it (they do not: n/a), target queries per candidate, the attack's
wall time) and ``OUT.md`` (the table).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from labelleak.pipeline.audit import run_audit
from labelleak.pipeline.config import make_config

ATTACKS = ("lira", "boundary-lira-offline", "boundary-lira-guided-offline")


def _row(k: int, name: str, entry: dict[str, Any]) -> dict[str, Any]:
    tpr, ci = entry.get("tpr_at_fpr") or {}, entry.get("tpr_at_fpr_ci") or {}
    return {
        "k": k,
        "attack": name,
        "auc": entry.get("auc"),
        "auc_ci": entry.get("auc_ci"),
        "tpr@1%": tpr.get("0.01"),
        "tpr@1%_ci": ci.get("0.01"),
        "tpr@0.1%": tpr.get("0.001"),
        "tpr@0.1%_na": (entry.get("tpr_at_fpr_na") or {}).get("0.001"),
        "queries_per_candidate": entry.get("queries_per_sample"),
        "seconds": entry.get("seconds"),
    }


def _cell(v: Any, ci: Any = None) -> str:
    if v is None:
        return "n/a"
    text = f"{v:.3f}"
    return text + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--k", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--train-size", type=int, default=200)
    ap.add_argument("--cache-dir", default=".labelleak-cache")
    ap.add_argument("--out", type=Path, default=Path("bench/results/k-table/digits-cnn2"))
    args = ap.parse_args()
    rows, started = [], time.perf_counter()
    load = os.getloadavg()
    for k in args.k:
        cfg = make_config(
            None,
            dataset="digits",
            arch="cnn2",
            width=1.0,
            train_size=args.train_size,
            attacks=list(ATTACKS),
            lira_models=k,
            queries=args.queries,
            thresholds=False,
            cache_dir=args.cache_dir,
            out=str(args.out.parent / f"{args.out.name}-runs" / f"k{k}"),
            progress=False,
            checkpoint=False,
        )
        results = run_audit(cfg)
        for name in ATTACKS:
            rows.append(_row(k, name, results["attacks"][name]))
            r = rows[-1]
            print(f"K={k:>3} {name:<30} AUC {_cell(r['auc'], r['auc_ci'])}  TPR@1% {_cell(r['tpr@1%'], r['tpr@1%_ci'])}"
                  f"  {r['seconds']:.0f} s", flush=True)  # fmt: skip
    report = {
        "command": "bench/bench_k_table.py "
        + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items()
        ),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_before": load,
        "load_after": os.getloadavg(),
        "seconds": time.perf_counter() - started,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    lines = [
        "| K | attack | AUC [95% CI] | TPR@1% FPR [exact 95% CI] | TPR@0.1% FPR | queries / candidate | wall time |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['k']} | {r['attack']} | {_cell(r['auc'], r['auc_ci'])} | {_cell(r['tpr@1%'], r['tpr@1%_ci'])} "
            f"| {_cell(r['tpr@0.1%'])} | {r['queries_per_candidate']:.0f} | {r['seconds']:.0f} s |"
        )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
