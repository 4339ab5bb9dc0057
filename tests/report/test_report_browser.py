"""report.html in a real browser: Debian's chromium, headless, driven by playwright, fully offline.

Without chromium the tests skip, except under CI (env var ``CI`` set), where they fail: CI installs it.
The screenshot of the top of each page is kept under pytest's temporary folder; its path is printed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from report_fixtures import make_audit_folder

from labelleak.attacks import Status
from labelleak.report.audit_view import read_scores
from labelleak.report.html import write_report
from labelleak.report.markdown import fmt_number
from labelleak.report.outputs import write_audit_outputs
from labelleak.report.screenshot import chromium_path, open_page
from labelleak.report.verdict import add_verdict

RUNS = Path(__file__).resolve().parents[2] / "docs" / "runs"


@pytest.fixture(scope="module", autouse=True)
def _browser_present():
    missing = []
    if chromium_path() is None:
        missing.append("chromium (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install 'labelleak[test]')")
    if missing and os.environ.get("CI"):
        pytest.fail(f"the browser tests need {' and '.join(missing)}")
    if missing:
        pytest.skip(f"needs {' and '.join(missing)}")


def _check(html: Path, shot: Path) -> list[dict]:
    check = open_page(html, shot)
    print(f"screenshot of {html.name}: {shot}")
    assert check.console_errors == []
    assert check.requests == []  # nothing but the file itself
    assert shot.stat().st_size > 10_000
    assert check.figures, "no figure on the page"
    for fig in check.figures:
        assert fig["width"] > 50 and fig["height"] > 50, fig
        assert len(fig["alt"].strip()) > 20, fig
    return check.figures


def test_audit_report_loads_offline_with_sized_described_figures(tmp_path):
    make_audit_folder(tmp_path / "audit")
    html = write_report(tmp_path / "audit")
    figures = _check(html, tmp_path / "audit-top.png")
    assert [f["tag"] for f in figures] == ["svg"] * 4
    text = html.read_text()
    assert 'id="verdict-label-only"' in text and 'id="attack-table"' in text


@pytest.mark.parametrize("name", ["defend-digits", "reproduce-threshold-cpu"])
def test_defend_and_reproduce_reports_load_offline(tmp_path, name):
    shutil.copytree(RUNS / name, tmp_path / name)
    _check(write_report(tmp_path / name), tmp_path / f"{name}-top.png")


SECTIONS = ("#dp-verdict", "#one-run", "#epsilon-table", "#slices-table", "#exposed-table", "#most-exposed-table")


def test_audit_report_shows_verdict_bounds_slices_and_exposed_members_with_thumbnails(tmp_path):
    """The audit's own writer (verdict, records, the listed members' 3x8x8 inputs), then what chromium renders."""
    out = tmp_path / "audit"
    results = make_audit_folder(out)
    scores = read_scores(out / "scores.csv")
    is_member = scores["gap"][0]
    n = len(is_member)
    status = np.where(np.arange(n) % 5 == 0, Status.MISCLASSIFIED, Status.OK).astype(np.int8)
    finished = {
        name: {"scores": s, "queries": np.ones(n, np.int64), "status": status} for name, (_, s) in scores.items()
    }
    results["attacks"]["gap"]["candidate_accuracy"] = {"members_accuracy": 0.8}  # gap labels the candidates
    add_verdict(results, finished, is_member=is_member, labels=np.arange(n) % 3)
    images = np.random.default_rng(1).random((n, 3, 8, 8)).astype(np.float32)
    write_audit_outputs(out, results, finished, sample_index=np.arange(n), is_member=is_member, inputs=images)
    check = open_page(out / "report.html", tmp_path / "verdict-top.png", read=SECTIONS)
    assert check.console_errors == [] and check.requests == []
    text = check.texts
    v = results["verdict"]
    assert f"eps_LB = {fmt_number(v['eps_lb'], 3)}" in text["#dp-verdict"]
    assert f"risk {v['risk_level']}" in text["#dp-verdict"]
    assert f"eps_LB (one run) {fmt_number(v['one_run']['eps_lb'], 3)}" in text["#one-run"]
    assert all(name in text["#epsilon-table"] for name in scores)
    assert "class 0" in text["#slices-table"] and "prediction wrong" in text["#slices-table"]
    flagged = results["exposed"]["members_flagged_by_any"]["0.01"]
    assert f"by any of 3\t{flagged}" in text["#exposed-table"].replace(" \t", "\t")
    assert len(check.thumbnails) == 10  # the ten most exposed members, each a decoded 8x8 PNG
    for thumb in check.thumbnails:
        assert thumb["complete"] and (thumb["natural_width"], thumb["natural_height"]) == (8, 8), thumb
        assert thumb["alt"].startswith("member ") and thumb["alt"].endswith("3x8x8")
