"""`labelleak defend --sweep`: grid expansion, resume (a second run trains and audits nothing), bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from labelleak.cli import app
from labelleak.defenses.matrix import family_and_strength
from labelleak.defenses.sweep import DEFAULT_GRIDS, parse_grid, sweep_defenses
from labelleak.errors import InvalidInputError
from labelleak.pipeline import make_config
from labelleak.pipeline.defend import run_defend
from labelleak.pipeline.plan import load_plan
from labelleak.report.summaries import RunRecord, summarize_defenses


def test_grid_expansion_and_overrides():
    assert sweep_defenses(["l2", "top1"]) == ["none"] + [f"l2={v:g}" for v in DEFAULT_GRIDS["l2"]] + ["top1"]
    dp = sweep_defenses(["dp"])
    assert dp == ["none", "dp=32", "dp=16", "dp=8", "dp=4", "dp=2", "dp=1"]  # none is the no-DP point
    assert sweep_defenses(["l2"], ["l2=[1e-4, 5e-4,1e-3]", "dp=[8]"]) == ["none", "l2=0.0001", "l2=0.0005",
                                                                          "l2=0.001", "dp=8"]  # fmt: skip
    assert len(sweep_defenses()) == 1 + sum(len(v) for v in DEFAULT_GRIDS.values())
    assert family_and_strength("l2=0.001") == ("l2", 0.001)
    assert family_and_strength("l2=5e-4+augment") == ("l2+augment", 0.0005)
    assert family_and_strength("none") == ("none", None) and family_and_strength("top1") == ("top1", None)


@pytest.mark.parametrize(
    "text,message",
    [
        ("l3=[1]", "unknown defense family 'l3'"),
        ("l2=1e-4", r"expected FAMILY=\[v1,v2,...\]"),
        ("l2=[a]", "expected numbers, got 'a'"),
        ("l2=[]", "at least one strength"),
        ("top1=[1]", "takes no strength"),
        ("dropout=[1.5]", "dropout"),
    ],
)
def test_bad_grids_are_refused(text, message):
    with pytest.raises(InvalidInputError, match=message):
        parse_grid(text) if not text.startswith("dropout") else _build(text)


def _build(text):
    """A grid whose values the defense itself refuses (dropout 1.5) fails when the model spec is checked."""
    from dataclasses import replace

    from labelleak.defenses import parse_defense
    from labelleak.models import ModelSpec, build_model

    family, values = parse_grid(text)
    build_model(replace(ModelSpec("mlp", (4,), 2), **parse_defense(f"{family}={values[0]:g}").spec))


def test_the_reproduce_plan_runs_the_default_sweep():
    for scale in ("cpu", "paper"):
        plan = load_plan("defenses", scale=scale)
        assert plan.kind == "defenses"
        assert [r.point["defense"] for r in plan.runs] == sweep_defenses()


def test_sweep_resume_trains_nothing_and_audits_nothing(tmp_path, monkeypatch):
    cfg = make_config(
        dataset="digits", train_size=40, eval_size=20, epochs=2, attacks=["gap"], n_boot=20, progress=False,
        out=str(tmp_path / "d"), cache_dir=str(tmp_path / "c"),
    )  # fmt: skip
    defenses = sweep_defenses(["l2", "top1"], ["l2=[0.001,0.1]"])
    import labelleak.models.store as store_mod
    import labelleak.pipeline.sweep as sweep_mod

    audits, trainings = [], []
    real_audit, real_train = sweep_mod.run_audit, store_mod.train_with_report
    monkeypatch.setattr(sweep_mod, "run_audit", lambda c, **kw: audits.append(c.defense) or real_audit(c, **kw))
    monkeypatch.setattr(store_mod, "train_with_report", lambda *a, **k: trainings.append(1) or real_train(*a, **k))
    first = run_defend(cfg, defenses, target_tpr=0.5)
    # none's target and shadow (also top1's: an output defense trains nothing new), and per l2 strength a target
    # and a shadow model trained with it (the adaptive adversary's)
    assert audits == defenses and len(trainings) == 6
    matrix = json.loads((tmp_path / "d" / "matrix.json").read_text())
    assert [r["defense"] for r in matrix["rows"]] == defenses
    assert {"gap.tpr@0.1%", "gap.auc_low", "gap.tpr@1%_high", "family", "strength"} <= set(matrix["rows"][0])
    assert "statement" in matrix["recommendation"]
    assert "## Recommendation" in (tmp_path / "d" / "matrix.md").read_text()
    assert (tmp_path / "d" / "pareto.png").is_file()

    audits.clear(), trainings.clear()
    # a point saved before ``relabel`` existed, and a resume with another report title: the same run identity
    saved = tmp_path / "d" / "top1" / "results.json"
    old = json.loads(saved.read_text())
    del old["config"]["relabel"]
    saved.write_text(json.dumps(old))
    again = run_defend(cfg.replace(resume=True, title="renamed"), defenses, target_tpr=0.5)
    assert audits == [] and trainings == []
    assert [r["gap.auc"] for r in again] == [r["gap.auc"] for r in first]
    # one unfinished point: only that one is audited again, from the cached model
    (tmp_path / "d" / "l2=0.1" / "results.json").unlink()
    run_defend(cfg.replace(resume=True), defenses, target_tpr=0.5)
    assert audits == ["l2=0.1"] and trainings == []


def test_a_finished_point_is_the_one_with_the_same_run_identity(tmp_path):
    """``defend --resume`` reads a point back when only volatile keys differ (how the work runs, the report's
    title), and audits it again when a key that decides its scores differs."""
    from labelleak.pipeline.sweep import finished_results

    cfg = make_config(dataset="digits", attacks=["gap"], out=str(tmp_path / "p"), defense="l2")
    (tmp_path / "p").mkdir()
    np.savez(tmp_path / "p" / "arrays.npz", gap_score=np.zeros(2))

    def saved(**changes):
        config = {**json.loads(json.dumps(cfg.to_dict())), **changes}
        (tmp_path / "p" / "results.json").write_text(json.dumps({"config": config, "attacks": {}}))
        return finished_results(cfg)

    volatile = {"workers": 4, "concurrency": 8, "title": "x", "retry_window": 60.0, "backend": "ray"}
    assert saved(**volatile) is not None  # the former list (progress, resume, fresh, out) reran these
    assert saved(epochs=cfg.epochs + 1) is None and saved(defense="l2=0.01") is None
    (tmp_path / "p" / "arrays.npz").unlink()
    assert saved() is None  # no arrays: not finished


def test_defenses_summary_has_rows_recommendation_and_pareto(tmp_path):
    def results(acc, tpr, high):
        entry = {"threat_model": "label-only", "auc": 0.5 + tpr, "tpr_at_fpr": {"0.001": tpr / 2, "0.01": tpr},
                 "tpr_at_fpr_ci": {"0.01": [tpr / 2, high]}}  # fmt: skip
        return {"target": {"train_accuracy": 1.0, "test_accuracy": acc}, "attacks": {"gap": entry}}

    records = [RunRecord({"defense": d}, "all", results(a, t, h), {}) for d, a, t, h in
               (("none", 0.8, 0.2, 0.3), ("l2=0.01", 0.75, 0.005, 0.03), ("l2=0.1", 0.7, 0.002, 0.008),
                ("dp=1", 0.3, 0.001, 0.004))]  # fmt: skip
    tables, figures = summarize_defenses(records, tmp_path)
    assert [r["defense"] for r in tables["defenses"]] == ["none", "l2=0.01", "l2=0.1", "dp=1"]
    # l2=0.01's point is below 0.01 but its interval is not: the recommendation is the next point
    assert tables["recommendation"][0]["defense"] == "l2=0.1" and tables["recommendation"][0]["found"]
    assert [r["status"] for r in tables["defenses"]] == ["not shown", "not shown", "enough", "enough"]
    assert figures[0] is None or figures[0].name == "pareto.png"


@pytest.mark.parametrize(
    "args,message",
    [
        (["--sweep", "--grid", "l3=[1]"], "error: unknown defense family 'l3' for a sweep"),
        (["--sweep", "--grid", "l2=1e-4"], "error: --grid: expected FAMILY=[v1,v2,...]"),
        (["--sweep", "--defenses", "l2=5e-4"], "error: unknown defense family 'l2=5e-4'"),
        (["--grid", "l2=[1]"], "error: --grid needs --sweep"),
        (["--target-tpr", "1.5"], "error: target_tpr: expected a rate in (0, 1), got 1.5"),
        (["--target-tpr", "0"], "error: target_tpr: expected a rate in (0, 1), got 0.0"),
        (  # refused before the first defense trains: DP-SGD tunes on 400 rows beyond 1,600 of 1,797 digits
            ["--defenses", "none,dp=8", "--train-size", "400", "--attacks", "gap"],
            "error: defense 'dp=8': needs 400 public, validation or canary rows beyond the four parts (1600 "
            "samples), but the pool of 1797 has only 197 beyond them",
        ),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = CliRunner().invoke(
        app, ["defend", *args, "--quiet", "--out", str(tmp_path / "d"), "--cache-dir", str(tmp_path / "c")]
    )
    assert result.exit_code == 2, result.output
    assert result.output.strip().startswith(message) and "\n" not in result.output.strip()
    assert not (tmp_path / "c").exists()
