"""`pip install .` (core only) into a fresh venv that has only torch: the core audit runs, and every feature that
needs an extra says which one. Slow (it installs packages), so it runs once per suite, in CI too."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
# packages of the extras (not jinja2: torch itself depends on it)
OPTIONAL = ("matplotlib", "PIL", "fastapi", "uvicorn", "httpx", "opacus", "onnxruntime", "skops", "ray")


def _run(cmd: list[str], *, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def _link_torch(site: Path) -> None:
    """torch and the packages it needs, linked from this environment into ``site``: the fresh venv starts with torch
    installed, as a user's does, without copying 700 MB (which took longer than the rest of the test)."""
    todo, seen = ["torch"], set()
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        dist = importlib.metadata.distribution(name)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
        for root in {f.parts[0] for f in dist.files or [] if f.parts[0] != ".."}:
            source, link = Path(str(dist.locate_file(root))), site / root
            if source.exists() and not link.exists():
                link.symlink_to(source)


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("core") / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    py = str(venv / "bin" / "python")
    constraints = str(ROOT / "constraints.txt")
    _link_torch(next((venv / "lib").glob("python3.*/site-packages")))  # the user's own torch, already installed
    # the wheel is built with this environment's setuptools (no isolated build env to download), then installed
    # as a user would install it: core dependencies only, resolved from the registry within constraints.txt
    wheels = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(wheels), "."])
    (wheel,) = wheels.glob("labelleak-*.whl")
    _run([py, "-m", "pip", "install", "--quiet", "-c", constraints, str(wheel)])
    return venv


def test_core_install_has_no_optional_packages(core_venv: Path) -> None:
    code = (
        "import importlib.util as u, labelleak; "
        f"print(labelleak.__version__, [m for m in {OPTIONAL!r} if u.find_spec(m) is not None])"
    )
    out = _run([str(core_venv / "bin" / "python"), "-c", code]).stdout.split(maxsplit=1)
    assert out[1].strip() == "[]", f"the core install pulled optional packages: {out[1]}"
    version = _run([str(core_venv / "bin" / "labelleak"), "--version"]).stdout.strip()
    assert version == f"labelleak {out[0]}"


def test_core_audit_runs_without_extras(core_venv: Path, tmp_path: Path) -> None:
    done = _run(
        [
            str(core_venv / "bin" / "labelleak"),
            "audit",
            "--attacks",
            "gap,boundary-hsja",
            "--train-size",
            "60",
            "--epochs",
            "3",
            "--queries",
            "200",
            "--noise-samples",
            "10",
            "--quiet",
            "--out",
            str(tmp_path / "out"),
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(results["attacks"]) == {"gap", "boundary-hsja"}
    assert 0.0 <= results["attacks"]["boundary-hsja"]["auc"] <= 1.0
    assert (tmp_path / "out" / "scores.csv").is_file()
    assert not (tmp_path / "out" / "roc.png").exists()  # figures need the plots extra ...
    assert "labelleak[plots]" in done.stderr  # ... and the run says so


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["serve", "--model", "missing-folder"], "serve"),
        (["audit", "--target", "http://127.0.0.1:9", "--members", "m.npz"], "serve"),
        (["defend", "--defenses", "dp=8", "--epochs", "1"], "dp"),
        (["audit", "--dataset", "folder", "--data", "."], "images"),
    ],
)
def test_features_name_their_extra(core_venv: Path, args: list[str], extra: str) -> None:
    done = _run([str(core_venv / "bin" / "labelleak"), *args], check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    message = " ".join((done.stdout + done.stderr).split())
    assert f"pip install 'labelleak[{extra}]'" in message
    assert "Traceback" not in message
