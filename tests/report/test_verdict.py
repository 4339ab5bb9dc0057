"""Issue 31, items 1, 2, 5 and 7: slices, the risk rule, results.json["verdict"] with its claim check, the
terminal table's last lines, the report's verdict section and exit code 4 of --fail-above-epsilon."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from rich.console import Console
from torch import nn
from typer.testing import CliRunner

from labelleak.attacks import Status
from labelleak.cli import app
from labelleak.epsilon import epsilon_lower_bound
from labelleak.errors import InvalidInputError
from labelleak.pipeline.config import make_config
from labelleak.report.summary import risk_paragraph
from labelleak.report.table import print_audit_table
from labelleak.report.verdict import add_verdict, verdict_context
from labelleak.risk import risk_level
from labelleak.slices import slice_metrics

runner = CliRunner()


@pytest.mark.parametrize(
    ("eps", "tpr", "auc", "level"),
    [
        (1.0, None, None, "high"),  # eps_LB at the limit
        (0.0, 0.05, 0.9, "high"),  # TPR at five times chance
        (0.99, 0.0, 0.9, "medium"),
        (0.0, 0.0101, 0.9, "medium"),
        (0.0, 0.01, 0.51, "low"),  # TPR at chance does not count
        (0.0, None, 0.5, "none"),  # AUC at chance neither
        (0.0, float("nan"), float("nan"), "none"),
    ],
)
def test_the_risk_rule_at_its_limits(eps, tpr, auc, level):
    found, why = risk_level(eps, tpr, auc)
    assert found == level
    if level == "none":
        assert why == "no leakage detected at this sample size"


def test_slices_show_the_leaking_class_and_refuse_unresolvable_tprs():
    rng = np.random.default_rng(0)
    group = np.r_[np.zeros(300, int), np.ones(100, int)]
    member = np.r_[np.ones(150, bool), np.zeros(150, bool), np.ones(50, bool), np.zeros(50, bool)]
    score = rng.normal(size=400) + np.where(member & (group == 0), 10.0, 0.0)  # only class 0 leaks
    found = slice_metrics(member, score, group)
    assert list(found) == ["0", "1"]
    zero, one = found["0"], found["1"]
    assert (zero["n_members"], zero["n_nonmembers"], zero["auc"], zero["tpr_at_fpr"]) == (150, 150, 1.0, 1.0)
    assert abs(one["auc"] - 0.5) < 0.15 and one["tpr_at_fpr"] is None
    assert one["na"]["tpr_at_fpr"] == "TPR at 1% FPR needs >= 100 non-members, has 50"
    lonely = slice_metrics(member, score, np.where(member, "correct", None))
    assert list(lonely) == ["correct"] and lonely["correct"]["auc"] is None  # members only: no AUC
    assert lonely["correct"]["na"]["auc"] == "needs members and non-members, has 200 and 0"


def _results(member, scores, *, config=None):
    attacks = {n: {"threat_model": "label-only", "auc_ci": [0.5, 0.6], "auc": 0.55} for n in scores}
    attacks["gap"]["candidate_accuracy"] = {}
    return {"config": {"seed": 0, "out": "nowhere", **(config or {})}, "attacks": attacks}


def test_the_verdict_compares_attacks_with_bonferroni_and_checks_the_claim():
    rng = np.random.default_rng(1)
    member = rng.permutation(np.r_[np.ones(200, bool), np.zeros(200, bool)])
    leaky = np.where(member, 1.0, 0.0)
    status = np.where(member, Status.OK, Status.MISCLASSIFIED).astype(np.int8)
    finished = {
        "gap": {"scores": leaky, "status": status},
        "noise": {"scores": rng.normal(size=400), "status": np.zeros(400, np.int8)},
    }
    results = _results(member, finished, config={"claimed_epsilon": 0.5, "fail_above_epsilon": 3.0})
    add_verdict(results, finished, is_member=member, labels=rng.integers(0, 2, 400))
    v = results["verdict"]
    at = epsilon_lower_bound(member, leaky, confidence=1 - 0.05 / 2)  # two attacks compared
    assert v["strongest_attack"] == "gap" and v["per_attack_confidence"] == pytest.approx(0.975)
    assert v["eps_lb"] == pytest.approx(at.eps_lb) and v["n_evaluation"] == 200 and v["n_candidates"] == 400
    assert v["eps_lb"] < results["attacks"]["gap"]["epsilon"]["eps_lb"]  # each attack on its own: at 95%
    corrected = v["per_attack_eps_lb"]  # the report's audit column: the verdict is its largest value
    assert set(corrected) == {"gap", "noise"} and max(corrected.values()) == v["eps_lb"] == corrected["gap"]
    rows = {r["attack"]: r for r in verdict_context(results)["epsilon_rows"]}
    assert rows["gap"]["eps_lb_audit"] == v["eps_lb"] and rows["noise"]["eps_lb_audit"] == corrected["noise"]
    assert v["risk_level"] == "high" and v["delta"] == 1e-5 and v["confidence"] == 0.95
    assert v["claim"]["refuted"] is True and v["claim"]["epsilon"] == 0.5 and v["fails"] is True
    assert v["claim"]["confidence"] == 0.95  # the best of two attacks at 97.5% each
    assert results["attacks"]["noise"]["epsilon"]["eps_lb"] == 0.0
    slices = results["attacks"]["noise"]["slices"]
    assert slices["prediction_source"] == "gap" and set(slices["by_prediction"]) == {"correct", "wrong"}
    assert slices["by_prediction"]["correct"]["n_members"] == 200 and set(slices["by_class"]) == {"0", "1"}


def test_a_score_attack_never_speaks_for_the_labels():
    rng = np.random.default_rng(2)
    member = rng.permutation(np.r_[np.ones(200, bool), np.zeros(200, bool)])
    weak = np.where(member, 1.0, 0.0) + rng.normal(0, 1.5, 400)
    ok = np.zeros(400, np.int8)
    finished = {"gap": {"scores": weak, "status": ok}, "score-loss": {"scores": np.where(member, 1.0, 0.0)}}
    results = _results(member, finished)
    results["attacks"]["score-loss"]["threat_model"] = "scores"  # reads the probabilities: a stronger adversary
    add_verdict(results, finished, is_member=member, labels=None)
    v = results["verdict"]
    assert v["compared"] == ["gap"] and v["strongest_attack"] == "gap" and v["threat_model"] == "label-only"
    assert v["eps_lb"] < results["attacks"]["score-loss"]["epsilon"]["eps_lb"]  # the perfect score attack is apart
    alone = {"score-loss": finished["score-loss"]}
    scores_only = _results(member, alone | {"gap": finished["gap"]})
    del scores_only["attacks"]["gap"]
    scores_only["attacks"]["score-loss"]["threat_model"] = "scores"
    add_verdict(scores_only, alone, is_member=member, labels=None)
    s = scores_only["verdict"]
    assert s["compared"] == ["score-loss"] and s["threat_model"] == "scores" and s["risk_level"] == "high"
    said = risk_paragraph(scores_only)
    assert said is not None and "sees the target's scores" in said and "only the predicted labels" not in said


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A TorchScript model; the member candidates carry the labels it predicts, the non-members others: the gap
    attack separates them perfectly, so eps_LB has its closed form."""
    root = tmp_path_factory.mktemp("verdict")
    torch.manual_seed(0)
    net = nn.Linear(4, 3).eval()
    torch.jit.save(torch.jit.script(net), root / "m.ts")
    rng = np.random.default_rng(0)
    for name in ("members", "nonmembers", "shadow"):
        x = rng.uniform(0, 1, size=(40, 4)).astype(np.float32)
        with torch.no_grad():
            y = net(torch.from_numpy(x)).argmax(1).numpy()
        np.savez(root / f"{name}.npz", x=x, y=(y + 1) % 3 if name == "nonmembers" else y)
    return root


