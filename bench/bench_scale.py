"""Benchmark: speed-up of the Ray backend with 2 workers over 1, and the Ray backend's overhead with 1 worker.

Measured side by side in one run (same target, same candidates, same models):

(a) HSJA (``boundary-hsja``) on the CIFAR-10 CPU-scale target of ``labelleak reproduce queries`` (its cpu plan:
    CNN7 at width 0.25; the target is trained once, or loaded from the model cache), ``--candidates`` of them;
(b) training 4 LiRA reference models through ``train_reference_models`` with each executor's ``map`` (the path an
    audit takes: the target's architecture on random sets of the target's size from the shadow pool; no model
    cache, so every run trains).

First, the machine's own ceiling: how much more forward-pass work two 1-thread processes do than one (no Ray);
no backend can beat it. For each job: seconds with the local backend, Ray with 1 worker, Ray with 2 workers;
``speedup_2_over_1`` and ``ray_overhead_1_worker`` (ray-1 / local - 1) are written as JSON to
bench/results/scale-<time>.json. The HSJA runs are checked to give byte-identical scores across backends.

    PYTHONPATH=src python bench/bench_scale.py                     # the real measurement (an hour or more on 2 cores)
    PYTHONPATH=src python bench/bench_scale.py --smoke             # digits, seconds: checks that the script works

CIFAR-10 needs ../shared/data/cifar10.npz (or --data PATH); the script says so and stops when it is absent.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from labelleak.attacks import create_attack
from labelleak.attacks._reference import train_reference_models
from labelleak.attacks._shadow import ShadowRecipe
from labelleak.data.loaders import DEFAULT_CIFAR10_PLACES
from labelleak.distributed import LocalExecutor, RayExecutor
from labelleak.pipeline.plan import load_plan
from labelleak.pipeline.setup import prepare

RESULTS = Path(__file__).parent / "results"


def audit_config(args: argparse.Namespace):
    """The first run of the ``queries`` plan at cpu scale (or a tiny digits audit with ``--smoke``)."""
    if args.smoke:
        overrides = dict(
            dataset="digits",
            arch="mlp",
            train_size=100,
            test_size=100,
            reserve_train=100,
            epochs=5,
            shadow_size=100,
            queries=200,
            max_iter=3,
            max_eval=50,
            init_eval=10,
            eval_size=20,
        )
    else:
        data = args.data or next((p for p in DEFAULT_CIFAR10_PLACES if Path(p).is_file()), None)
        if data is None or not Path(data).is_file():
            sys.exit(f"CIFAR-10 not found (looked for {', '.join(DEFAULT_CIFAR10_PLACES)}); pass --data PATH")
        overrides = dict(data=str(data))
    overrides.update(progress=False, cache_dir=args.cache_dir, thresholds=False)
    plan = load_plan("queries", scale="cpu", overrides=overrides, out=args.out)
    return plan.runs[0].config


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def ratios(seconds: dict[str, float]) -> dict[str, float]:
    """Speed-up of two 1-CPU workers over one; overhead of one worker holding the whole machine (as many CPUs
    and torch threads as the local backend uses) over the local backend."""
    return {
        **{f"seconds_{k}": v for k, v in seconds.items()},
        "speedup_2_over_1": seconds["ray_1"] / seconds["ray_2"],
        "ray_overhead_1_worker": seconds["ray_1_all_cpus"] / seconds["local"] - 1.0,
    }


def bench_hsja(cfg, setup, n: int, executors: dict) -> dict:
    attack = create_attack(
        "boundary-hsja",
        max_iter=cfg.max_iter,
        max_eval=cfg.max_eval,
        init_eval=cfg.init_eval,
        init_size=cfg.init_size,
        seed=cfg.seed,
    )
    x, y = setup.x[:n], setup.y[:n]
    seconds, scores = {}, {}
    for ex in executors.values():  # untimed: workers start, import, and receive the target once
        ex.run_attack(attack, setup.oracle, setup.x[:2], setup.y[:2], max_queries_per_sample=cfg.queries)
    for name, ex in executors.items():
        seconds[name], result = timed(
            lambda ex=ex: ex.run_attack(attack, setup.oracle, x, y, max_queries_per_sample=cfg.queries)
        )
        scores[name] = result.scores.tobytes() + result.queries.tobytes()
    return {
        "candidates": n,
        "queries_per_candidate": cfg.queries,
        **ratios(seconds),
        "identical_across_backends": len(set(scores.values())) == 1,
    }


def machine_ceiling(model_dir: str, seconds: float = 20.0) -> dict:
    """What two cores give without Ray: one 1-thread process running the target's forward pass, then two at once.

    ``ceiling`` = work done by two processes / work done by one in the same time; the Ray speed-up cannot beat it.
    """
    code = (
        "import sys, time, torch\n"
        "from labelleak.models.store import load_model\n"
        "torch.set_num_threads(1)\n"
        "model, spec, _ = load_model(sys.argv[1])\n"
        "model.eval()\n"
        "x = torch.rand(256, *spec.input_shape)\n"
        "end, n = time.perf_counter() + float(sys.argv[2]), 0\n"
        "with torch.no_grad():\n"
        "    while time.perf_counter() < end:\n"
        "        model(x); n += 1\n"
        "print(n)\n"
    )

    def run(processes: int) -> int:
        procs = [
            subprocess.Popen([sys.executable, "-c", code, model_dir, str(seconds)], stdout=subprocess.PIPE, text=True)
            for _ in range(processes)
        ]
        return sum(int(p.communicate()[0]) for p in procs)

    one, two = run(1), run(2)
    return {"forwards_1_process": one, "forwards_2_processes": two, "ceiling": two / one}


def warm(_: int) -> None:
    """Start a worker and import labelleak there, so worker start-up is not timed."""
    import labelleak.attacks  # noqa: F401


def bench_lira(cfg, setup, k: int, executors: dict) -> dict:
    """The audit's own path: ``train_reference_models`` with each executor's ``map`` (Ray: one task per model)."""
    recipe = ShadowRecipe(
        arch=setup.arch,
        width=cfg.width,
        epochs=cfg.epochs,
        lr=cfg.lr,
        batch_size=cfg.batch_size,
        lr_schedule=cfg.lr_schedule,
    )  # no cache_dir: every run trains
    shape, n_classes = setup.oracle.input_shape, setup.oracle.n_classes
    x, y = torch.from_numpy(setup.x[:2]), torch.from_numpy(setup.y[:2])

    def train(ex) -> None:
        train_reference_models(
            x,
            y,
            setup.shadow_data,
            n_reference=k,
            online=False,
            recipe=recipe,
            input_shape=shape,
            n_classes=n_classes,
            seed=cfg.seed,
            reference_size=setup.reference_size,
            map_fn=ex.map,
        )

    seconds = {name: timed(lambda ex=ex: train(ex))[0] for name, ex in executors.items()}
    sd = setup.shadow_data
    return {"models": k, "epochs": cfg.epochs, "pool": len(sd.x_train) + len(sd.x_test), **ratios(seconds)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny digits setting: checks the script, measures nothing")
    ap.add_argument("--data", help="CIFAR-10 .npz (default: looked for in ../shared/data)")
    ap.add_argument("--candidates", type=int, default=40, help="HSJA candidates (default 40)")
    ap.add_argument("--models", type=int, default=4, help="LiRA reference models (default 4; 0 skips that job)")
    ap.add_argument("--cache-dir", default=".labelleak-cache")
    ap.add_argument("--out", default="bench-scale-out")
    args = ap.parse_args()
    cfg = audit_config(args)
    setup = prepare(cfg)
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    torch.set_num_threads(2)
    executors = {
        "local": LocalExecutor(),
        "ray_1_all_cpus": RayExecutor(workers=1, worker_cpus=2),
        "ray_1": RayExecutor(workers=1, worker_cpus=1),
        "ray_2": RayExecutor(workers=2, worker_cpus=1),
    }
    executors["ray_2"].map(warm, [0, 1])
    executors["ray_1_all_cpus"].map(warm, [0])
    report = {
        "setting": "smoke (digits)" if args.smoke else "cifar10 cpu plan (reproduce queries)",
        "machine_cpus": 2,
        "machine_ceiling": machine_ceiling(setup.target["model_dir"], 5.0 if args.smoke else 20.0),
        "hsja": bench_hsja(cfg, setup, min(args.candidates, len(setup.x)), executors),
    }
    if args.models > 0:
        report["lira_reference_models"] = bench_lira(cfg, setup, args.models, executors)
    ray.shutdown()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"scale-{'smoke-' if args.smoke else ''}{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
