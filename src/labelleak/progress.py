"""One place that makes progress bars, so that every long loop can be silenced the same way."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


@contextmanager
def progress_bar(description: str, total: int, *, enabled: bool = True) -> Iterator[Progress | None]:
    """Yield a started ``rich`` progress (or ``None`` when disabled); the caller updates task 0."""
    if not enabled:
        yield None
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        transient=True,
    )
    bar.add_task(description, total=total, info="")
    with bar:
        yield bar
