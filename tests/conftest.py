"""Shared fixtures: tiny data and models, so the suite runs in minutes on 2 cores; and the closing list of the
tests that skipped, with the command that enables each."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from labelleak.oracle import CallableOracle


class LinearModel:
    """A multinomial linear classifier ``argmax(W x + b)`` whose decision boundaries are known in closed form."""

    def __init__(self, n_features: int = 6, n_classes: int = 3, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.W = rng.normal(size=(n_classes, n_features))
        self.b = rng.normal(size=n_classes) * 0.1
        self.n_features, self.n_classes = n_features, n_classes

    def logits(self, x: np.ndarray) -> np.ndarray:
        x = x.reshape(len(x), -1).astype(np.float64)
        # elementwise product then a per-row sum: a row's answer never depends on the rest of the batch
        return (x[:, None, :] * self.W[None]).sum(-1) + self.b

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.logits(x).argmax(1)

    def boundary_distance(self, x: np.ndarray) -> np.ndarray:
        """Exact L2 distance from each row of x to the nearest decision boundary (no box constraint)."""
        x = x.reshape(len(x), -1).astype(np.float64)
        z = self.logits(x)
        c = z.argmax(1)
        dists = np.full((len(x), self.n_classes), np.inf)
        for j in range(self.n_classes):
            dw = self.W[c] - self.W[j]
            norm = np.linalg.norm(dw, axis=1)
            gap = z[np.arange(len(x)), c] - z[:, j]
            dists[:, j] = np.where(norm > 0, gap / np.where(norm > 0, norm, 1), np.inf)
        dists[np.arange(len(x)), c] = np.inf
        return dists.min(1)


@pytest.fixture
def linear_model() -> LinearModel:
    return LinearModel()


@pytest.fixture
def linear_oracle(linear_model: LinearModel) -> CallableOracle:
    return CallableOracle(
        linear_model, input_shape=(linear_model.n_features,), n_classes=linear_model.n_classes, bounds=(-10.0, 10.0)
    )


@pytest.fixture
def blobs() -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated Gaussian blobs in [0, 1]^6 (90 samples)."""
    rng = np.random.default_rng(1)
    centers = rng.uniform(0.2, 0.8, size=(3, 6))
    y = np.repeat(np.arange(3), 30)
    x = np.clip(centers[y] + rng.normal(scale=0.08, size=(90, 6)), 0, 1).astype(np.float32)
    return x, y


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(min(2, torch.get_num_threads()))  # CI has 2 cores; OMP_NUM_THREADS=1 is honoured
    yield


def write_linear_onnx(path, seed: int = 0):
    """A 4-feature, 3-class linear model saved as ONNX (batch dimension free): the own-model tests' target."""
    import warnings

    from torch import nn

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(
            nn.Linear(4, 3).eval(), (torch.rand(1, 4),), str(path), input_names=["x"], dynamic_axes={"x": {0: "n"}},
            dynamo=False,
        )  # fmt: skip
    return path


def write_candidate_files(folder, n: int = 20) -> list[str]:
    """members/nonmembers/shadow .npz files of ``n`` uniform 4-feature rows each; their audit options."""
    rng = np.random.default_rng(0)
    options = []
    for name in ("members", "nonmembers", "shadow"):
        np.savez(folder / f"{name}.npz", x=rng.uniform(size=(n, 4)).astype(np.float32), y=rng.integers(0, 3, n))
        options += [f"--{name}", str(folder / f"{name}.npz")]
    return options


# A skip reason's pattern, and what enables the tests it skips (scripts/test.sh runs all but the system package).
ENABLE = (
    (r"mlserver", "bash scripts/setup_mlserver.sh"),
    (r"chromium", "apt-get install chromium (as root), or LABELLEAK_CHROMIUM=/path/to/chromium"),
    (r"'onnx(runtime)?'", ".venv/bin/pip install -e '.[onnx]'"),
    (r"'skops", ".venv/bin/pip install -e '.[skops]'"),
    (r"'PIL'", ".venv/bin/pip install -e '.[images]'"),
    (r"'opacus'", ".venv/bin/pip install -e '.[dp]'"),
    (r"'ray'", ".venv/bin/pip install -e '.[ray]'"),
    (r"griffe|mkdocstrings", ".venv/bin/pip install -e '.[dev]'"),
    (r"playwright|locust|schemathesis|hypothesis|onnxscript", ".venv/bin/pip install -e '.[test]'"),
)


def enable_commands(reason: str) -> list[str]:
    """The commands that enable the tests skipped for ``reason`` (none known: an empty list)."""
    return [command for pattern, command in ENABLE if re.search(pattern, reason)]


@pytest.hookimpl(trylast=True)  # after pytest's own sections (the durations), just before the final counts
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """After the run: every skip reason, the test files it skipped, and the command that enables them."""
    by_reason: dict[str, list[str]] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        by_reason.setdefault(reason.removeprefix("Skipped: "), []).append(report.nodeid.split("::")[0])
    if not by_reason:
        return
    terminalreporter.write_sep("=", "skipped tests, and how to enable them")
    for reason, files in by_reason.items():
        terminalreporter.write_line(f"{len(files)} skipped: {reason}")
        for name in sorted(set(files)):
            terminalreporter.write_line(f"    {name}")
        for command in enable_commands(reason) or ["(no known command: see the reason)"]:
            terminalreporter.write_line(f"  enable: {command}")
