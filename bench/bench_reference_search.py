"""Benchmark: boundary-LiRA's reference searches, one model after another against all K models at once.

Both run in one process, on the same K reference models (digits, cnn2, trained as boundary-lira online trains
them, on ``--reference-size`` rows each) and the same candidates, with boundary-lira's HopSkipJump settings and
per-candidate budget: first the K searches one after another (how boundary-lira searched before the batched
engine), then one search over K x N rows (:mod:`labelleak.attacks._reference_search`). Printed side by side: both
wall times, the ratio, queries per second, and whether every row's distance, status and query count are
identical (they must be). The load average before and after is recorded, since the CPUs may be shared.

    .venv/bin/python bench/bench_reference_search.py --candidates 200 --k 8 --queries 100 \\
        --cache-dir /tmp/benchcache --out bench/results/reference-search/digits-cnn2.json

Measured 2026-12-03 on 2 CPU cores with nothing else heavy running (load average 1.5): 1.06x with the command
above (2.27 s against 2.15 s, 69,700 against 73,800 queries per second), every row identical. An earlier run on
CPUs shared with other jobs (load average 5 to 13) read 1.65x and 0.98x at a thirtieth of this throughput (82.2 s
one after another); the cause was not investigated beyond the load, so those ratios are not evidence. A profile of
the batched search showed the cnn2 forward passes taking about 95% of its time: batching removes the work the
searches repeat per model (the many small calls of the start phase above all), not the forward passes, which on
a CPU are what costs. A GPU, where small calls and overhead dominate, was not measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from labelleak.attacks import ShadowData
from labelleak.attacks._reference import train_reference_models
from labelleak.attacks._reference_search import search_references
from labelleak.attacks._shadow import ShadowRecipe
from labelleak.attacks.boundary_lira import signed_distances
from labelleak.attacks.hsja import HopSkipJump
from labelleak.data import load_digits
from labelleak.oracle import TorchOracle
from labelleak.oracle.budget import BudgetedOracle, QueryLedger


def one_after_another(engine, models, x, y, shape, n_classes, cap):
    """The K searches as boundary-lira ran them before: one TorchOracle and one ledger per model."""
    d, status, queries = [], [], []
    for model in models:
        ledger = QueryLedger(len(x), max_per_sample=cap)
        oracle = BudgetedOracle(TorchOracle(model, input_shape=shape, n_classes=n_classes), ledger)
        dk, sk = signed_distances(engine, oracle, x, y)
        d.append(dk)
        status.append(sk)
        queries.append(ledger.used.clone())
    return np.stack(d), np.stack(status), torch.stack(queries)


def shared_note(before: tuple[float, ...], after: tuple[float, ...]) -> str:
    """Whether other jobs shared the CPUs, read off the 1-minute load averages (this benchmark alone keeps about
    one core busy per torch thread), so a timing taken beside other work says so."""
    busy = max(before[0], after[0]) > 1.5 * torch.get_num_threads()
    return "the CPUs were shared with other jobs; see the load averages" if busy else "nothing else heavy ran"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candidates", type=int, default=300)
    ap.add_argument("--k", type=int, default=8, help="reference models (even: online pairs)")
    ap.add_argument("--queries", type=int, default=1000, help="per-candidate budget on every model")
    ap.add_argument("--reference-size", type=int, default=300, help="rows each reference model trains on")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--cache-dir", default=".labelleak-cache")
    ap.add_argument("--out", default=None, help="write the result JSON here")
    args = ap.parse_args()

    ds = load_digits()
    feats, labels = ds.features(), ds.y
    order = np.random.default_rng(0).permutation(len(feats))
    cand, rest = order[: args.candidates], order[args.candidates :]
    x, y = torch.from_numpy(feats[cand]), torch.from_numpy(labels[cand])
    half = len(rest) // 2
    shadow = ShadowData(feats[rest[:half]], labels[rest[:half]], feats[rest[half:]], labels[rest[half:]])
    shape, n_classes = tuple(feats.shape[1:]), int(labels.max()) + 1
    recipe = ShadowRecipe(arch="cnn2", epochs=args.epochs, cache_dir=args.cache_dir)
    refs = train_reference_models(
        x, y, shadow, n_reference=args.k, online=True, recipe=recipe, input_shape=shape, n_classes=n_classes,
        seed=0, reference_size=args.reference_size,
    )  # fmt: skip
    engine = HopSkipJump(seed=0)  # boundary-lira's defaults: 50 iterations, up to 10,000 evaluations
    load_before = os.getloadavg()

    start = time.perf_counter()
    d_seq, s_seq, q_seq = one_after_another(engine, refs.models, x, y, shape, n_classes, args.queries)
    seq_seconds = time.perf_counter() - start

    start = time.perf_counter()
    got = search_references(
        lambda oracle, xs, ys: signed_distances(engine, oracle, xs, ys), refs.models, x, y, input_shape=shape,
        n_classes=n_classes, bounds=(0.0, 1.0), cap=args.queries,
    )  # fmt: skip
    batch_seconds = time.perf_counter() - start
    load_after = os.getloadavg()

    queries = int(q_seq.sum())
    identical = bool(
        d_seq.tobytes() == got.distance.tobytes()
        and np.array_equal(s_seq, got.status)
        and np.array_equal(q_seq.sum(1).numpy(), got.queries)
    )
    result = {
        "dataset": "digits",
        "arch": "cnn2",
        "candidates": args.candidates,
        "k": args.k,
        "queries_per_candidate_cap": args.queries,
        "reference_size": refs.size,
        "engine": {k: v for k, v in vars(engine).items()},
        "queries": queries,
        "one_after_another_seconds": seq_seconds,
        "all_at_once_seconds": batch_seconds,
        "speedup": seq_seconds / batch_seconds,
        "one_after_another_queries_per_second": queries / seq_seconds,
        "all_at_once_queries_per_second": int(got.queries.sum()) / batch_seconds,
        "identical": identical,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "shared_cpus": shared_note(load_before, load_after),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    print(f"{'':24}{'one after another':>20}{'all at once':>14}")
    print(f"{'wall seconds':24}{seq_seconds:>20.1f}{batch_seconds:>14.1f}")
    print(f"{'queries / second':24}{queries / seq_seconds:>20.0f}{int(got.queries.sum()) / batch_seconds:>14.0f}")
    print(
        f"speedup {seq_seconds / batch_seconds:.2f}x, identical rows: {identical}, load {load_before} -> {load_after}"
    )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
