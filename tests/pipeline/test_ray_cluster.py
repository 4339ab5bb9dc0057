"""A two-node Ray cluster on loopback (head + one node, 1 CPU each): one sharded attack runs across both nodes
and gives the local backend's arrays."""

from __future__ import annotations

import sys
import time

import pytest

ray = pytest.importorskip("ray")

from _distributed_world import HSJA, SHAPE, digits_world  # noqa: E402

from labelleak.attacks import create_attack  # noqa: E402
from labelleak.distributed import LocalExecutor, RayExecutor  # noqa: E402
from labelleak.oracle import TorchOracle  # noqa: E402

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # node_of travels to the workers
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False, configure_logging=False)
    yield c
    ray.shutdown()
    c.shutdown()


def node_of(_: int) -> str:
    time.sleep(1.0)  # both jobs pending at once: one CPU per node puts them on different nodes
    return ray.get_runtime_context().get_node_id()


def test_a_sharded_attack_runs_across_two_nodes_with_local_results(cluster):
    x, y, model = (lambda w: (w["x"], w["y"], w["model"]))(digits_world())
    attack = create_attack("boundary-hsja", **HSJA)
    oracle = lambda: TorchOracle(model, input_shape=SHAPE, n_classes=10)  # noqa: E731
    local = LocalExecutor().run_attack(attack, oracle(), x, y, max_queries_per_sample=120)
    executor = RayExecutor(workers=2)
    assert len({n["NodeID"] for n in ray.nodes() if n["Alive"]}) == 2
    assert len(set(executor.map(node_of, [0, 1]))) == 2
    remote = executor.run_attack(attack, oracle(), x, y, max_queries_per_sample=120)
    assert remote.scores.tobytes() == local.scores.tobytes()
    assert remote.status.tobytes() == local.status.tobytes()
    assert remote.queries.tobytes() == local.queries.tobytes()
