"""The Ray backend on a local Ray instance (2 CPUs): sharded attacks give the local backend's exact arrays, a
worker killed mid-attack costs only its shard's unjournaled progress, and an audit gives the same scores.csv."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from _distributed_world import PER_CANDIDATE, SHAPE, digits_world  # noqa: E402

from labelleak.attacks import create_attack  # noqa: E402
from labelleak.attacks._shadow import ShadowRecipe  # noqa: E402
from labelleak.distributed import LocalExecutor, RayExecutor  # noqa: E402
from labelleak.oracle import TorchOracle, TorchScoreOracle  # noqa: E402
from labelleak.oracle.cache import CachedOracle  # noqa: E402
from labelleak.oracle.remote.transport import TransportStats  # noqa: E402
from labelleak.pipeline.audit import run_audit  # noqa: E402
from labelleak.pipeline.config import make_config  # noqa: E402

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_local():
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # DyingOracle travels to the workers
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def world():
    return digits_world()


def oracle_for(world, kind):
    cls = TorchScoreOracle if kind == "scores" else TorchOracle
    return cls(world["model"], input_shape=SHAPE, n_classes=10)


def arrays(result):
    return result.scores.tobytes(), result.status.tobytes(), result.queries.tobytes()


# boundary-guided trains its shadow model in every shard: a 1-thread worker's model equals the 2-thread driver's only
# up to rounding, which moves its starts (byte-identical across local shards: tests/pipeline/test_distributed.py)
ON_WORKERS = [c for c in PER_CANDIDATE if c[0] != "boundary-guided"]


@pytest.mark.parametrize("name,params,budget,kind", ON_WORKERS, ids=[c[0] for c in ON_WORKERS])
def test_two_ray_workers_give_the_local_arrays(ray_local, world, name, params, budget, kind):
    attack = create_attack(name, **params)
    run = dict(shadow=world["shadow"], max_queries_per_sample=budget)
    here, oracle = oracle_for(world, kind), oracle_for(world, kind)
    local = LocalExecutor().run_attack(attack, here, world["x"], world["y"], **run)
    remote = RayExecutor(workers=2).run_attack(attack, oracle, world["x"], world["y"], **run)
    assert arrays(remote) == arrays(local)
    assert oracle.queries == here.queries > 0  # the workers' queries are counted on the driver's oracle


def test_an_attack_that_cannot_be_sharded_runs_whole_on_one_worker(ray_local, world):
    attack = create_attack("transfer", hidden=(32,), epochs=3, seed=0)
    local = LocalExecutor().run_attack(
        attack, oracle_for(world, "labels"), world["x"], world["y"], shadow=world["shadow"]
    )
    remote = RayExecutor(workers=2).run_attack(
        attack, oracle_for(world, "labels"), world["x"], world["y"], shadow=world["shadow"]
    )
    assert arrays(remote) == arrays(local)
    assert remote.setup_queries == local.setup_queries == len(world["shadow"].x_train)


class CountingRayExecutor(RayExecutor):
    """Records the training jobs it sends to the workers."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.jobs: list[int] = []

    def map(self, fn, items):
        self.jobs.append(len(items))
        return super().map(fn, items)


def test_reference_models_train_on_the_workers_to_the_local_scores(ray_local, world):
    recipe = ShadowRecipe(arch="mlp", epochs=3, batch_size=32)
    attack = create_attack("lira", n_reference=4, shadow_recipe=recipe, seed=0)
    run = dict(shadow=world["shadow"])
    local = LocalExecutor().run_attack(attack, oracle_for(world, "scores"), world["x"], world["y"], **run)
    ray_run = CountingRayExecutor(workers=2)
    remote = ray_run.run_attack(attack, oracle_for(world, "scores"), world["x"], world["y"], **run)
    assert ray_run.jobs == [4]  # the four models were Ray tasks, the attack itself ran in the driver
    # a 1-thread worker and the 2-thread driver sum gradients in another order: equal up to rounding, not bytes
    np.testing.assert_allclose(remote.scores, local.scores, rtol=1e-4, atol=1e-6)
    assert remote.params == local.params and attack.train_map is None  # the caller's attack is left as it was


class DyingOracle(TorchOracle):
    """Kills its worker process once, mid-attack: the first process to answer 300 samples pauses (so its journal is
    flushed), then exits without cleanup on its next batch. ``marker`` records that it happened."""

    def __init__(self, model, marker: str) -> None:
        super().__init__(model, input_shape=SHAPE, n_classes=10, batch_size=64)
        self.marker = marker

    def _predict(self, x):
        if self.queries >= 300 and not Path(self.marker + ".done").exists():
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                time.sleep(1.2)  # the journal flushes after this answer (it commits every second)
            except FileExistsError:
                if Path(self.marker).read_text() == str(os.getpid()):
                    Path(self.marker + ".done").touch()
                    os._exit(1)
        return super()._predict(x)


def test_a_killed_worker_is_retried_and_replays_its_journal(ray_local, world, tmp_path):
    attack = create_attack("boundary-hsja", max_iter=3, max_eval=40, init_eval=10, init_size=10)
    run = dict(max_queries_per_sample=120)
    local = LocalExecutor().run_attack(attack, oracle_for(world, "labels"), world["x"], world["y"], **run)

    def audit_like(folder: Path, target) -> tuple:
        folder.mkdir()
        oracle = CachedOracle(target, folder / "journal.bin", lookup=False)
        result = RayExecutor(workers=2, journal_dir=folder / "shards").run_attack(
            attack, oracle, world["x"], world["y"], **run
        )
        oracle.close()
        return result, oracle.inner.queries

    clean, asked_clean = audit_like(tmp_path / "clean", oracle_for(world, "labels"))
    marker = str(tmp_path / "killed")
    killed, asked_killed = audit_like(tmp_path / "kill", DyingOracle(world["model"], marker))
    assert Path(marker + ".done").exists()  # a worker did die mid-attack
    assert arrays(killed) == arrays(clean) == arrays(local)
    assert asked_killed < asked_clean  # the retried shard replayed its journal instead of asking again
    assert sorted(p.name for p in (tmp_path / "kill" / "shards").iterdir()) == [
        "boundary-hsja-0-of-2.bin",
        "boundary-hsja-1-of-2.bin",
    ]


