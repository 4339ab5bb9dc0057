"""The README and the user guide as written: every Python snippet runs (in a fresh folder), so none can drift from
the code; the README stays a short front page with its two commands, and its links lead to files that exist; the
test command's closing list of skipped tests names the command that enables each."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import enable_commands, pytest_terminal_summary

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
README = ROOT / "README.md"
PAGES = [README, ROOT / "docs" / "index.md", *sorted((ROOT / "docs" / "guide").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.DOTALL)


def _snippets() -> dict[str, list[str]]:
    """Each distinct snippet and the pages that show it (one shown on several pages runs once)."""
    found: dict[str, list[str]] = {}
    for page in PAGES:
        for code in _python_blocks(page):
            found.setdefault(code, []).append(str(page.relative_to(ROOT)))
    return found


SNIPPETS = _snippets()


@pytest.mark.parametrize("page", ["README.md", "docs/guide/python.md", "docs/guide/own-model.md"])
def test_the_pages_the_readme_snippets_moved_to_still_have_them(page):
    assert _python_blocks(ROOT / page), f"{page} lost its Python snippets"


@pytest.mark.parametrize("code", list(SNIPPETS), ids=[f"{pages[0]}-{i}" for i, pages in enumerate(SNIPPETS.values())])
def test_python_snippet_runs(tmp_path, code):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "2",
    }
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"snippet of {SNIPPETS[code]} failed:\n{code}\n{proc.stderr[-2000:]}"
    assert proc.stdout.strip(), "every snippet prints its result"


def test_readme_is_a_short_front_page_with_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150, "the manual belongs in docs/guide"
    lines = [line.strip() for line in text.splitlines()]
    assert "bash scripts/setup.sh && .venv/bin/labelleak audit" in lines
    assert "bash scripts/test.sh" in lines


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_to_files(page):
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        path = target.split("#")[0]
        if not path or "://" in path:
            continue
        assert (page.parent / path).exists(), f"{page.relative_to(ROOT)} links to a missing {target}"


def test_enable_commands_name_what_installs_each_skipped_kind():
    assert enable_commands("/x/.venv-mlserver/bin/mlserver missing: run scripts/setup_mlserver.sh") == [
        "bash scripts/setup_mlserver.sh"
    ]
    both = enable_commands("needs chromium (apt-get install chromium) and playwright (pip install 'labelleak[test]')")
    assert [c.split()[0] for c in both] == ["apt-get", ".venv/bin/pip"] and both[1].endswith("'.[test]'")
    assert enable_commands("could not import 'onnxruntime': No module named 'onnxruntime'") == [
        ".venv/bin/pip install -e '.[onnx]'"
    ]
    assert enable_commands("could not import 'skops.io': No module named 'skops'")[0].endswith("'.[skops]'")
    assert enable_commands("a reason of the test's own") == []


def test_terminal_summary_lists_skipped_files_by_reason_with_their_command():
    def skipped(nodeid, reason):
        return SimpleNamespace(nodeid=nodeid, longrepr=(nodeid, 1, f"Skipped: {reason}"))

    lines: list[str] = []
    reporter = SimpleNamespace(
        stats={
            "skipped": [
                skipped("tests/test_a.py::test_one", "could not import 'opacus': No module named 'opacus'"),
                skipped("tests/test_a.py::test_two", "could not import 'opacus': No module named 'opacus'"),
                skipped("tests/test_b.py", "a reason of the test's own"),
            ]
        },
        write_sep=lambda sep, title: lines.append(f"{sep * 3} {title}"),
        write_line=lines.append,
    )
    pytest_terminal_summary(reporter, 0, None)
    assert lines == [
        "=== skipped tests, and how to enable them",
        "2 skipped: could not import 'opacus': No module named 'opacus'",
        "    tests/test_a.py",
        "  enable: .venv/bin/pip install -e '.[dp]'",
        "1 skipped: a reason of the test's own",
        "    tests/test_b.py",
        "  enable: (no known command: see the reason)",
    ]
    lines.clear()
    pytest_terminal_summary(SimpleNamespace(stats={}, write_sep=None, write_line=lines.append), 0, None)
    assert lines == []  # nothing skipped: nothing printed
