"""report.html in a real browser: Debian's chromium, headless, driven by playwright, fully offline.

Without chromium the tests skip, except under CI (env var ``CI`` set), where they fail: CI installs it.
The screenshot of the top of each page is kept under pytest's temporary folder; its path is printed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from report_fixtures import make_audit_folder

from labelleak.report.html import write_report
from labelleak.report.screenshot import chromium_path, open_page

RUNS = Path(__file__).resolve().parents[1] / "docs" / "runs"


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
