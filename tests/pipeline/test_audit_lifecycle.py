"""An audit's life when something goes wrong: every attack's requirements are checked before the first query, the
attacks finished before a failure are written, and --resume takes a changed attack list (issue 32, item 7)."""

from __future__ import annotations

import importlib
import json

import pytest
from conftest import write_candidate_files, write_linear_onnx
from typer.testing import CliRunner

from labelleak.cli import app
from labelleak.errors import RemoteOracleError

runner = CliRunner()
audit_module = importlib.import_module("labelleak.pipeline.audit")  # the package exports a function of that name


@pytest.fixture
def own_model(tmp_path):
    pytest.importorskip("onnxruntime")
    write_linear_onnx(tmp_path / "m.onnx")
    files = write_candidate_files(tmp_path)
    options = ["--queries", "40", "--noise-samples", "5", "--epochs", "2", "--quiet"]
    return ["audit", "--model", str(tmp_path / "m.onnx"), *files, *options, "--out", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache")]  # fmt: skip


def test_an_attack_the_target_cannot_serve_is_refused_before_any_query(own_model, tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(audit_module, "_run_one", lambda name, *a, **k: ran.append(name))
    result = runner.invoke(app, [*own_model, "--attacks", "gap,score-loss,lira"])
    assert result.exit_code == 2 and ran == []  # nothing ran: gap's queries are not spent before the refusal
    line = result.output.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert "score-loss: needs the target's class scores, which the model file" in line and "lira:" in line
    assert "remote" not in line  # the old message blamed a remote target for a local model file


def test_the_attacks_finished_before_a_failure_are_written_and_resume_continues(own_model, tmp_path, monkeypatch):
    real = audit_module._run_one

    def fails_on_hsja(name, *args, **kwargs):
        if name == "boundary-hsja":
            raise RemoteOracleError("the target went away")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(audit_module, "_run_one", fails_on_hsja)
    failed = runner.invoke(app, [*own_model, "--attacks", "gap,noise,boundary-hsja"])
    assert failed.exit_code == 2 and "the 2 attack(s) finished before boundary-hsja are written" in failed.output
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(res["attacks"]) == {"gap", "noise"} and res["failed_attack"]["name"] == "boundary-hsja"
    monkeypatch.setattr(audit_module, "_run_one", real)
    resumed = runner.invoke(app, [*own_model, "--attacks", "gap,noise,boundary-hsja", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["attacks_from_checkpoint"] == ["gap", "noise"] and "failed_attack" not in res


def test_resume_takes_a_changed_attack_list(own_model, tmp_path, monkeypatch):
    first = runner.invoke(app, [*own_model, "--attacks", "gap"])
    assert first.exit_code == 0
    assert (tmp_path / "out" / "checkpoint" / "done" / "gap.json").is_file()
    real, ran = audit_module._run_one, []

    def counting(name, *args, **kwargs):
        ran.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(audit_module, "_run_one", counting)
    more = runner.invoke(app, [*own_model, "--attacks", "gap,noise", "--resume"])
    assert more.exit_code == 0, more.output
    assert ran == ["noise"]  # gap was kept, only the new attack ran
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(res["attacks"]) == {"gap", "noise"} and res["attacks_from_checkpoint"] == ["gap"]


def test_ctrl_c_during_setup_exits_130_with_its_message(own_model, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("labelleak.pipeline.run_audit", interrupted)
    result = runner.invoke(app, [*own_model, "--attacks", "gap"])
    assert result.exit_code == 130
    assert "interrupted during setup, before any attack ran: run the same command again" in result.output
