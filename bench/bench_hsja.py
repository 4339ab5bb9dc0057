"""Benchmark: labelleak's batched HopSkipJump membership attack against IBM ART's LabelOnlyDecisionBoundary.

Both attack the same trained target, on the same candidates, in one process. Reported per configuration:
seconds per candidate, queries per candidate, AUC, TPR@1%FPR, and the wall time divided by the physical limit
(queries / peak batched throughput of the same model, measured in the same run).

Run it in its own environment (ART is not a labelleak dependency):

    bash bench/setup_art_env.sh
    bench/.venv-art/bin/python bench/bench_hsja.py --dataset digits --candidates 50
    bench/.venv-art/bin/python bench/bench_hsja.py --dataset cifar10 --candidates 10 --max-iter 10 --max-eval 1000

CIFAR-10 needs ../shared/data/cifar10.npz (or --data PATH); the script says so and stops when it is absent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from labelleak.attacks import create_attack
from labelleak.data.loaders import DEFAULT_CIFAR10_PLACES
from labelleak.metrics import auc, tpr_at_fpr
from labelleak.oracle import TorchOracle
from labelleak.pipeline import make_config
from labelleak.pipeline.setup import prepare


class CountingModel(nn.Module):
    """Wraps the target and counts the samples it is asked about (ART has no query accounting of its own)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.samples = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.samples += int(x.shape[0])
        return self.model(x.float())


@torch.no_grad()
def peak_throughput(model: nn.Module, shape: tuple[int, ...], n: int) -> float:
    """The model's best samples per second (argmax included) over chunk sizes 32..4096: the physical limit."""
    x = torch.rand(n, *shape, generator=torch.Generator().manual_seed(0))
    best = 0.0
    for chunk in (32, 64, 128, 256, 512, 1024, 2048, 4096):
        start = time.perf_counter()
        for i in range(0, n, chunk):
            model(x[i : i + chunk]).argmax(1)
        best = max(best, n / (time.perf_counter() - start))
    return best


def run_art(model: nn.Module, x: np.ndarray, y: np.ndarray, n_classes: int, params: dict) -> dict:
    from art.attacks.inference.membership_inference import LabelOnlyDecisionBoundary
    from art.estimators.classification import PyTorchClassifier

    counter = CountingModel(model).eval()
    clf = PyTorchClassifier(
        model=counter,
        loss=nn.CrossEntropyLoss(),
        input_shape=x.shape[1:],
        nb_classes=n_classes,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )
    attack = LabelOnlyDecisionBoundary(clf, distance_threshold_tau=1e-9)
    np.random.seed(0)  # ART draws from NumPy's global RNG
    start = time.perf_counter()
    prob = attack.infer(x, np.eye(n_classes)[y], probabilities=True, norm=2, verbose=False, **params)
    seconds = time.perf_counter() - start
    p1 = np.clip(prob[:, 1], 1e-15, 1 - 1e-15)
    distance = np.where(prob[:, 1] > 0, 1e-9 + np.log(p1 / (1 - p1)), 0.0)  # invert ART's sigmoid(d - tau)
    return {"scores": prob[:, 1], "distance": distance, "seconds": seconds, "queries": counter.samples}


def run_ours(oracle: TorchOracle, x: np.ndarray, y: np.ndarray, params: dict, cap: int | None) -> dict:
    attack = create_attack("boundary-hsja", seed=0, **params)
    before = oracle.queries
    start = time.perf_counter()
    res = attack(oracle, x, y, max_queries_per_sample=cap)
    seconds = time.perf_counter() - start
    return {"scores": res.scores, "distance": res.scores, "seconds": seconds, "queries": oracle.queries - before}


def summarise(name: str, run: dict, is_member: np.ndarray, peak: float) -> dict:
    n = len(is_member)
    limit = run["queries"] / peak
    return {
        "method": name,
        "seconds_per_candidate": run["seconds"] / n,
        "queries_per_candidate": run["queries"] / n,
        "auc": auc(is_member, run["scores"]),
        "tpr_at_1pct_fpr": tpr_at_fpr(is_member, run["scores"], 0.01),
        "seconds": run["seconds"],
        "physical_limit_seconds": limit,
        "wall_over_limit": run["seconds"] / limit,
    }


