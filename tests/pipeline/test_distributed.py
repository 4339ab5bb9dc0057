"""Sharding without Ray: shards merged in order equal the unsharded run; budgets split; journals and the model
store are safe for several writers; the config and the missing-extra error."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from _distributed_world import PER_CANDIDATE, SHAPE, digits_world

from labelleak.attacks import create_attack
from labelleak.distributed import LocalExecutor, is_shardable, make_executor, merge_results, shard_bounds, split_total
from labelleak.errors import InvalidInputError, MissingExtraError
from labelleak.models import ModelSpec, ModelStore, build_model
from labelleak.oracle import TorchOracle, TorchScoreOracle
from labelleak.oracle.cache import CachedOracle
from labelleak.pipeline.config import make_config


@pytest.fixture(scope="module")
def world():
    return digits_world()


def oracle_for(world, kind):
    cls = TorchScoreOracle if kind == "scores" else TorchOracle
    return cls(world["model"], input_shape=SHAPE, n_classes=10)


def arrays(result):
    return result.scores.tobytes(), result.status.tobytes(), result.queries.tobytes()


@pytest.mark.parametrize("name,params,budget,kind", PER_CANDIDATE, ids=[c[0] for c in PER_CANDIDATE])
def test_three_shards_in_order_equal_the_whole_batch(world, name, params, budget, kind):
    attack = create_attack(name, **params)
    assert is_shardable(attack)
    run = dict(shadow=world["shadow"], max_queries_per_sample=budget)
    whole = LocalExecutor().run_attack(attack, oracle_for(world, kind), world["x"], world["y"], **run)
    sharded = LocalExecutor(shards=3).run_attack(attack, oracle_for(world, kind), world["x"], world["y"], **run)
    assert arrays(sharded) == arrays(whole)
    assert int(whole.queries.sum()) > 0
    for key in ("distances", "milestone_scores", "per_sample", "operating_points"):
        for k, v in whole.extras.get(key, {}).items():
            np.testing.assert_array_equal(sharded.extras[key][k], v)


def test_attacks_that_see_all_candidates_run_whole():
    assert not is_shardable(create_attack("transfer"))
    assert not is_shardable(create_attack("lira"))
    assert not is_shardable(create_attack("score-nn"))
    assert not is_shardable(create_attack("noise", scorer="model"))
    assert is_shardable(create_attack("noise"))


def test_shard_bounds_cover_in_order_without_empty_shards():
    assert shard_bounds(10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert shard_bounds(2, 4) == [(0, 1), (1, 2)]
    assert shard_bounds(0, 4) == []
    with pytest.raises(InvalidInputError, match="shards: expected a positive integer, got 0"):
        shard_bounds(5, 0)


def test_total_budget_split_is_deterministic_and_exact():
    assert split_total(10, [3, 4, 3]) == [3, 4, 3]
    assert split_total(10, [1, 1, 1]) == [4, 3, 3]  # the remainder to the first shards
    assert sum(split_total(1001, [7, 7, 7, 9])) == 1001
    assert split_total(None, [2, 2]) == [None, None]


def test_merge_rejects_extras_that_differ_between_shards(world):
    oracle = oracle_for(world, "labels")
    a = create_attack("gap")(oracle, world["x"][:5], world["y"][:5])
    b = create_attack("gap")(oracle, world["x"][5:9], world["y"][5:9])
    a.extras["threshold"], b.extras["threshold"] = 1.0, 2.0
    with pytest.raises(InvalidInputError, match=r"gap: extras\['threshold'\] differs between shards"):
        merge_results([a, b], seconds=0.0)
    with pytest.raises(InvalidInputError, match="no shard results"):
        merge_results([], seconds=0.0)


def test_a_journal_seeded_with_other_journals_replays_their_answers(tmp_path, world):
    target = oracle_for(world, "labels")
    first = CachedOracle(target, tmp_path / "a.bin")
    first.predict_labels(torch.from_numpy(world["x"][:20]))
    first.close()
    seeded_size = (tmp_path / "a.bin").stat().st_size
    second = CachedOracle(oracle_for(world, "labels"), tmp_path / "b.bin", lookup=False, seed=[tmp_path / "a.bin"])
    labels = second.predict_labels(torch.from_numpy(world["x"][:30]))
    second.close()
    assert second.hits == 20 and second.inner.queries == 10
    np.testing.assert_array_equal(labels.numpy(), target.predict_labels(world["x"][:30]))
    assert (tmp_path / "a.bin").stat().st_size == seeded_size  # the seed journal is read, never written
    # b.bin keeps its own layout (one record per batch: the batch's 30 labels) and replays alone
    assert (tmp_path / "b.bin").stat().st_size == 8 + 32 + 8 + 30 * 8
    again = CachedOracle(oracle_for(world, "labels"), tmp_path / "b.bin", lookup=False)
    np.testing.assert_array_equal(again.predict_labels(torch.from_numpy(world["x"][:30])).numpy(), labels.numpy())
    again.close()
    assert again.inner.queries == 0


def test_model_store_writers_leave_no_temporary_files(tmp_path):
    spec = ModelSpec("mlp", (4,), 2, hidden=(3,))
    store = ModelStore(tmp_path)
    for seed in range(3):  # the same key written again, as concurrent workers would
        torch.manual_seed(seed)
        store.put("k", build_model(spec), spec, {"seed": seed})
    assert sorted(p.name for p in (tmp_path / "k").iterdir()) == ["config.json", "model.safetensors"]
    assert store.get("k") is not None


def test_backend_options_are_validated_together():
    with pytest.raises(InvalidInputError) as err:
        make_config(backend="spark", workers=0, worker_cpus=0, worker_gpus=-1, ray_address="auto")
    msg = str(err.value)
    assert "backend: expected local or ray, got 'spark'" in msg
    assert "workers: expected a positive integer, got 0" in msg
    assert "worker_cpus: expected a positive number, got 0" in msg
    assert "worker_gpus: expected a number >= 0, got -1" in msg
    assert "ray_address: only used with backend 'ray'" in msg


def test_local_backend_is_the_default():
    assert isinstance(make_executor(), LocalExecutor)


def test_ray_backend_without_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingExtraError, match=r"--backend ray needs the optional 'ray' dependencies: pip install"):
        make_executor("ray", workers=2)


@pytest.mark.parametrize("command", [["audit"], ["defend"], ["reproduce", "sizes"]])
def test_cli_backend_options_fail_in_one_line(command, tmp_path):
    from typer.testing import CliRunner

    from labelleak.cli import app

    args = [*command, "--backend", "spark", "--workers", "0", "--quiet"]
    if command[0] != "reproduce":
        args += ["--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert (
        result.output.strip().splitlines()[-1].startswith("error: invalid audit config: backend: expected local or ray")
    )
    assert "workers: expected a positive integer, got 0" in result.output


def test_a_shard_without_a_correctly_classified_candidate_is_attacked(world):
    oracle = oracle_for(world, "labels")
    wrong = (oracle.predict_labels(world["x"][:6]) + 1) % 10  # every candidate "misclassified"
    result = LocalExecutor(shards=2).run_attack(
        create_attack("boundary-hsja", max_iter=2, max_eval=20, init_eval=5, init_size=5),
        oracle,
        world["x"][:6],
        wrong,
        max_queries_per_sample=50,
    )
    assert result.status.tolist() == [1] * 6 and result.queries.tolist() == [1] * 6
