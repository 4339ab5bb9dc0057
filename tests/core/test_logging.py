"""--version, and library messages through logging: the CLI routes them to stderr and --log-file."""

from __future__ import annotations

import logging

from typer.testing import CliRunner

import labelleak
from labelleak.cli import app

runner = CliRunner()
TINY = ["audit", "--attacks", "gap", "--train-size", "40", "--epochs", "2"]


def test_version_option_prints_the_package_version() -> None:
    done = runner.invoke(app, ["--version"])
    assert done.exit_code == 0 and done.output.strip() == f"labelleak {labelleak.__version__}"


def test_log_file_gets_library_messages_that_quiet_keeps_off_the_screen(tmp_path) -> None:
    log_file = tmp_path / "logs" / "run.log"
    args = ["--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c")]
    done = runner.invoke(app, ["--log-file", str(log_file), *TINY, *args, "--quiet"])
    assert done.exit_code == 0, done.output
    assert "running gap on 80 candidates" in log_file.read_text()
    assert "running gap" not in done.output  # --quiet: warnings and errors only on the terminal
    loud = runner.invoke(app, ["--verbose", *TINY, *args])
    assert loud.exit_code == 0 and "running gap on 80 candidates" in loud.output


def test_library_use_prints_nothing_without_a_configured_handler(tmp_path, capsys) -> None:
    root = logging.getLogger("labelleak")
    saved = root.handlers[:], root.propagate
    root.handlers = [h for h in root.handlers if isinstance(h, logging.NullHandler)]
    root.propagate = True
    try:
        labelleak.audit(
            dataset="digits",
            attacks=["gap"],
            train_size=40,
            epochs=2,
            out=str(tmp_path / "o"),
            cache_dir=str(tmp_path / "c"),
            progress=False,
        )
    finally:
        root.handlers, root.propagate = saved
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
