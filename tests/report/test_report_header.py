"""The report's header names the target as the auditor knows it (issue 31, item 6): an own model file by its
name and SHA-256 with its accuracy on the candidates, never "Target: ?" or "own-files"; --title and --auditor."""

from __future__ import annotations

import hashlib
import re

import pytest
from conftest import write_candidate_files, write_linear_onnx
from typer.testing import CliRunner

from labelleak.cli import app


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_an_own_model_audit_names_the_file_its_hash_and_its_accuracy_on_the_candidates(tmp_path):
    pytest.importorskip("onnxruntime")
    model = write_linear_onnx(tmp_path / "churn.onnx")
    files = write_candidate_files(tmp_path)
    out = tmp_path / "out"
    args = ["audit", "--model", str(model), *files, "--attacks", "gap", "--epochs", "2", "--quiet", "--out", str(out)]
    assert CliRunner().invoke(app, args).exit_code == 0
    html = (out / "report.html").read_text()
    page, sha = _text(html), hashlib.sha256(model.read_bytes()).hexdigest()
    assert "<h1>Membership-inference audit: churn.onnx</h1>" in html
    assert "<title>Membership-inference audit: churn.onnx" in html
    assert f"Target: churn.onnx (SHA-256 {sha[:16]} ...)" in page and "Target: ?" not in page
    assert "accuracy on the member candidates" in page and "train accuracy n/a" not in page

    titled = CliRunner().invoke(app, [*args, "--title", "ACME churn, Q4", "--auditor", "J. Doe", "--fresh"])
    assert titled.exit_code == 0, titled.output
    page = _text((out / "report.html").read_text())
    assert "ACME churn, Q4" in page and "Auditor: J. Doe." in page and "Finished 20" in page


def test_the_headline_names_the_verdicts_strongest_attack():
    """The headline and the verdict used to rank attacks apart (TPR at 1% FPR against eps_LB) and could name two
    different attacks on one page; the verdict's choice now leads, the TPR ranking only where it has none."""
    from labelleak.report.audit_view import verdict

    attacks = {
        "a": {"threat_model": "label-only", "auc": 0.5, "tpr_at_fpr": {"0.01": 0.3}, "n_nonmembers": 400},
        "b": {"threat_model": "label-only", "auc": 0.6, "tpr_at_fpr": {"0.01": 0.02}, "n_nonmembers": 400},
        "s": {"threat_model": "scores", "auc": 0.7, "tpr_at_fpr": {"0.01": 0.1}, "n_nonmembers": 400},
    }
    assert verdict(attacks)["label-only"]["attack"] == "a"
    assert verdict(attacks, strongest="b")["label-only"]["attack"] == "b"
    assert verdict(attacks, strongest="s")["label-only"]["attack"] == "a"  # another threat model: its own ranking
    assert verdict(attacks, strongest="s")["scores"]["attack"] == "s"


def test_the_headline_number_and_its_interval_come_from_one_threshold():
    """The headline printed the ROC reading on all non-members beside the interval of the held-out threshold (2.2%
    with [0.9%, 3.9%] around 2.0%); the number is now the held-out one, the ROC reading said apart."""
    from labelleak.report.audit_view import headline

    exact = {"tpr": 0.02, "tpr_ci": [0.009, 0.039], "fpr": 0.01, "fpr_ci": [0.001, 0.03], "n_evaluation": 200}
    entry = {
        "threat_model": "label-only",
        "n_nonmembers": 400,
        "tpr_at_fpr": {"0.01": 0.022, "0.001": None},
        "tpr_at_fpr_exact": {"0.01": exact},
    }
    point = headline("a", entry)["points"][1]
    assert (point["tpr"], point["low"], point["high"]) == (0.02, 0.009, 0.039)
    sentence = headline("a", entry)["sentences"][1]
    assert "2.0% of members are exposed" in sentence and "over all 400 non-members reads 2.2%" in sentence


def test_the_terminal_table_names_an_own_model_by_its_file_and_its_accuracy_on_the_candidates():
    from labelleak.report.table import audit_table

    own = {
        "dataset": {"name": "own-files"},
        "target": {"model": "/models/cnn.onnx", "train_accuracy": None},
        "utility": {"members_accuracy": 0.95, "nonmembers_accuracy": 0.9},
        "attacks": {},
    }
    assert audit_table(own).title == (
        "labelleak audit: cnn.onnx  |  accuracy on member candidates 0.950, non-members 0.900"
    )
    trained = {"dataset": {"name": "digits"}, "target": {"train_accuracy": 1.0, "test_accuracy": 0.8}, "attacks": {}}
    assert audit_table(trained).title == "labelleak audit: digits  |  target train acc 1.000, test acc 0.800"
