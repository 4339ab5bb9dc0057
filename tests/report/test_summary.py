"""Issue 31, items 3 and 6: the one-run bound in results.json["verdict"] (a DP bound only where labelleak drew the
split), and the report's executive summary: the risk in words from the numbers, the threat model, what to do, and
only the settings that apply to the target."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from labelleak.cli import app
from labelleak.metrics import summarize
from labelleak.one_run import epsilon_from_guesses
from labelleak.report.files import write_json
from labelleak.report.html import render_report
from labelleak.report.summary import applicable_settings, recommended_actions, risk_paragraph, threat_paragraph
from labelleak.report.verdict import add_verdict
from labelleak.risk import detectable_tpr

runner = CliRunner()
OWN = {"dataset": {"name": "own-files", "source": "m.npz"}, "target": {"model": "churn.onnx", "train_accuracy": None}}
TRAINED = {"dataset": {"name": "digits"}, "target": {"arch": "mlp", "trained_rows": 300, "epsilon": None}}


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _audit(n: int, shifts: dict[str, float], *, kind: dict, config: dict | None = None, seed: int = 0) -> dict:
    """results.json of an audit of ``n`` members and ``n`` non-members whose attacks' member scores are shifted by
    ``shifts``, with its verdict."""
    rng = np.random.default_rng(seed)
    member = rng.permutation(np.r_[np.ones(n, bool), np.zeros(n, bool)])
    finished, attacks = {}, {}
    for name, shift in shifts.items():
        scores = rng.normal(size=2 * n) + shift * member
        finished[name] = {"scores": scores, "status": np.zeros(2 * n, np.int8)}
        threat = "scores" if name.startswith("score-") else "label-only"
        attacks[name] = {"threat_model": threat, **summarize(member, scores, n_boot=50, seed=0)}
        attacks[name].update(queries_per_sample=1.0, params={})
    results = {
        "config": {
            "seed": 0,
            "out": "nowhere",
            "dataset": "digits",
            "train_size": 300,
            "queries": 2000,
            **(config or {}),
        },
        "split": {"target_train": n, "target_test": n, "shadow_train": 250, "shadow_test": 250},
        "attacks": attacks,
        "queries_asked": 1234,
        **json.loads(json.dumps(kind)),
    }
    add_verdict(results, finished, is_member=member, labels=None)
    return results


def test_the_one_run_bound_is_a_dp_bound_only_for_a_split_labelleak_drew():
    trained = _audit(200, {"gap": 6.0, "transfer": 0.0}, kind=TRAINED)["verdict"]["one_run"]
    assert trained["applies"] is True and trained["attack"] == "gap" and trained["na"] is None
    assert (trained["m"], trained["guesses"], trained["correct"]) == (200, 200, 200)  # separated: all right
    assert trained["eps_lb"] == pytest.approx(epsilon_from_guesses(200, 200, 200, delta=1e-5))
    assert "drew the members at random" in trained["split"]
    own = _audit(200, {"gap": 6.0, "transfer": 0.0}, kind=OWN)["verdict"]["one_run"]
    assert own["applies"] is False and own["eps_lb"] is None and own["eps_lb_if_random"] == trained["eps_lb"]
    assert own["na"] == (
        "not a DP bound for this target: the members are the model owner's training rows, not known to have been "
        "drawn at random"
    )
    scores_only = _audit(50, {"score-loss": 3.0}, kind=TRAINED)["verdict"]["one_run"]
    assert scores_only["eps_lb"] is None and scores_only["na"] == "no label-only attack ran"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A TorchScript model; member candidates carry the labels it predicts, non-members others (gap separates
    them perfectly)."""
    root = tmp_path_factory.mktemp("summary")
    torch.manual_seed(0)
    net = nn.Linear(4, 3).eval()
    torch.jit.save(torch.jit.script(net), root / "m.ts")
    return root, net


def _files(root, net, n):
    rng = np.random.default_rng(n)
    for name in ("members", "nonmembers", "shadow"):
        x = rng.uniform(0, 1, size=(n, 4)).astype(np.float32)
        with torch.no_grad():
            y = net(torch.from_numpy(x)).argmax(1).numpy()
        np.savez(root / f"{name}{n}.npz", x=x, y=(y + 1) % 3 if name == "nonmembers" else y)
    args = ["audit", "--model", str(root / "m.ts"), "--input-shape", "4", "--attacks", "gap", "--quiet"]
    for name in ("members", "nonmembers", "shadow"):
        args += [f"--{name}", str(root / f"{name}{n}.npz")]
    return [*args, "--no-checkpoint", "--cache-dir", str(root / "cache")]