def test_an_audit_on_ray_writes_the_local_scores(ray_local, tmp_path):
    common = dict(
        dataset="digits",
        train_size=40,
        eval_size=20,
        epochs=5,
        attacks=["gap", "boundary-hsja"],
        queries=80,
        max_iter=2,
        max_eval=30,
        init_eval=10,
        init_size=10,
        noise_samples=20,
        n_boot=5,
        progress=False,
        cache_dir=str(tmp_path / "cache"),
    )
    ran = {
        "local": run_audit(make_config(out=str(tmp_path / "local"), **common)),
        "ray": run_audit(make_config(out=str(tmp_path / "ray"), backend="ray", workers=2, **common)),
    }
    local, remote = (tmp_path / "local" / "scores.csv").read_text(), (tmp_path / "ray" / "scores.csv").read_text()
    assert local == remote and local.count("\n") == 2 * 40 + 1
    # the shadow-model calibration and the data-free threshold run sharded too, to the same thresholds
    hsja = {k: r["attacks"]["boundary-hsja"] for k, r in ran.items()}
    assert hsja["ray"]["threshold"] == hsja["local"]["threshold"]
    assert hsja["ray"]["threshold_source"] == "shadow-model-attack"
    assert json.dumps(hsja["ray"]["data_free"]) == json.dumps(hsja["local"]["data_free"])  # NaN-safe
    assert hsja["ray"]["target_queries"] == hsja["local"]["target_queries"]
    with np.load(tmp_path / "ray" / "arrays.npz") as z:
        assert int(z["boundary-hsja/queries"].sum()) > 40
    assert not (tmp_path / "ray" / "checkpoint" / "shards").exists()  # journals removed once finished


class FakeTransport:
    """Travels as a real transport does: as its settings, with fresh statistics where it lands."""

    def __init__(self) -> None:
        self.stats = TransportStats()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()


class ClientOracle(TorchOracle):
    """A target behind a client that counts one request per batch, as a remote oracle's transport does."""

    def __init__(self, model) -> None:
        super().__init__(model, input_shape=SHAPE, n_classes=10, batch_size=64)
        self.transport = FakeTransport()

    def _predict(self, x):
        self.transport.stats.add(requests=1, retries=len(x) % 2, wait=0.5)
        return super()._predict(x)


def test_the_workers_client_statistics_reach_the_drivers_oracle(ray_local, world):
    attack = create_attack("boundary-hsja", max_iter=2, max_eval=30, init_eval=10, init_size=10)
    run = dict(max_queries_per_sample=80)
    local = ClientOracle(world["model"])
    LocalExecutor().run_attack(attack, local, world["x"], world["y"], **run)
    driver = ClientOracle(world["model"])
    RayExecutor(workers=2).run_attack(attack, driver, world["x"], world["y"], **run)
    assert driver.queries == local.queries
    assert driver.transport.stats.requests >= local.transport.stats.requests > 0  # two clients batch apart
    assert driver.transport.stats.wait_seconds == pytest.approx(0.5 * driver.transport.stats.requests)


def _stamped(seconds: float) -> tuple[float, float]:
    start = time.monotonic()
    time.sleep(seconds)
    return start, time.monotonic()


@pytest.mark.parametrize("workers", [1, 2])
def test_map_keeps_at_most_workers_jobs_in_flight(ray_local, workers):
    spans = RayExecutor(workers=workers).map(_stamped, [0.4] * 4)
    most = max(sum(s <= start < e for s, e in spans) for start, _ in spans)  # jobs running at any job's start
    assert most <= workers  # the 2-CPU instance would otherwise run two 1-CPU jobs at once for workers=1


@pytest.mark.parametrize("kind", ["onnx", "pt2", "torchscript"])
def test_model_files_travel_to_the_workers_as_files_and_give_the_local_arrays(ray_local, world, kind, tmp_path):
    """An ONNX session or an exported program cannot be pickled: the oracle travels as the way to reopen its file
    (a 200-line serialisation traceback before)."""
    import torch
    from _distributed_world import HSJA

    from labelleak.oracle.files import load_target

    net, example = world["model"].eval(), torch.rand(2, *SHAPE)
    path = tmp_path / {"onnx": "m.onnx", "pt2": "m.pt2", "torchscript": "m.ts"}[kind]
    if kind == "onnx":
        pytest.importorskip("onnxruntime")
        torch.onnx.export(net, (example,), str(path), input_names=["x"], dynamic_axes={"x": {0: "n"}}, dynamo=False)
    elif kind == "pt2":
        ep = torch.export.export(net, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
        torch.export.save(ep, path)
    else:
        torch.jit.save(torch.jit.trace(net, example), path)
    attack = create_attack("boundary-hsja", **HSJA)
    here, there = load_target(path, input_shape=SHAPE), load_target(path, input_shape=SHAPE)
    local = LocalExecutor().run_attack(attack, here, world["x"], world["y"], max_queries_per_sample=120)
    remote = RayExecutor(workers=2).run_attack(attack, there, world["x"], world["y"], max_queries_per_sample=120)
    assert arrays(remote) == arrays(local)
    assert there.queries == here.queries > 0
