"""A corpus of bad inputs run through the command line: each one gets exit code 2, one line, no traceback, and no
crafted file runs code (issue 32's chaos test). New failure modes join the corpus, not a test of their own."""

from __future__ import annotations

import errno
import pickle

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import labelleak.cli as cli_module
from labelleak.cli import app

runner = CliRunner()
MARKER = "ran-code"


class _Touch:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def _config(tmp, text: bytes):
    (tmp / "c.yaml").write_bytes(text)
    return ["audit", "--config", str(tmp / "c.yaml"), "--attacks", "gap", "--epochs", "1"]


def _model(tmp, name: str, payload: bytes):
    (tmp / name).write_bytes(payload)
    files = []
    for part in ("members", "nonmembers", "shadow"):
        np.savez(tmp / f"{part}.npz", x=np.zeros((6, 4), np.float32), y=np.arange(6) % 2)
        files += [f"--{part}", str(tmp / f"{part}.npz")]
    return ["audit", "--model", str(tmp / name), "--input-shape", "4", *files, "--attacks", "gap"]


def _folder(tmp, bad):
    root = tmp / "imgs"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / cls / "0.png")
    bad(root)
    return ["audit", "--dataset", "folder", "--data", str(root), "--attacks", "gap", "--epochs", "1"]


CORPUS = {
    "huge width": (lambda t: _config(t, b"width: 1000000000\n"), "width: expected a positive number up to 64"),
    "huge input shape": (
        lambda t: _config(t, b"model: m.onnx\ninput_shape: [100000, 100000, 100000]\n"),
        "values per sample is more than",
    ),
    "negative input shape": (lambda t: _config(t, b"input_shape: [-1, 8]\n"), "input_shape: expected positive"),
    "non-UTF-8 YAML": (lambda t: _config(t, b"\xff\xfebad: 1\n"), "is not UTF-8 text"),
    "YAML list": (lambda t: _config(t, b"- a\n- b\n"), "expected a mapping of keys to values"),
    "path as a number": (lambda t: _config(t, b"data: 5\n"), "data: expected text, got int 5"),
    "mean as a mapping": (lambda t: _config(t, b"mean: {a: 1}\n"), "mean: expected one number per channel"),
    "broken YAML": (lambda t: _config(t, b"a: [1, 2\n"), "is not valid YAML"),
    "pickle model": (
        lambda t: _model(t, "m.pkl", pickle.dumps(_Touch(t / MARKER))),
        "refusing to load a pickle file",
    ),
    "torch.save model": (
        lambda t: _model(t, "m.pt", pickle.dumps(_Touch(t / MARKER))),
        "refusing to load a torch.save file",
    ),
    "garbage onnx": (lambda t: _model(t, "m.onnx", b"\x00garbage"), "m.onnx"),
    "garbage skops": (lambda t: _model(t, "m.skops", b"PK\x03\x04garbage"), "not a readable .skops file"),
    "named pipe image": (
        lambda t: _folder(t, lambda root: __import__("os").mkfifo(root / "a" / "1.png")),
        "not a regular file",
    ),
    "decompression bomb": (
        lambda t: _folder(t, lambda root: Image.new("1", (5000, 5000)).save(root / "b" / "1.png")),
        "a decompression bomb",
    ),
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_every_bad_input_gets_one_line_and_exit_2(tmp_path, case, monkeypatch):
    monkeypatch.chdir(tmp_path)
    build, message = CORPUS[case]
    if case.startswith("garbage") or case == "decompression bomb":
        pytest.importorskip("onnxruntime" if "onnx" in case else "skops" if "skops" in case else "PIL")
    args = build(tmp_path)
    result = runner.invoke(app, [*args, "--quiet", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / MARKER).exists()


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (MemoryError(), "error: out of memory"),
        (OSError(errno.ENOSPC, "No space left on device", "out/results.json"), "the disk is full writing out/"),
    ],
)
def test_machine_failures_are_one_line_from_the_console_script(monkeypatch, capsys, failure, message):
    def fails():
        raise failure

    monkeypatch.setattr(cli_module, "app", fails)
    with pytest.raises(SystemExit) as stop:
        cli_module.run()
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
