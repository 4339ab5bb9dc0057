"""Logging set-up for the command line: the library only logs (``logging.getLogger("labelleak")``); the CLI decides
where messages go (a rich handler on stderr, optionally a log file) and how many (``--verbose``, ``--quiet``)."""

from __future__ import annotations

import logging
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

LOGGER_NAME = "labelleak"
_CONSOLE_HANDLER = "labelleak-console"
_FILE_HANDLER = "labelleak-file"


def get_logger(name: str) -> logging.Logger:
    """The logger of a labelleak module (a child of ``labelleak``)."""
    return logging.getLogger(name if name.startswith(LOGGER_NAME) else f"{LOGGER_NAME}.{name}")


def configure_logging(*, verbose: bool = False, log_file: Path | None = None, console: Console | None = None) -> None:
    """Send the library's messages to stderr (INFO, or DEBUG with ``verbose``) and, with ``log_file``, everything
    to that file. Calling it again replaces the handlers it installed before (tests call the CLI many times)."""
    root = logging.getLogger(LOGGER_NAME)
    for handler in list(root.handlers):
        if handler.get_name() in (_CONSOLE_HANDLER, _FILE_HANDLER):
            root.removeHandler(handler)
            handler.close()
    screen = RichHandler(
        console=console or Console(stderr=True), show_time=False, show_path=False, markup=False, rich_tracebacks=False
    )
    screen.set_name(_CONSOLE_HANDLER)
    screen.setLevel(logging.DEBUG if verbose else logging.INFO)
    screen.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(screen)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(log_file, encoding="utf-8")
        to_file.set_name(_FILE_HANDLER)
        to_file.setLevel(logging.DEBUG)
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(to_file)
    root.setLevel(logging.DEBUG)
    root.propagate = False  # the CLI owns the output; no duplicate lines through the root logger


def quiet_console() -> None:
    """``--quiet``: only warnings and errors on stderr (the log file, if any, still gets everything)."""
    for handler in logging.getLogger(LOGGER_NAME).handlers:
        if handler.get_name() == _CONSOLE_HANDLER and handler.level < logging.WARNING:
            handler.setLevel(logging.WARNING)