def target_for(args: argparse.Namespace):
    if args.dataset == "digits":
        cfg = make_config(progress=False, cache_dir=args.cache_dir, arch=args.arch or "auto")
    else:
        data = args.data or next((p for p in DEFAULT_CIFAR10_PLACES if Path(p).is_file()), None)
        if data is None or not Path(data).is_file():
            sys.exit(f"cifar10 data not found (looked in {list(DEFAULT_CIFAR10_PLACES)}); pass --data PATH")
        cfg = make_config(
            dataset="cifar10",
            data=data,
            arch=args.arch or "cnn7",
            width=0.25,
            epochs=args.epochs,
            train_size=2000,
            progress=False,
            cache_dir=args.cache_dir,
        )
    return prepare(cfg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=["digits", "cifar10"], default="digits")
    ap.add_argument("--data", default=None)
    ap.add_argument("--arch", default=None, help="target architecture (digits: mlp or cnn2; cifar10: cnn7)")
    ap.add_argument("--candidates", type=int, default=50, help="members and non-members each")
    ap.add_argument("--max-iter", type=int, default=50)
    ap.add_argument("--max-eval", type=int, default=10_000)
    ap.add_argument("--init-eval", type=int, default=100)
    ap.add_argument("--init-size", type=int, default=100)
    ap.add_argument("--caps", default="100,200,500,1000,2000,5000", help="our reduced per-candidate budgets")
    ap.add_argument("--epochs", type=int, default=15, help="CIFAR target training epochs")
    ap.add_argument("--cache-dir", default=".labelleak-cache")
    ap.add_argument("--out", default="bench/out")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    setup = target_for(args)
    k = args.candidates
    n_members = int(setup.is_member.sum())
    idx = np.r_[np.arange(k), n_members + np.arange(k)]
    x, y = setup.x[idx], setup.y[idx]
    is_member = np.r_[np.ones(k, bool), np.zeros(k, bool)]
    oracle = setup.oracle
    peak = peak_throughput(oracle.model, oracle.input_shape, 100_000 if setup.arch == "mlp" else 8_000)
    params = {
        "max_iter": args.max_iter,
        "max_eval": args.max_eval,
        "init_eval": args.init_eval,
        "init_size": args.init_size,
    }

    rows = []
    ours = run_ours(oracle, x, y, params, cap=None)
    rows.append(summarise("labelleak (equal parameters)", ours, is_member, peak))
    for cap in [int(c) for c in args.caps.split(",") if c]:
        rows.append(summarise(f"labelleak (cap {cap} queries)", run_ours(oracle, x, y, params, cap), is_member, peak))
    art = run_art(oracle.model, x, y, setup.dataset["n_classes"], params)
    rows.append(summarise("ART 1.20.1 LabelOnlyDecisionBoundary", art, is_member, peak))

    art_row, equal_row = rows[-1], rows[0]
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(1000):  # paired bootstrap of the AUC difference (same resampled candidates for both)
        m_idx = rng.choice(np.flatnonzero(is_member), k)
        n_idx = rng.choice(np.flatnonzero(~is_member), k)
        sel = np.r_[m_idx, n_idx]
        diffs.append(auc(is_member[sel], ours["scores"][sel]) - auc(is_member[sel], art["scores"][sel]))
    both = (art["distance"] > 0) & (ours["distance"] > 0)
    ratio = ours["distance"][both] / art["distance"][both]
    reach = [r for r in rows[:-1] if r["auc"] >= art_row["auc"] - 0.01]
    fastest = min(reach, key=lambda r: r["seconds"]) if reach else None
    report = {
        "dataset": args.dataset,
        "candidates_per_class": k,
        "params": params,
        "peak_queries_per_second": peak,
        "target": {"train_accuracy": setup.target["train_accuracy"], "test_accuracy": setup.target["test_accuracy"]},
        "rows": rows,
        "speedup_vs_art_equal_params": art_row["seconds"] / equal_row["seconds"],
        "auc_difference_equal_params": equal_row["auc"] - art_row["auc"],
        "auc_difference_95ci": [float(np.quantile(diffs, 0.025)), float(np.quantile(diffs, 0.975))],
        "distance_ratio_ours_over_art": {
            "median": float(np.median(ratio)),
            "p10": float(np.quantile(ratio, 0.1)),
            "p90": float(np.quantile(ratio, 0.9)),
            "n": int(both.sum()),
        },
        "arch": setup.arch,
        "fastest_within_0.01_of_art_auc": fastest["method"] if fastest else None,
        "time_to_art_auc_speedup": art_row["seconds"] / fastest["seconds"] if fastest else None,
        "threads": torch.get_num_threads(),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"hsja_{args.dataset}.json").write_text(json.dumps(report, indent=2))
    lines = [
        "| method | s/candidate | queries/candidate | AUC | TPR@1%FPR | wall / physical limit |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['seconds_per_candidate']:.4f} | {r['queries_per_candidate']:.0f} | "
            f"{r['auc']:.3f} | {r['tpr_at_1pct_fpr']:.3f} | {r['wall_over_limit']:.2f} |"
        )
    table = "\n".join(lines)
    (out / f"hsja_{args.dataset}.md").write_text(table + "\n")
    print(table)
    print(json.dumps({k2: v for k2, v in report.items() if k2 != "rows"}, indent=2))


if __name__ == "__main__":
    main()