def _audit(root, out, *extra):
    args = ["audit", "--model", str(root / "m.ts"), "--input-shape", "4"]
    for name in ("members", "nonmembers", "shadow"):
        args += [f"--{name}", str(root / f"{name}.npz")]
    args += ["--attacks", "gap", "--epochs", "1", "--quiet", "--no-checkpoint", "--out", str(out)]
    return runner.invoke(app, [*args, "--cache-dir", str(root / "cache"), *extra])


def test_a_cli_audit_writes_the_verdict_and_exits_4_above_the_limit(files, tmp_path):
    result = _audit(files, tmp_path / "a", "--claimed-epsilon", "0.5", "--fail-above-epsilon", "1")
    assert result.exit_code == 4, result.output
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    q = 0.025 ** (1 / 20)  # 20 + 20 evaluation candidates, perfectly separated
    v = res["verdict"]
    assert v["eps_lb"] == pytest.approx(math.log((q - 1e-5) / (1 - q)), rel=1e-9)  # 1.597
    assert (v["risk_level"], v["strongest_attack"], v["n_candidates"], v["n_evaluation"]) == ("high", "gap", 80, 40)
    assert v["claim"] == {"epsilon": 0.5, "delta": 1e-5, "eps_lb": v["eps_lb"], "confidence": 0.95, "refuted": True}
    assert v["fails"] is True and v["fail_above_epsilon"] == 1.0
    entry = res["attacks"]["gap"]
    assert entry["epsilon"]["tp"] == 20 and entry["epsilon"]["fp"] == 0 and entry["epsilon"]["n_selection"] == 40
    assert entry["slices"]["by_prediction"]["wrong"]["n_nonmembers"] == 40  # every non-member labelled wrongly
    assert sum(g["n_members"] for g in entry["slices"]["by_class"].values()) == 40
    said = " ".join(result.output.split())
    assert "verdict: risk high" in said and "claim eps 0.5 (delta 1e-05) refuted" in said
    assert "eps_LB 1.597 is above --fail-above-epsilon 1" in said
    page = (tmp_path / "a" / "report.html").read_text()
    assert 'id="dp-verdict"' in page and 'id="slices-table"' in page and "refuted</strong>" in page
    assert f"<td>{entry['epsilon']['eps_lb']:.3f}</td><td>{v['per_attack_eps_lb']['gap']:.3f}</td>" in page


