"""A picture of a report: the top of ``report.html`` rendered by a headless chromium (for the README and tests).

Needs playwright and a chromium binary; the system's ``/usr/bin/chromium`` is used when there, so nothing is
downloaded. The browser is offline: any request other than the file itself is recorded and reported as an error.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from labelleak.errors import InvalidInputError

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    """The chromium binary to drive: ``$LABELLEAK_CHROMIUM``, else ``chromium`` on the PATH."""
    return os.environ.get("LABELLEAK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageCheck:
    """What loading a page showed: console errors, requests other than the page itself, and its figures."""

    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    figures: list[dict] = field(default_factory=list)


def open_page(html: Path, screenshot: Path | None = None, *, width: int = 1200, height: int = 900) -> PageCheck:
    """Load ``html`` from ``file://`` in headless chromium; record what went wrong; optionally screenshot the top."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise InvalidInputError("the screenshot needs playwright: pip install 'labelleak[test]'") from None
    exe = chromium_path()
    if exe is None:
        raise InvalidInputError("the screenshot needs chromium (apt-get install chromium, or set LABELLEAK_CHROMIUM)")
    url = Path(html).resolve().as_uri()
    check = PageCheck()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height}, java_script_enabled=True)
            page.on("console", lambda m: check.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: check.console_errors.append(str(e)))
            page.on("request", lambda r: check.requests.append(r.url) if r.url != url else None)
            page.goto(url, wait_until="load")
            check.figures = page.eval_on_selector_all(
                "img, svg.fig",
                """els => els.map(e => { const r = e.getBoundingClientRect(); return {
                    tag: e.tagName.toLowerCase(), width: r.width, height: r.height,
                    alt: e.getAttribute('alt') || e.getAttribute('aria-label') ||
                         (e.querySelector(':scope > title') || {}).textContent || '' }; })""",
            )
            if screenshot is not None:
                Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=False)
        finally:
            browser.close()
    return check


def save_screenshot(html: Path, screenshot: Path) -> Path:
    """Screenshot the top of ``html``; a page that asks for anything off the file is an error."""
    check = open_page(html, screenshot)
    if check.requests or check.console_errors:
        raise InvalidInputError(
            f"{html}: the page made requests {check.requests} or logged errors {check.console_errors}"
        )
    return Path(screenshot)
