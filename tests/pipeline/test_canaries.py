"""Issue 31, item 3: ``--canaries M`` puts M pool rows beyond the four parts into the target's training set, each by
its own fair coin, and the one-run bound is counted on those canaries alone: the game of Steinke, Nasr & Jagielski
(2023) exactly, not the fixed-size member cut."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from labelleak.cli import app
from labelleak.data import SplitSizes, four_way_split, public_part, validation_part
from labelleak.data.split import canary_part
from labelleak.errors import InvalidInputError
from labelleak.metrics import summarize
from labelleak.models import training as training_module
from labelleak.pipeline.config import AuditConfig
from labelleak.pipeline.setup.trained import prepare_local
from labelleak.report.verdict import add_verdict

runner = CliRunner()


def _rows(x: np.ndarray) -> set[bytes]:
    return {np.ascontiguousarray(r, dtype=np.float32).tobytes() for r in x.reshape(len(x), -1)}


def test_canaries_lie_beyond_every_other_part_with_prefix_stable_fair_coins():
    sizes = SplitSizes(100, 100, 200, 200)
    split = four_way_split(1797, sizes, seed=5)
    used = np.concatenate([split.target_train, split.target_test, split.shadow_train, split.shadow_test])
    public = public_part(1797, sizes, 50, seed=5)
    val = validation_part(1797, sizes, 10, after=50, seed=5)
    rows, coins = canary_part(1797, sizes, 400, after=60, seed=5)
    assert len(np.unique(rows)) == 400 and not np.intersect1d(rows, np.concatenate([used, public, val])).size
    assert coins.dtype == bool and 160 < coins.sum() < 240  # 400 fair coins: 200 +- 4 sd
    fewer_rows, fewer_coins = canary_part(1797, sizes, 100, after=60, seed=5)
    assert np.array_equal(fewer_rows, rows[:100]) and np.array_equal(fewer_coins, coins[:100])
    assert not np.array_equal(canary_part(1797, sizes, 400, after=60, seed=6)[1], coins)  # another seed, new coins
    with pytest.raises(InvalidInputError, match=r"canaries: 1200 samples asked, but the pool of 1797 has only 1197"):
        canary_part(1797, sizes, 1200, after=0, seed=5)


def test_the_target_trains_on_its_members_and_exactly_the_canaries_whose_coin_came_up(tmp_path, monkeypatch):
    seen: list[tuple[str, np.ndarray]] = []
    real_train, real_holdout = training_module._train, training_module._holdout
    current: dict[str, object] = {}

    def train(*args, **kwargs):
        current["x"], current["what"] = args[1], args[6]
        return real_train(*args, **kwargs)

    def holdout(*args, **kwargs):
        train_idx, held = real_holdout(*args, **kwargs)
        seen.append((str(current["what"]), np.asarray(current["x"])[train_idx.numpy()]))
        return train_idx, held

    monkeypatch.setattr(training_module, "_train", train)
    monkeypatch.setattr(training_module, "_holdout", holdout)
    cfg = AuditConfig(
        train_size=60, epochs=2, canaries=40, defense="early-stopping=2", seed=1, progress=False,
        cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    setup = prepare_local(cfg)
    (_, trained), *_ = [r for r in seen if "target" in r[0]]
    canary = setup.canary
    assert canary is not None and canary.sum() == 40 and not canary[:120].any()  # after the 60 + 60 others
    heads = setup.is_member & canary
    assert _rows(trained) == _rows(setup.x[setup.is_member])  # the members part and the heads, nothing else
    assert not _rows(setup.x[canary & ~setup.is_member]) & _rows(trained)
    assert setup.target["trained_rows"] == 60 + heads.sum() == len(trained)
    assert setup.target["canaries"] == {"candidates": 40, "trained_on": int(heads.sum())}
    assert setup.target["validation_rows"] == 6  # early stopping's rows: not canaries, never trained on
    assert len(setup.x) == len(setup.y) == len(setup.sample_index) == 160


def test_a_cli_audit_counts_the_one_run_bound_on_its_canaries(tmp_path):
    out = tmp_path / "out"
    args = ["audit", "--dataset", "digits", "--train-size", "100", "--canaries", "80", "--attacks", "gap"]
    args += ["--epochs", "2", "--quiet", "--no-checkpoint", "--out", str(out), "--cache-dir", str(tmp_path / "c")]
    estimate = runner.invoke(app, [*args, "--estimate"])
    assert estimate.exit_code == 0, estimate.output
    assert "gap 280 1 280" in " ".join(estimate.output.split())  # 100 + 100 + the 80 canaries, one query each
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())
    one = res["verdict"]["one_run"]
    assert one["candidates"] == "canaries" and one["applies"] is True
    assert "each of the 80 canaries was put in the training set by its own fair coin" in one["split"]
    assert one["m"] == 40 == one["n_selection"]  # the canaries' two halves, uncut: never the 200 others
    with np.load(out / "arrays.npz") as a:
        canary, member = a["is_canary"], a["is_member"]
    assert canary.sum() == 80 and not canary[:200].any()
    assert res["target"]["canaries"]["trained_on"] == int(member[canary].sum())
    assert res["target"]["trained_rows"] == 100 + int(member[canary].sum())
    assert res["verdict"]["n_candidates"] == 280  # the audit-wide bound uses every candidate, canaries included
    assert "own fair coin" in (out / "report.html").read_text()


def test_the_one_run_verdict_reads_the_canaries_alone():
    rng = np.random.default_rng(0)
    member = rng.permutation(np.r_[np.ones(300, bool), np.zeros(300, bool)])
    canary = np.r_[np.zeros(400, bool), np.ones(200, bool)]
    # perfectly separated outside the canaries, no signal on them: the one-run bound must see no leak
    scores = np.where(canary, rng.normal(size=600), 10.0 * member)
    finished = {"gap": {"scores": scores, "status": np.zeros(600, np.int8)}}
    results = {
        "config": {"seed": 0},
        "dataset": {"name": "digits"},
        "target": {"arch": "mlp", "epsilon": None},
        "attacks": {"gap": {"threat_model": "label-only", **summarize(member, scores, n_boot=20, seed=0)}},
    }
    add_verdict(results, finished, is_member=member, labels=None, canary=canary)
    one = results["verdict"]["one_run"]
    assert one["candidates"] == "canaries" and one["m"] + one["n_selection"] == 200
    assert one["eps_lb"] is None or one["eps_lb"] < 1.0
    add_verdict(results, finished, is_member=member, labels=None)  # every candidate: the separated ones leak
    assert results["verdict"]["one_run"]["candidates"] == "all" and results["verdict"]["one_run"]["eps_lb"] > 1.5


@pytest.mark.parametrize(
    "extra",
    [{"model": "m.onnx", "members": "a.npz", "nonmembers": "b.npz", "shadow": "c.npz"}, {"target": "http://x"}],
)
def test_canaries_need_a_target_labelleak_trains(extra):
    problems = AuditConfig(canaries=10, **extra).problems()
    assert "canaries: only for a target labelleak trains (its training set is where the coins go)" in problems
    assert "canaries: expected a non-negative integer, got -1" in AuditConfig(canaries=-1).problems()


def test_defend_reports_each_defenses_one_run_bound_beside_its_epsilon(tmp_path):
    out = tmp_path / "d"
    args = ["defend", "--dataset", "digits", "--defenses", "l2=0.01", "--train-size", "60", "--canaries", "60"]
    args += ["--attacks", "gap", "--epochs", "2", "--quiet", "--out", str(out), "--cache-dir", str(tmp_path / "c")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "matrix.json").read_text())["rows"]
    assert [r["defense"] for r in rows] == ["l2=0.01"]
    for row in rows:  # the bound of each defense's own training run, counted on its 60 canaries
        res = json.loads((out / row["defense"] / "results.json").read_text())
        assert res["verdict"]["one_run"]["candidates"] == "canaries"
        assert row["one_run_eps_lb"] == res["verdict"]["one_run"]["eps_lb"] is not None
    assert "| one-run eps_LB |" in (out / "matrix.md").read_text()