def test_below_the_limit_the_audit_exits_0_and_the_table_ends_with_the_verdict(files, tmp_path):
    result = _audit(files, tmp_path / "b", "--fail-above-epsilon", "2", "--claimed-delta", "0.01")
    assert result.exit_code == 0, result.output
    res = json.loads((tmp_path / "b" / "results.json").read_text())
    assert res["verdict"]["fails"] is False and res["verdict"]["claim"] is None and res["verdict"]["delta"] == 0.01
    console = Console(width=400, record=True)
    print_audit_table(res, console)
    last = console.export_text().strip().splitlines()[-2:]
    assert last[0].startswith("verdict: risk high (eps_LB 1.") and "strongest attack gap" in last[0]
    assert last[1] == f"report: {tmp_path / 'b' / 'report.html'}"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"claimed_epsilon": -1.0}, "claimed_epsilon: expected a number >= 0 or nothing, got -1.0"),
        ({"fail_above_epsilon": "x"}, "fail_above_epsilon: expected a number >= 0 or nothing, got 'x'"),
        ({"claimed_delta": 1.0}, r"claimed_delta: expected a number in \[0, 1\), got 1.0"),
        ({"fail_above_epsilon": 1.0, "repeats": 3}, "fail_above_epsilon: one audit's gate, not with repeats > 1"),
    ],
)
def test_bad_claims_are_refused_with_the_key_named(options, message):
    with pytest.raises(ValueError, match=message):
        make_config(**options)


def _verdict_of(member, scores, canary, keys, order):
    finished = {"gap": {"scores": scores[order], "status": np.zeros(len(order), np.int8)}}
    results = _results(member[order], finished, config={"seed": 3})
    add_verdict(
        results,
        finished,
        is_member=member[order],
        labels=None,
        canary=canary[order],
        keys=None if keys is None else keys[order],
    )
    return results


def test_with_content_keys_the_verdict_does_not_depend_on_the_candidates_order():
    rng = np.random.default_rng(4)
    member = rng.random(600) < 0.5
    scores = member + rng.normal(0, 1.0, 600)  # leaks, but noisily: the halves matter
    canary = np.arange(600) < 300
    keys = rng.integers(0, 2**62, 600)
    orders = [np.arange(600)] + [rng.permutation(600) for _ in range(3)]
    keyed = [_verdict_of(member, scores, canary, keys, o) for o in orders]
    for r in keyed[1:]:
        assert r["verdict"] == keyed[0]["verdict"]  # eps_LB, the one-run bound on the canaries, every count
        assert r["attacks"]["gap"]["epsilon"] == keyed[0]["attacks"]["gap"]["epsilon"]
    assert keyed[0]["verdict"]["one_run"]["candidates"] == "canaries"
    positional = [_verdict_of(member, scores, canary, None, o)["verdict"] for o in orders]
    assert any(v["eps_lb"] != positional[0]["eps_lb"] or v["one_run"] != positional[0]["one_run"] for v in positional)


def test_keys_of_the_wrong_length_are_refused():
    member = np.r_[np.ones(10, bool), np.zeros(10, bool)]
    finished = {"gap": {"scores": member.astype(float), "status": np.zeros(20, np.int8)}}
    with pytest.raises(InvalidInputError, match="one key per candidate"):
        add_verdict(_results(member, finished), finished, is_member=member, labels=None, keys=np.arange(19))
