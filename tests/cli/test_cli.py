"""End to end through the command line, on digits with a tiny budget."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from labelleak.cli import app

runner = CliRunner()
SMALL = ["--train-size", "60", "--epochs", "5", "--queries", "300", "--noise-samples", "20", "--quiet"]


def _audit(tmp_path, *extra, out="out"):
    return runner.invoke(
        app, ["audit", *SMALL, "--out", str(tmp_path / out), "--cache-dir", str(tmp_path / "cache"), *extra]
    )


def test_audit_writes_results_and_identical_scores_for_same_seed(tmp_path):
    first = _audit(tmp_path, out="a")
    assert first.exit_code == 0, first.output
    assert "gap" in first.output and "transfer" in first.output and "boundary-hsja" in first.output
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    assert res["dataset"]["name"] == "digits" and res["split"]["target_train"] == 60
    for key in ("train_accuracy", "test_accuracy"):
        assert 0.0 <= res["target"][key] <= 1.0
    for name in ("gap", "transfer", "boundary-hsja"):
        entry = res["attacks"][name]
        for key in (
            "auc",
            "auc_ci",
            "tpr_at_fpr",
            "balanced_accuracy",
            "threshold",
            "queries_per_sample",
            "seconds",
            "n_members",
            "n_nonmembers",
        ):
            assert key in entry, key
        assert set(entry["tpr_at_fpr"]) == {"0.001", "0.01", "0.1"}
        assert entry["n_members"] == 60
    assert res["attacks"]["gap"]["queries_per_sample"] == 1.0
    hsja = res["attacks"]["boundary-hsja"]
    assert 100 < hsja["queries_per_sample"] <= 300 and hsja["max_queries_per_sample"] <= 300
    assert [r["queries"] for r in hsja["by_queries"]][:2] == [100, 200]
    assert sum(hsja["status_counts"].values()) == 120
    assert [r["t"] for r in hsja["data_free"]["sweep"]] == [0, 1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert hsja["data_free"]["top_t"] == 50.0 and set(hsja["auc_by_norm"]) == {"l0", "l1", "l2", "linf"}
    for norm, (lo, hi) in hsja["auc_ci_by_norm"].items():  # each norm's AUC with its interval, for the claims
        assert lo <= hsja["auc_by_norm"][norm] <= hi
    assert (tmp_path / "a" / "queries.png").is_file() and (tmp_path / "a" / "distances.csv").is_file()
    assert (tmp_path / "a" / "roc.png").stat().st_size > 10_000
    page = (tmp_path / "a" / "report.html").read_text()  # the report, with the provenance results.json records
    assert (
        "<strong>boundary-hsja</strong>" in page
        or "<strong>transfer</strong>" in page
        or "<strong>gap</strong>" in page
    )
    assert set(res["provenance"]) == {"labelleak_version", "libraries", "machine", "finished_at", "sha256"}
    assert "target model" in res["provenance"]["sha256"] and res["provenance"]["machine"]["cpu_count"] >= 1
    rows = (tmp_path / "a" / "scores.csv").read_text().splitlines()
    assert rows[0] == "attack,sample_index,is_member,score,queries,status" and len(rows) == 1 + 3 * 120
    # a second run loads the cached models, a third trains them again in a fresh cache: same bytes every time
    second = _audit(tmp_path, out="b")
    assert second.exit_code == 0
    assert json.loads((tmp_path / "b" / "results.json").read_text())["target"]["loaded_from_cache"] is True
    assert (tmp_path / "a" / "scores.csv").read_bytes() == (tmp_path / "b" / "scores.csv").read_bytes()
    third = runner.invoke(app, ["audit", *SMALL, "--out", str(tmp_path / "c"), "--cache-dir", str(tmp_path / "c2")])
    assert third.exit_code == 0
    assert json.loads((tmp_path / "c" / "results.json").read_text())["target"]["loaded_from_cache"] is False
    assert (tmp_path / "a" / "scores.csv").read_bytes() == (tmp_path / "c" / "scores.csv").read_bytes()


def test_yaml_config_and_override(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("attacks: gap\neval-size: 20\nseed: 3\n")
    result = _audit(tmp_path, "--config", str(cfg), "--seed", "4")
    assert result.exit_code == 0, result.output
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert list(res["attacks"]) == ["gap"] and res["config"]["seed"] == 4
    assert res["attacks"]["gap"]["n_members"] == 20


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--attacks", "gap,nope"], "unknown attack(s) nope"),
        (["--train-size", "900"], "pool has only 1797"),
        (["--dataset", "npz", "--data", "missing.npz"], "data file not found"),
        (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["--arch", "cnn7"], "needs images of at least 16x16"),
        (["--epochs", "0"], "epochs: expected a positive integer"),
        (["--top-t", "120"], "top_t: expected a percentile between 0 and 100"),
        (["--queries", "0"], "queries: expected a positive integer"),
    ],
)
def test_bad_options_give_one_line_error_and_exit_2(tmp_path, extra, message):
    result = _audit(tmp_path, *extra)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_config_files(tmp_path):
    bad_key = tmp_path / "k.yaml"
    bad_key.write_text("colour: red\n")
    result = _audit(tmp_path, "--config", str(bad_key))
    assert result.exit_code == 2 and "unknown key(s) ['colour']" in result.output
    bad_yaml = tmp_path / "y.yaml"
    bad_yaml.write_text("a: [1,\n")
    result = _audit(tmp_path, "--config", str(bad_yaml))
    assert result.exit_code == 2 and "not valid YAML" in result.output


def test_corrupt_data_file(tmp_path):
    p = tmp_path / "bad.npz"
    p.write_bytes(b"\x00\x01garbage")
    result = _audit(tmp_path, "--dataset", "npz", "--data", str(p))
    assert result.exit_code == 2 and "corrupt or unreadable .npz" in result.output


def test_console_script_runs_and_python_api(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "labelleak.cli", "attacks"], capture_output=True, text=True)
    assert proc.returncode == 0 and "transfer-entropy" in proc.stdout.split()
    import labelleak

    res = labelleak.audit(
        attacks=["gap"],
        train_size=40,
        epochs=3,
        out=str(tmp_path / "py"),
        cache_dir=str(tmp_path / "cache"),
        progress=False,
    )
    assert res["attacks"]["gap"]["n_members"] == 40


@pytest.mark.parametrize(
    "args",
    [["audit", "--arch", "cnn7"], ["reproduce", "sizes", "--dataset", "digits", "--set", "arch=cnn7", "--quiet"]],
    ids=["audit", "reproduce"],
)
def test_too_small_images_get_advice_that_fits_every_command(tmp_path, args):
    # the audit's option is --arch, reproduce's is --set arch=: the message names architectures, never an option
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 2
    assert "error: cnn7 has 4 pooling layers and needs images of at least 16x16, got 8x8; architectures that " in (
        " ".join(result.output.split())
    )
    assert "fit: cnn2, mlp" in " ".join(result.output.split()) and "--arch" not in result.output
