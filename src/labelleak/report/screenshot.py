"""A picture of a report: the top of ``report.html`` (or one window of it) rendered by a headless chromium, and what
the page showed (for the guide and the browser tests).

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
    """What loading a page showed: console errors, requests other than the page itself, its figures, and its
    thumbnails (``img.thumb``, the exposed members' inputs) with the size they decoded to."""

    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    figures: list[dict] = field(default_factory=list)
    thumbnails: list[dict] = field(default_factory=list)
    texts: dict[str, str | None] = field(default_factory=dict)  # what the browser renders of each element read


def open_page(
    html: Path,
    screenshot: Path | None = None,
    *,
    width: int = 1200,
    height: int = 900,
    scroll_to: str | None = None,
    read: tuple[str, ...] = (),
) -> PageCheck:
    """Load ``html`` from ``file://`` in headless chromium; record what went wrong and the rendered text of the
    elements ``read`` (CSS selectors; None for one not on the page); optionally screenshot the top of the page,
    or one window from the element ``scroll_to`` down."""
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
            for selector in read:
                found = page.query_selector(selector)
                check.texts[selector] = None if found is None else found.inner_text()
            check.thumbnails = page.eval_on_selector_all(
                "img.thumb",
                """els => els.map(e => ({ alt: e.getAttribute('alt') || '', complete: e.complete,
                    natural_width: e.naturalWidth, natural_height: e.naturalHeight }))""",
            )
            check.figures = page.eval_on_selector_all(
                "img:not(.thumb), svg.fig",
                """els => els.map(e => { const r = e.getBoundingClientRect(); return {
                    tag: e.tagName.toLowerCase(), width: r.width, height: r.height,
                    alt: e.getAttribute('alt') || e.getAttribute('aria-label') ||
                         (e.querySelector(':scope > title') || {}).textContent || '' }; })""",
            )
            if screenshot is not None:
                if scroll_to is not None:
                    if page.query_selector(scroll_to) is None:
                        raise InvalidInputError(f"{html}: nothing on the page matches {scroll_to!r}")
                    page.eval_on_selector(
                        scroll_to, "e => window.scrollTo(0, e.getBoundingClientRect().top + window.scrollY - 8)"
                    )
                Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=False)
        finally:
            browser.close()
    return check


def save_screenshot(html: Path, screenshot: Path, *, scroll_to: str | None = None, height: int = 900) -> Path:
    """Screenshot the top of ``html`` (or from ``scroll_to`` down); a page that asks for anything off the file is
    an error."""
    check = open_page(html, screenshot, scroll_to=scroll_to, height=height)
    if check.requests or check.console_errors:
        raise InvalidInputError(
            f"{html}: the page made requests {check.requests} or logged errors {check.console_errors}"
        )
    return Path(screenshot)


def main(argv: list[str] | None = None) -> int:
    """``python -m labelleak.report.screenshot REPORT PNG [--from SELECTOR] [--height PX]``: the guide's pictures."""
    import argparse

    parser = argparse.ArgumentParser(description="Screenshot a report.html (the top, or a window from an element).")
    parser.add_argument("html", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--from", dest="scroll_to", help="CSS selector of the element the window starts at")
    parser.add_argument("--height", type=int, default=900, help="window height in pixels (default 900)")
    args = parser.parse_args(argv)
    try:
        save_screenshot(args.html, args.png, scroll_to=args.scroll_to, height=args.height)
    except InvalidInputError as exc:
        print(f"error: {exc}")
        return 2
    print(f"{args.png} ({args.png.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
