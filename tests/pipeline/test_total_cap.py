"""Issue 29, item 3: a total query cap treats members and non-members alike.

Served in file order, the members (listed first) took the cap and the non-members were starved: a boundary
attack then scores non-members from unfinished searches, and a target that leaks nothing looks as if it did.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rich.console import Console
from sklearn.linear_model import LogisticRegression

import labelleak
from labelleak.attacks import ShadowData, Status, attack_names, create_attack
from labelleak.distributed import LocalExecutor
from labelleak.metrics import auc, bootstrap
from labelleak.models import ModelSpec, TrainSettings, build_model, init_model, train_model
from labelleak.oracle import SklearnOracle, TorchOracle
from labelleak.pipeline.config import make_config
from labelleak.report import print_audit_table
from labelleak.report.notes import audit_notes, total_cap_note

SHAPE, CLASSES = (3, 8, 8), 3
D = 3 * 8 * 8
FAST = dict(max_iter=15, max_eval=500, init_eval=30, init_size=20)
RECIPE = dict(hidden=(16,), epochs=3, batch_size=32)
QUERIES = 400  # the attacks' own per-candidate budget (--queries)
N = 100  # members and as many non-members
BOUNDARY = [n for n in attack_names() if n.startswith("boundary-")]


def _blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    centers = np.random.default_rng(0).uniform(0.25, 0.75, size=(CLASSES, D))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    x = np.clip(centers[y] + rng.normal(scale=0.2, size=(n, D)), 0, 1).astype(np.float32)
    return x.reshape(n, *SHAPE), y


@pytest.fixture(scope="module")
def world():
    """A target trained on its own data; the candidates' "members" and non-members are both held out."""
    torch.manual_seed(0)
    x_train, y_train = _blobs(120, 1)
    spec = ModelSpec("mlp", SHAPE, CLASSES, hidden=(32,))
    model = init_model(lambda: build_model(spec), 0)
    model = train_model(model, x_train, y_train, TrainSettings(epochs=15, batch_size=32, lr=3e-3), n_classes=CLASSES)
    x, y = _blobs(2 * N, 2)  # N "members" first, as in every audit, then N non-members: all unseen
    xs, ys = _blobs(60, 3)
    return {
        "oracle": TorchOracle(model.eval(), input_shape=SHAPE, n_classes=CLASSES),
        "x": x,
        "y": y,
        "is_member": np.r_[np.ones(N, bool), np.zeros(N, bool)],
        "shadow": ShadowData(xs[:30], ys[:30], xs[30:], ys[30:]),
    }


def _params(name: str) -> dict:
    if name.startswith("boundary-lira"):
        return dict(FAST, n_reference=2, **RECIPE)
    if name == "boundary-whitebox":
        return {}  # 100 gradient steps and 12 refinement steps: more than the cap allows
    return dict(FAST, **RECIPE) if name == "boundary-guided" else dict(FAST)


def test_members_and_nonmembers_get_the_same_queries_and_every_cut_short_candidate_is_budget_hit(world):
    x, y, member = world["x"], world["y"], world["is_member"]
    cap = 60 * len(x) + 199  # 60 each; the 199 left over go to nobody
    attack = create_attack("boundary-hsja", **FAST)
    capped = attack(world["oracle"], x, y, max_queries_per_sample=150, max_total_queries=cap)
    free = attack(world["oracle"], x, y, max_queries_per_sample=150)
    assert capped.allowance == 60 and free.allowance is None and free.cut_short == 0
    correct = capped.status != Status.MISCLASSIFIED
    assert correct.sum() >= 180
    m, n = capped.queries[correct & member], capped.queries[correct & ~member]
    assert m.max() == n.max() <= 60 and abs(m.mean() - n.mean()) <= 1.0  # file order served members 2:1 before
    assert capped.queries.sum() <= cap
    # a candidate whose search goes on past what the cap let it spend (same seed, same path) was cut short
    cut = correct & (free.queries > capped.queries)
    assert cut.sum() >= 180 and capped.cut_short == cut.sum()
    np.testing.assert_array_equal(capped.status == Status.BUDGET_HIT, cut)
    assert not (free.status == Status.BUDGET_HIT).any()