def test_a_tiny_own_model_audit_writes_the_one_run_entry_and_its_summary(model, tmp_path):
    root, net = model
    result = runner.invoke(app, [*_files(root, net, 40), "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    one = res["verdict"]["one_run"]
    assert one["attack"] == "gap" and one["eps_lb"] is None and "not known to have been drawn at random" in one["na"]
    assert one["eps_lb_if_random"] == pytest.approx(epsilon_from_guesses(40, 40, 40, delta=1e-5))  # 20 + 20 right
    page = _text((tmp_path / "a" / "report.html").read_text())
    assert "eps_LB (one run): n/a, not a DP bound for this target" in page
    assert f"would give {one['eps_lb_if_random']:.3f}" in page
    assert "Risk high: an adversary who sees only the predicted labels can tell" in page
    assert "to a model file (1 label-only attack(s) on 80 candidates: gap)" in page
    assert "Retrain it with a defense and rerun this audit" in page
    shown = page[page.index("Settings that apply") : page.index("Attack parameters")]
    assert " model " in shown and " train_size " not in shown.split("are not shown")[0]
    assert re.search(r"\d+ settings do not apply .* epochs, .*train_size", shown)

    tiny = runner.invoke(app, [*_files(root, net, 3), "--out", str(tmp_path / "b")])
    assert tiny.exit_code == 0, tiny.output
    small = json.loads((tmp_path / "b" / "results.json").read_text())["verdict"]["one_run"]
    assert small["eps_lb"] is None and small["eps_lb_max"] == 0.0
    assert small["na"].startswith("4 balanced evaluation candidates cannot reject epsilon = 0 at 95%")


def test_the_risk_paragraph_follows_the_numbers():
    high = _audit(300, {"gap": 6.0}, kind=TRAINED)
    v = high["verdict"]
    said = risk_paragraph(high)
    assert said.startswith("Risk high: an adversary who sees only the predicted labels")
    assert f"epsilon below {v['eps_lb']:.2f} (delta 1e-05, 95% confidence, strongest attack gap)" in said
    assert f"at least {v['tpr_at_1pct_fpr_low']:.1%} of members are flagged" in said
    one = v["one_run"]
    assert f"(gap, {one['correct']} of {one['guesses']} guesses right) gives eps_LB {one['eps_lb']:.2f}" in said

    assert "rests on the members" not in said  # the tpr/fpr form: members found at a low FPR decided it
    tnr = {**high, "verdict": {**v, "bound": {**v["bound"], "form": "tnr/fnr", "tp": 125, "n_members": 125}}}
    tnr["verdict"]["bound"].update(fp=44, n_nonmembers=125)
    assert (
        "rests on the members gap does not miss: its threshold flags 125 of 125 evaluation members but only 44 of "
        "125 non-members" in risk_paragraph(tnr)
    )

    quiet = _audit(300, {"gap": 0.0}, kind=TRAINED, seed=4)
    assert quiet["verdict"]["risk_level"] == "none"
    x = detectable_tpr(300, level=0.95)
    assert risk_paragraph(quiet).startswith(
        f"Risk none: no leakage detected at this sample size, which could detect TPR >= {x:.1%} at 1% FPR "
        "(300 member and 300 non-member candidates). No epsilon is ruled out (eps_LB 0)"
    )
    few = _audit(60, {"gap": 0.0}, kind=TRAINED, seed=4)
    said = risk_paragraph(few)
    assert "TPR at 1% FPR cannot be measured here: the exact interval of TPR at 1% FPR needs >= 200" in said


def test_the_threat_model_says_what_the_adversary_had():
    res = _audit(100, {"gap": 1.0, "lira": 1.0, "score-loss": 1.0}, kind=TRAINED, config={"max_total_queries": 5000})
    res["attacks"]["lira"]["params"] = {"n_reference": 8}
    said = threat_paragraph(res)
    assert "sent to a target labelleak trained (2 label-only attack(s) on 200 candidates: gap, lira)" in said
    assert "1 query per candidate on average, by attack (budget 2,000 each), 1,234 queries to the target in all" in said
    assert "A total cap of 5,000 queries applied" in said
    assert "500 labelled samples of its own from the target's distribution (shadow data), used by lira" in said
    assert "Reference models trained by the adversary: lira 8" in said
    assert "Score-based attacks (score-loss) assume a stronger adversary" in said
    plain = threat_paragraph(_audit(100, {"gap": 1.0}, kind=TRAINED))
    assert "No total cap" in plain and "No attack used data of its own" in plain and "Reference" not in plain


def test_actions_follow_the_risk_the_target_and_the_attacks_that_found_members(tmp_path):
    leaky = _audit(300, {"gap": 6.0, "transfer": 0.0}, kind=TRAINED)
    acts = recommended_actions(leaky, tmp_path / "audit")
    assert acts[0].startswith("Do not release the model as it is. Measure what the defenses cost and buy")
    assert "labelleak defend --dataset digits --train-size 300 --attacks gap." in acts[0]
    assert acts[1].startswith("gap found members with about one query per candidate")
    assert not any("transfer" in a for a in acts)  # it found nothing

    matrix = {"rows": [{"defense": "none"}], "recommendation": {"statement": "Cheapest defense: l2=5e-4."}}
    (tmp_path / "matrix.json").write_text(json.dumps(matrix))  # a defend run's folder, this audit inside it
    first = recommended_actions(leaky, tmp_path / "audit")[0]
    assert "labelleak defend measured defenses for this target: Cheapest defense: l2=5e-4" in first
    other = _audit(300, {"gap": 6.0, "transfer": 0.0}, kind=TRAINED, config={"defense": "dp=8"})
    assert "Measure what the defenses cost" in recommended_actions(other, tmp_path / "audit")[0]  # not its matrix
    own = recommended_actions(_audit(300, {"gap": 6.0}, kind=OWN), tmp_path / "x")
    assert own[0].startswith("Do not release the model as it is. Retrain it with a defense")

    dp = _audit(300, {"gap": 6.0}, kind={**TRAINED, "target": {**TRAINED["target"], "epsilon": 1.0}})
    assert dp["verdict"]["one_run"]["eps_lb"] > 1.0
    assert recommended_actions(dp, tmp_path / "x")[0].startswith(
        f"The one-run bound {dp['verdict']['one_run']['eps_lb']:.2f} is above the accountant's epsilon 1"
    )
    claimed = _audit(300, {"gap": 6.0}, kind=TRAINED, config={"claimed_epsilon": 0.5})
    assert any(a.startswith("The claimed DP guarantee is refuted") for a in recommended_actions(claimed, tmp_path))
    none = recommended_actions(_audit(300, {"gap": 0.0}, kind=TRAINED, seed=4), tmp_path)
    assert none == [
        "No action is needed on this evidence, but it is no proof of privacy: a larger audit can detect smaller "
        "leaks, and only DP training (e.g. --defense dp=8) gives a guarantee."
    ]


def test_settings_that_do_not_apply_are_not_shown():
    config = {"model": "m.onnx", "epochs": 40, "train_size": 300, "lira_models": 8, "mean": [0.5], "target": None}
    own = _audit(50, {"gap": 1.0}, kind=OWN, config=config)
    shown, hidden = applicable_settings(own)
    assert "model" in shown and "mean" in shown and "seed" in shown
    assert {"epochs", "train_size", "lira_models", "target", "dataset"} <= set(hidden)  # gap trains nothing
    with_models = _audit(50, {"gap": 1.0, "lira": 1.0}, kind=OWN, config=config)
    shown, hidden = applicable_settings(with_models)
    assert "epochs" in shown and "lira_models" in shown and "train_size" in hidden  # the adversary's recipe
    trained, hidden = applicable_settings(_audit(50, {"gap": 1.0}, kind=TRAINED, config=config))
    assert "train_size" in trained and "epochs" in trained and {"model", "mean"} <= set(hidden)


def test_the_report_shows_the_summary_and_the_one_run_section(tmp_path):
    res = _audit(300, {"gap": 6.0}, kind=TRAINED)
    write_json(tmp_path / "results.json", res)
    html = render_report(tmp_path)
    page = _text(html)
    assert 'id="summary" data-risk="high"' in html and 'id="one-run"' in html
    one = res["verdict"]["one_run"]
    assert f"eps_LB (one run) {one['eps_lb']:.3f} at delta 1e-05" in page
    assert f"got {one['correct']} of {one['guesses']} right" in page
    assert "Here it holds: labelleak drew the members at random" in page
    assert risk_paragraph(res).replace("'", "&#39;") in page.replace("&gt;", ">")
