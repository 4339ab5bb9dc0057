"""Key figures in docs/ against the committed result files they come from (issue 29: every number in docs/ is
traceable). Each row names a page, the text that must stand there, and the file and value it is read from; a rerun
that changes a file without the page, or an edited page, fails here."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _json(path: str, *keys: Any) -> Any:
    value = json.loads((ROOT / path).read_text())
    for key in keys:
        value = value[key]
    return value


def _csv(path: str, column: str, row: int = 0) -> float:
    with (ROOT / path).open() as fh:
        return float(list(csv.DictReader(fh))[row][column])


def _table_cell(path: str, first: str, column: int) -> str:
    """A cell of the Markdown table row starting with ``| first |`` in a text result file."""
    for line in (ROOT / path).read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == first:
            return cells[column]
    raise AssertionError(f"{path}: no row {first!r}")


def _curve(run: str, queries: int, key: str) -> float:
    curve = _json("bench/results/distance-cifar-1000/distance.json", "cifar10", "runs", run, "curve")
    return next(point[key] for point in curve if point["queries"] == queries)


LOWFPR = "docs/runs/reproduce-lowfpr-offline1000-cpu/lira_ratio.csv"
HTTP = "bench/results/http/audit-process-batch{}.txt"

# page, how the figure is printed there (format applied to the value), where the value comes from
FIGURES: list[tuple[str, str, Callable[[], Any]]] = [
    ("docs/low-fpr.md", "0.271 [{:.3f}, 0.678]", lambda: _csv(LOWFPR, "ratio@1%_low")),
    ("docs/low-fpr.md", "0.271 [0.133, {:.3f}]", lambda: _csv(LOWFPR, "ratio@1%_high")),
    ("docs/low-fpr.md", "{:.3f} [0.133, 0.678]", lambda: _csv(LOWFPR, "ratio@1%")),
    ("docs/low-fpr.md", "| 0.1% | {:.3f} |", lambda: _csv(LOWFPR, "tpr@0.1%")),
    ("docs/benchmarks.md", "| 200 | 0.828 | 0.024 | {:.3f} |", lambda: _curve("boundary-guided", 200, "auc")),
    ("docs/benchmarks.md", "| 200 | {:.3f} | 0.024 |", lambda: _curve("boundary-hsja", 200, "auc")),
    ("docs/benchmarks.md", "| 2000 | {:.3f} | 0.047 |", lambda: _curve("boundary-hsja", 2000, "auc")),
    ("docs/benchmarks.md", "| 256 | 4 | {} |", lambda: _table_cell(HTTP.format(256), "4", 1)),
    ("docs/benchmarks.md", "| 256 | 16 | 4.75 | 3.41 | 399 | {} |", lambda: _table_cell(HTTP.format(256), "16", 4)),
    ("docs/benchmarks.md", "| 64 | 4 | 13.18 | 11.72 | 1510 | {} |", lambda: _table_cell(HTTP.format(64), "4", 4)),
]


@pytest.mark.parametrize(("page", "printed", "source"), FIGURES, ids=[f"{p}:{t}" for p, t, _ in FIGURES])
def test_a_key_figure_in_the_docs_is_the_one_in_its_result_file(page, printed, source):
    text = (ROOT / page).read_text()
    expected = printed.format(source())
    assert expected in text, f"{page} should say {expected!r} (from its result file)"