@pytest.mark.parametrize("name", BOUNDARY)
def test_a_target_that_never_saw_its_members_shows_no_leak_under_a_binding_cap(world, name):
    x, y, member = world["x"], world["y"], world["is_member"]
    attack = create_attack(name, **_params(name))
    res = attack(
        world["oracle"], x, y, shadow=world["shadow"], max_queries_per_sample=QUERIES, max_total_queries=100 * len(x)
    )
    assert res.allowance == 100 and res.cut_short > 0  # the cap binds
    # one interval per attack: at 1 - 0.05 / attacks, all of them hold together 95% of the time under no leak
    interval = bootstrap(member, res.scores, auc, n_boot=400, level=1 - 0.05 / len(BOUNDARY), seed=0)
    assert interval.low <= 0.5 <= interval.high, (name, interval)
    served = res.queries > 0
    assert res.queries[member & served].mean() == pytest.approx(res.queries[~member & served].mean(), abs=1.0)


def test_the_table_results_json_and_report_say_a_total_cap_applied_and_whom_it_cut_short(tmp_path, blobs):
    x, y = blobs
    oracle = SklearnOracle(LogisticRegression().fit(x, y), input_shape=(6,), n_classes=3)
    cap = 60 + 60 * 40 + 7  # gap's 60, then 40 for each candidate of boundary-hsja
    res = labelleak.audit(
        target=oracle,
        members=(x[:30], y[:30]),
        nonmembers=(x[30:60], y[30:60]),
        shadow=(x[60:], y[60:]),
        attacks=["gap", "boundary-hsja"],
        queries=100,
        noise_samples=5,
        epochs=1,
        checkpoint=False,
        out=tmp_path / "out",
        cache_dir=tmp_path / "cache",
        progress=False,
        config=make_config(max_total_queries=cap, max_iter=10, init_eval=20, init_size=20),
    )
    hsja = res["attacks"]["boundary-hsja"]
    cut = hsja["status_counts"]["budget_hit"]
    assert hsja["total_cap"] == {"given": cap - 60, "allowance": 40, "cut_short": cut} and cut > 0
    assert res["attacks"]["gap"]["total_cap"] == {"given": cap, "allowance": 41, "cut_short": 0}
    assert res["total_cap"] == {
        "max_total_queries": cap,
        "queries_per_candidate": 100,
        "attacks": {"gap": res["attacks"]["gap"]["total_cap"], "boundary-hsja": hsja["total_cap"]},
        "cut_short": cut,
    }
    assert res["queries_asked"] <= cap and "utility" in res.to_dict()  # gap's answers: no query more
    said = f"boundary-hsja 40 per candidate, {cut} cut short"
    console = Console(width=400, record=True)
    print_audit_table(res.to_dict(), console)
    table = console.export_text()
    assert "A total cap of 2,467 queries applied" in table and said in table
    html = (tmp_path / "out" / "report.html").read_text()
    assert "A total cap of 2,467 queries applied" in html and said in html


def test_the_note_names_the_skipped_attacks_and_stays_silent_without_a_cap():
    results = {
        "total_cap": {"max_total_queries": 100, "queries_per_candidate": None, "attacks": {}, "cut_short": 0},
        "skipped_attacks": {"gap": "--max-total-queries 100 leaves 0 queries for 60 candidates, less than one each"},
    }
    assert total_cap_note(results) == (
        "A total cap of 100 queries applied (--max-total-queries), shared evenly over each attack's candidates "
        "(--queries unbounded without it); skipped: gap. A candidate cut short is marked budget_hit."
    )
    assert audit_notes({"attacks": {}}) == [] and total_cap_note({}) is None


def test_shards_under_a_total_cap_give_every_candidate_the_whole_batchs_allowance(world):
    x, y = world["x"][:50], world["y"][:50]
    attack = create_attack("boundary-hsja", **FAST)
    run = dict(max_queries_per_sample=QUERIES, max_total_queries=30 * 50 + 49)
    whole = LocalExecutor().run_attack(attack, world["oracle"], x, y, **run)
    sharded = LocalExecutor(shards=3).run_attack(attack, world["oracle"], x, y, **run)  # 17, 16 and 17 candidates
    assert whole.allowance == sharded.allowance == 30 and sharded.cut_short == whole.cut_short > 0
    np.testing.assert_array_equal(sharded.scores, whole.scores)
    np.testing.assert_array_equal(sharded.queries, whole.queries)
    np.testing.assert_array_equal(sharded.status, whole.status)
