"""Benchmark: how close boundary attacks get to the nearest decision boundary, plain HSJA against boundary-guided.

(a) Closed-form linear models ``argmax(W x + b)`` (binary and multinomial, several dimensions and class counts),
    generated here: the exact L2 distance to the nearest boundary is known. Per configuration and budget (one run
    each, read at query milestones): share of candidates within 5% of the exact distance, median and
    90th-percentile relative error, and the share BELOW the exact distance (must be 0: a verified adversarial point
    cannot be nearer than the nearest boundary). The guided attack's shadow model is a linear model trained on the
    adversary's own samples (labelled by the target's rule, no target queries).
(b) The CIFAR-10 CPU-scale 1,000-member target of ``labelleak reproduce queries``: AUC and TPR@1%FPR against
    queries per candidate for boundary-hsja, boundary-qeba and boundary-guided (``--attacks``), each read off one
    run at the largest budget, plus boundary-guided in a run capped at ``--cap`` queries (default 200, issue 17's
    goal); guided's AUC and TPR@1%FPR minus HSJA's at the largest budget, with paired bootstrap intervals.

    PYTHONPATH=src python bench/bench_distance.py                  # (a) and (b); (b) needs ../shared/data/cifar10.npz
    PYTHONPATH=src python bench/bench_distance.py --part linear    # (a) only
    PYTHONPATH=src python bench/bench_distance.py --quick          # seconds: tiny (a), (b) on a tiny digits target
    PYTHONPATH=src python bench/bench_distance.py --part cifar --candidates 1000 --attacks boundary-hsja

Writes distance.md, distance.json and (part b) the raw scores cifar_scores.npz under bench/results/distance/
(``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from labelleak.attacks import ShadowData, ShadowRecipe, create_attack
from labelleak.data.loaders import DEFAULT_CIFAR10_PLACES
from labelleak.metrics import auc, tpr_at_fpr
from labelleak.oracle import CallableOracle

RESULTS = Path(__file__).parent / "results" / "distance"
LINEAR_CONFIGS = ((20, 2), (100, 2), (20, 3), (48, 7), (100, 10))  # (features, classes)
BUDGETS = (500, 2000, 10_000)
CIFAR_BUDGETS = (50, 100, 200, 500, 1000, 2000)


class Linear:
    """``argmax(W x + b)`` with its exact L2 distance to the nearest decision boundary (no box constraint)."""

    def __init__(self, d: int, k: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.W, self.b = rng.normal(size=(k, d)), rng.normal(size=k) * 0.1
        self.d, self.k = d, k

    def logits(self, x: np.ndarray) -> np.ndarray:
        x = x.reshape(len(x), -1).astype(np.float64)
        return (x[:, None, :] * self.W[None]).sum(-1) + self.b  # row-wise: answers never depend on the batch

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.logits(x).argmax(1)

    def distance(self, x: np.ndarray) -> np.ndarray:
        z = self.logits(x)
        c = z.argmax(1)
        rows = np.arange(len(x))
        diff = self.W[c][:, None, :] - self.W[None]  # (N, k, d)
        gap = z[rows, c][:, None] - z
        norm = np.linalg.norm(diff, axis=2)
        dist = np.where(norm > 0, gap / np.where(norm > 0, norm, 1), np.inf)
        dist[rows, c] = np.inf
        return dist.min(1)


def linear_errors(
    d: int, k: int, *, n: int, n_shadow: int, budgets: tuple[int, ...], seed: int, max_iter: int
) -> dict[str, Any]:
    """Relative errors of plain and guided HSJA against the exact distance on one generated linear model."""
    model = Linear(d, k, seed)
    rng = np.random.default_rng(seed + 1)
    x = (rng.normal(size=(n, d)) * 0.5).astype(np.float32)
    pool = (rng.normal(size=(2 * n_shadow, d)) * 0.5).astype(np.float32)
    shadow = ShadowData(pool[:n_shadow], model(pool[:n_shadow]), pool[n_shadow:], model(pool[n_shadow:]))
    oracle = CallableOracle(model, input_shape=(d,), n_classes=k, bounds=(-10.0, 10.0))
    y, exact = model(x), model.distance(x)
    recipe = ShadowRecipe(hidden=(), epochs=60, lr=1e-2, batch_size=64)
    common = dict(max_iter=max_iter, seed=seed, milestones=budgets)
    out: dict[str, Any] = {"features": d, "classes": k, "candidates": n, "shadow_samples": 2 * n_shadow}
    for name, extra in (("plain", {}), ("guided", {"shadow_recipe": recipe})):
        attack = create_attack("boundary-hsja" if name == "plain" else "boundary-guided", **common, **extra)
        res = attack(oracle, x, y, shadow=shadow, max_queries_per_sample=max(budgets))
        rows = {}
        for b in budgets:
            rel = (res.extras["milestone_scores"][b] - exact) / exact
            rows[b] = {
                "within_5pct": float(np.mean(np.abs(rel) <= 0.05)),
                "median_rel_error": float(np.median(rel)),
                "p90_rel_error": float(np.quantile(rel, 0.9)),
                "below_exact": float(np.mean(rel < -1e-4)),
            }
        out[name] = rows
        out[f"{name}_stats"] = {k2: v for k2, v in res.extras.items() if k2.startswith(("prior_", "started_"))}
    return out


def linear_table(results: list[dict[str, Any]], budgets: tuple[int, ...]) -> str:
    lines = [
        "| features | classes | queries | within 5% plain / guided | median error plain / guided "
        "| p90 error plain / guided | below exact plain / guided |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for b in budgets:
            p, g = r["plain"][b], r["guided"][b]
            lines.append(
                f"| {r['features']} | {r['classes']} | {b} | {p['within_5pct']:.0%} / {g['within_5pct']:.0%} "
                f"| {p['median_rel_error']:.2%} / {g['median_rel_error']:.2%} "
                f"| {p['p90_rel_error']:.2%} / {g['p90_rel_error']:.2%} "
                f"| {p['below_exact']:.0%} / {g['below_exact']:.0%} |"
            )
    return "\n".join(lines)


def cifar_config(args: argparse.Namespace) -> Any:
    """The first run of the ``queries`` plan at cpu scale, or a tiny digits audit with ``--quick``."""
    from labelleak.pipeline.plan import load_plan

    if args.quick:
        overrides: dict[str, Any] = dict(
            dataset="digits",
            arch="mlp",
            train_size=100,
            test_size=100,
            reserve_train=100,
            epochs=5,
            shadow_size=100,
            eval_size=20,
        )
    else:
        data = args.data or next((p for p in DEFAULT_CIFAR10_PLACES if Path(p).is_file()), None)
        if data is None or not Path(data).is_file():
            sys.exit(f"CIFAR-10 not found (looked for {', '.join(DEFAULT_CIFAR10_PLACES)}); pass --data PATH")
        overrides = dict(data=str(data), eval_size=args.candidates)
    overrides.update(progress=False, cache_dir=args.cache_dir, thresholds=False, queries=max(args.cifar_budgets))
    return load_plan("queries", scale="cpu", overrides=overrides, out=str(Path(args.out) / "audit")).runs[0].config


CIFAR_ATTACKS = ("boundary-hsja", "boundary-qeba", "boundary-guided")


def cifar_curves(args: argparse.Namespace) -> dict[str, Any]:
    """AUC and TPR@1%FPR per query budget: one run per attack at the largest budget, read at milestones, plus
    boundary-guided capped at ``--cap`` queries (the search then plans its gradient samples for that budget)."""
    from labelleak.pipeline.audit import attack_params
    from labelleak.pipeline.setup import prepare

    cfg = cifar_config(args)
    setup = prepare(cfg)
    top = max(args.cifar_budgets)
    runs = [(name, name, top) for name in args.attacks]
    if args.cap:
        runs.append((f"boundary-guided@{args.cap}", "boundary-guided", args.cap))
    member = np.asarray(setup.is_member, dtype=bool)
    out: dict[str, Any] = {"budgets": list(args.cifar_budgets), "candidates": int(len(setup.x)), "runs": {}}
    scores: dict[str, dict[int, np.ndarray]] = {}
    for label, name, budget in runs:
        budgets = tuple(b for b in args.cifar_budgets if b < budget) + (budget,)
        params = {**attack_params(name, cfg, setup), "milestones": budgets}
        res = create_attack(name, **params)(
            setup.oracle, setup.x, setup.y, shadow=setup.shadow_data, max_queries_per_sample=budget
        )
        scores[label] = {b: res.extras["milestone_scores"][b] for b in budgets}
        out["runs"][label] = {
            "attack": name,
            "budget": budget,
            "curve": [{"queries": b, **rates(member, s)} for b, s in scores[label].items()],
            "seconds": res.seconds,
            **{k: v for k, v in res.extras.items() if k.startswith("prior_") or k.endswith("steps")},
        }
    # raw scores, one array per run and milestone, so other metrics can be read without rerunning
    arrays = {f"{label}/{b}": s for label, by_budget in scores.items() for b, s in by_budget.items()}
    np.savez_compressed(Path(args.out) / "cifar_scores.npz", member=member, **arrays)
    if "boundary-hsja" in scores:
        reference = scores["boundary-hsja"][top]
        out["against_hsja_at_max"] = [
            {"run": label, "queries": b, **paired_difference(member, s, reference)}
            for label in scores
            if label.startswith("boundary-guided")
            for b, s in scores[label].items()
        ]
    return out


def rates(member: np.ndarray, s: np.ndarray) -> dict[str, float]:
    return {
        "auc": auc(member, s),
        "tpr_at_1pct_fpr": tpr_at_fpr(member, s, 0.01),
        "tpr_at_0.1pct_fpr": tpr_at_fpr(member, s, 0.001),
    }


def paired_difference(member: np.ndarray, a: np.ndarray, b: np.ndarray, n_boot: int = 1000) -> dict[str, float]:
    """AUC(a) - AUC(b) and TPR@1%FPR(a) - TPR@1%FPR(b) on the same candidates, with paired percentile-bootstrap
    95% intervals (each resample draws members and non-members separately and scores both attacks on it)."""
    rng = np.random.default_rng(0)
    members, others = np.flatnonzero(member), np.flatnonzero(~member)
    metrics = {"auc": auc, "tpr_at_1pct_fpr": lambda m, s: tpr_at_fpr(m, s, 0.01)}
    diffs = np.empty((n_boot, len(metrics)))
    for i in range(n_boot):
        sel = np.r_[rng.choice(members, len(members)), rng.choice(others, len(others))]
        diffs[i] = [f(member[sel], a[sel]) - f(member[sel], b[sel]) for f in metrics.values()]
    out: dict[str, float] = {}
    for j, (key, f) in enumerate(metrics.items()):
        low, high = np.quantile(diffs[:, j], [0.025, 0.975])
        out.update({f"{key}_difference": f(member, a) - f(member, b), f"{key}_low": low, f"{key}_high": high})
    return {k: float(v) for k, v in out.items()}


def cifar_table(res: dict[str, Any]) -> str:
    runs = res["runs"]
    head = " | ".join(f"{label} {m}" for label in runs for m in ("AUC", "TPR@1%FPR"))
    lines = [f"| queries/candidate | {head} |", "|---" * (1 + 2 * len(runs)) + "|"]
    for b in res["budgets"]:
        cells = []
        for run in runs.values():
            point = next((c for c in run["curve"] if c["queries"] == b), None)
            cells += [f"{point['auc']:.3f}", f"{point['tpr_at_1pct_fpr']:.3f}"] if point else ["", ""]
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    if "against_hsja_at_max" in res:
        top = max(res["budgets"])
        lines += [
            "",
            f"| run | queries/candidate | AUC - HSJA AUC at {top} (paired 95% CI) "
            f"| TPR@1%FPR - HSJA's at {top} (paired 95% CI) |",
            "|---|---|---|---|",
        ]
        for d in res["against_hsja_at_max"]:
            lines.append(
                f"| {d['run']} | {d['queries']} "
                f"| {d['auc_difference']:+.3f} [{d['auc_low']:+.3f}, {d['auc_high']:+.3f}] "
                f"| {d['tpr_at_1pct_fpr_difference']:+.3f} [{d['tpr_at_1pct_fpr_low']:+.3f}, "
                f"{d['tpr_at_1pct_fpr_high']:+.3f}] |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["linear", "cifar", "all"], default="all")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks that the script works")
    ap.add_argument("--candidates", type=int, default=200, help="linear: candidates per model; cifar: per class")
    ap.add_argument("--seeds", type=int, default=1, help="linear models per configuration")
    ap.add_argument("--attacks", default=",".join(CIFAR_ATTACKS), help="cifar: attacks run at the largest budget")
    ap.add_argument("--cap", type=int, default=200, help="cifar: also run boundary-guided capped here (0: not)")
    ap.add_argument("--data", default=None)
    ap.add_argument("--cache-dir", default=".labelleak-cache")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    args.cifar_budgets = (20, 50) if args.quick else CIFAR_BUDGETS
    args.attacks = [a for a in args.attacks.split(",") if a]
    if unknown := set(args.attacks) - set(CIFAR_ATTACKS):
        ap.error(f"--attacks: unknown {sorted(unknown)}; choose from {', '.join(CIFAR_ATTACKS)}")
    if args.quick:
        args.cap = min(args.cap, 20)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {}
    sections = []
    if args.part in ("linear", "all"):
        budgets = (100, 300) if args.quick else BUDGETS
        configs = ((6, 2), (6, 3)) if args.quick else LINEAR_CONFIGS
        n = 12 if args.quick else args.candidates
        linear = [
            linear_errors(d, k, n=n, n_shadow=4 * n, budgets=budgets, seed=s, max_iter=4 if args.quick else 50)
            for d, k in configs
            for s in range(args.seeds)
        ]
        report["linear"] = linear
        sections.append("## Closed-form linear models\n\n" + linear_table(linear, budgets))
    if args.part in ("cifar", "all"):
        report["cifar10"] = cifar_curves(args)
        sections.append("## CIFAR-10 CPU-scale target\n\n" + cifar_table(report["cifar10"]))
    text = "\n\n".join(sections) + "\n"
    (out / "distance.md").write_text(text)
    (out / "distance.json").write_text(json.dumps(report, indent=2, default=str))
    print(text)


if __name__ == "__main__":
    main()
